"""``spikerl export RUN --format numpy -o OUT.npz``: a trained policy for the NumPy runtime.

``RUN`` is a run folder (its checkpoint's actor), a checkpoint or ``best.pt`` in one; the file
carries the run's observation normaliser and the env's action bounds, so
:meth:`spikerl.runtime.Policy.act` takes raw observations and returns env actions.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..envs import find_wrapper, make_env
from ..errors import UsageError
from .policy import load_policy
from .provenance import env_version

__all__ = ["FORMATS", "add_export_parser", "cmd_export"]

FORMATS = ("numpy",)


def add_export_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a trained spiking policy (NumPy runtime)")
    p.add_argument("run", type=Path, help="run directory, or a checkpoint/best.pt inside one")
    p.add_argument("--format", choices=FORMATS, default="numpy", help="output format")
    p.add_argument("-o", "--output", type=Path, required=True, help="file to write (.npz)")


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


def cmd_export(args: argparse.Namespace) -> int:
    from ..export import export_npz
    from ..runtime import load_policy as load_exported

    if args.output.is_dir():
        raise UsageError(f"-o {args.output}: is a folder; give a file name such as policy.npz")
    if not args.output.parent.is_dir():
        raise UsageError(f"-o {args.output}: folder {args.output.parent} does not exist")
    actor, cfg, normalizer = load_policy(args.run)
    source = {"run": str(args.run), "env": cfg.env.id, "env_version": env_version(cfg.env.id),
              "actor": cfg.actor.kind, "algo": cfg.algo.name}  # fmt: skip
    path = export_npz(actor, args.output, normalizer, _action_bounds(cfg.env.id), source)
    policy = load_exported(path)
    weights = sum(a.size for a in policy.arrays.values())
    print(f"wrote {path} ({path.stat().st_size:,} bytes): {len(policy.layers)} spiking layers, "
          f"T = {policy.timesteps}, {'stateful' if policy.stateful else 'stateless'}, "
          f"{weights:,} stored values; run it with spikerl.runtime.load_policy")  # fmt: skip
    return 0
