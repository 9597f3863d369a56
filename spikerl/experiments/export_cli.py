"""``spikerl export RUN --format numpy|c -o OUT``: a trained or converted spiking policy for
the NumPy runtime (``OUT.npz``) or as C99 source for microcontrollers (folder ``OUT``).

``RUN`` is a run folder (its checkpoint's actor), a checkpoint or ``best.pt`` in one, or a
policy written by ``spikerl convert``; the export carries the run's observation normaliser and
the env's action bounds, so :meth:`spikerl.runtime.Policy.act` and the C ``spikerl_step`` take
raw observations and return env actions. ``--quantize int8`` stores 8-bit weights and
thresholds (:mod:`spikerl.export.quantize`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..envs import find_wrapper, make_env
from ..errors import UsageError
from ..export.quantize import PER
from .policy import load_policy
from .provenance import env_version

__all__ = ["FORMATS", "add_export_parser", "cmd_export"]

FORMATS = ("numpy", "c")


def add_export_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a spiking policy (NumPy runtime, C)")
    p.add_argument(
        "run", type=Path, help="run directory, a checkpoint/best.pt inside one, or a converted .pt"
    )
    p.add_argument("--format", choices=FORMATS, default="numpy", help="output format")
    p.add_argument(
        "-o", "--output", type=Path, required=True,
        help="file to write (numpy: OUT.npz) or folder (c: spikerl_policy.h/.c in it)",
    )  # fmt: skip
    p.add_argument(
        "--quantize", choices=("none", "int8"), default="none",
        help="int8: 8-bit weights and per-neuron thresholds (default: float32)",
    )  # fmt: skip
    p.add_argument(
        "--per", choices=PER, default="channel", help="int8 weight scales: per output channel "
        "(default) or one per layer",
    )  # fmt: skip


def _action_bounds(env_id: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The bounds that spikerl's ``RescaleAction`` maps [-1, 1] onto (those of the env it
    wraps), or None when the env already acts in [-1, 1]."""
    import gymnasium as gym

    env = make_env(env_id)
    rescale = find_wrapper(env, gym.wrappers.RescaleAction)
    space = rescale.env.action_space if rescale is not None else None
    env.close()
    if space is None:
        return None
    low, high = np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise UsageError(f"{env_id}: unbounded action space; it cannot be rescaled")
    return low, high


def _check_output(output: Path, fmt: str) -> None:
    if fmt == "numpy" and output.is_dir():
        raise UsageError(f"-o {output}: is a folder; give a file name such as policy.npz")
    if fmt == "c" and output.exists() and not output.is_dir():
        raise UsageError(f"-o {output}: is a file; the C export writes a folder")
    if not output.parent.is_dir():
        raise UsageError(f"-o {output}: folder {output.parent} does not exist")


def cmd_export(args: argparse.Namespace) -> int:
    from ..export import network_spec, quantize_policy, write_c, write_npz

    _check_output(args.output, args.format)
    actor, cfg, normalizer = load_policy(args.run)
    source = {"run": str(args.run), "env": cfg.env.id, "env_version": env_version(cfg.env.id),
              "actor": cfg.actor.kind, "algo": cfg.algo.name}  # fmt: skip
    spec, arrays = network_spec(actor, normalizer, _action_bounds(cfg.env.id), source)
    if args.quantize == "int8":
        spec, arrays = quantize_policy(spec, arrays, args.per)
    shape = (f"{len(spec['layers'])} spiking layers, T = {spec['timesteps']}, "
             f"{'stateful' if spec['stateful'] else 'stateless'}"
             f"{', int8 weights' if args.quantize == 'int8' else ''}")  # fmt: skip
    if args.format == "c":
        sizes = write_c(spec, arrays, args.output)
        ram = f"RAM {sizes['ram']:,} bytes state + {sizes['stack']:,} bytes stack"
        print(f"wrote {args.output}/spikerl_policy.{{h,c}}: {shape}; "
              f"flash {sizes['flash']:,} bytes, {ram}")  # fmt: skip
        return 0
    path = write_npz(spec, arrays, args.output)
    print(f"wrote {path} ({path.stat().st_size:,} bytes): {shape}, "
          f"{sum(a.size for a in arrays.values()):,} stored values; run it with "
          "spikerl.runtime.load_policy")  # fmt: skip
    return 0
