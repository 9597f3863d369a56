"""``spikerl export RUN --format numpy|c|nir -o OUT``: a trained or converted spiking policy for
the NumPy runtime (``OUT.npz``), as C99 source for microcontrollers (folder ``OUT``) or as a
NIR graph for neuromorphic tool chains (``OUT.nir``, extra ``spikerl[nir]``).

``RUN`` is a run folder (its checkpoint's actor), a checkpoint or ``best.pt`` in one, a
policy written by ``spikerl convert``, or an exported ``.npz`` (to write it as C or NIR
without the run); the export carries the run's observation normaliser and
the env's action bounds, so :meth:`spikerl.runtime.Policy.act` and the C ``spikerl_step`` take
raw observations and return env actions. ``--quantize int8`` stores 8-bit weights and
thresholds (:mod:`spikerl.export.quantize`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..envs import action_bounds
from ..errors import UsageError
from ..export.nir import DEFAULT_DT, MAX_DT, NIR_READOUTS, check_dt
from ..export.npz import ExportError
from ..export.quantize import PER
from .outputs import check_output_file, check_output_folder
from .policy import load_policy
from .provenance import env_version

__all__ = ["FORMATS", "add_export_parser", "cmd_export"]

FORMATS = ("numpy", "c", "nir")


def add_export_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a spiking policy (NumPy runtime, C, NIR)")
    p.add_argument(
        "run",
        type=Path,
        help="run directory, a checkpoint/best.pt inside one, a converted .pt, or an exported .npz",
    )
    p.add_argument(
        "--format", choices=FORMATS, default="numpy", help="output format (default: numpy)"
    )
    p.add_argument(
        "-o", "--output", type=Path, required=True,
        help="file to write (numpy: OUT.npz, nir: OUT.nir; an existing file only if it is an "
        "export of that format) or folder (c: spikerl_policy.h/.c)",
    )  # fmt: skip
    p.add_argument(
        "--quantize", choices=("none", "int8"), default="none",
        help="int8: 8-bit weights and per-neuron thresholds (default: float32)",
    )  # fmt: skip
    p.add_argument(
        "--per", choices=PER, default=None, help="with --quantize int8: weight scales per "
        "output channel (default) or one per layer",
    )  # fmt: skip
    p.add_argument(
        "--dt", type=float, default=None, help=f"nir: seconds per tick (default {DEFAULT_DT:g})"
    )
    p.add_argument(
        "--nir-readout", choices=NIR_READOUTS, default=None,
        help="nir: the readout as an Affine into an integrator (graph, default) or left to "
        "the host",
    )  # fmt: skip


#: The file suffix each file format writes.
SUFFIXES = {"numpy": ".npz", "nir": ".nir"}
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _check_output(output: Path, fmt: str, source: Path) -> None:
    """Refuse an output path of the wrong kind or that cannot be written, before any work
    (missing parent folders are created when the export is written): a file path must carry
    the format's suffix, must not be the ``source`` read, and may replace only a file of the
    same format (an earlier export), never another file."""
    if fmt == "c":
        check_output_folder(output, "-o", "the C export writes spikerl_policy.h/.c into one")
        return
    suffix = SUFFIXES[fmt]
    check_output_file(output, "-o", example=f"policy{suffix}", reads=[source])
    if output.suffix != suffix:
        other = next((f for f, s in SUFFIXES.items() if s == output.suffix), None)
        hint = f" or add --format {other}" if other else ""
        raise UsageError(
            f"-o {output}: --format {fmt} writes a {suffix} file; name it "
            f"{output.with_suffix(suffix).name}{hint}"
        )
    if output.is_file() and not _is_export(output, fmt):
        raise UsageError(
            f"-o {output}: exists and is not a {suffix} policy; give a new file path (export "
            "replaces only a file of its own format)"
        )


def _is_export(path: Path, fmt: str) -> bool:
    """Whether ``path`` holds an exported policy of ``fmt`` (NIR: an HDF5 file)."""
    if fmt == "nir":
        with path.open("rb") as f:
            return f.read(len(_HDF5_SIGNATURE)) == _HDF5_SIGNATURE
    from ..runtime.policy import PolicyFileError, read_policy_file

    try:
        read_policy_file(path)
    except PolicyFileError:
        return False
    return True


def _check_format_options(args: argparse.Namespace) -> None:
    """Refuse options that the chosen format or quantization would ignore; fill defaults."""
    if args.per is not None and args.quantize != "int8":
        raise UsageError("--per chooses the int8 weight scales; add --quantize int8")
    nir_only = [
        o for o, v in (("--dt", args.dt), ("--nir-readout", args.nir_readout)) if v is not None
    ]
    if nir_only and args.format != "nir":
        raise UsageError(f"{', '.join(nir_only)}: for --format nir only")
    if args.format == "nir" and args.quantize == "int8":
        raise UsageError("--quantize int8: NIR stores float weights; export int8 as numpy or c")
    args.per = args.per or "channel"
    args.dt = DEFAULT_DT if args.dt is None else args.dt
    args.nir_readout = args.nir_readout or "graph"
    if args.format == "nir":
        try:
            check_dt(args.dt)
        except ExportError:
            raise UsageError(f"--dt {args.dt:g}: give (0, {MAX_DT:g}] seconds per tick") from None


def _description(run: Path) -> tuple[dict, dict]:
    """The exported description of a run, a checkpoint or converted policy, or of an exported
    ``.npz`` itself (to write it in another format)."""
    from ..export import network_spec
    from ..runtime.policy import PolicyFileError, checked_policy, read_policy_file

    if run.suffix == ".npz":
        try:
            spec, arrays = read_policy_file(run)
            checked_policy(spec, arrays, name=run)  # every array the description names is there
        except PolicyFileError as err:
            raise UsageError(str(err)) from None
        return spec, arrays
    actor, cfg, normalizer = load_policy(run)
    source = {"run": str(run), "env": cfg.env.id, "env_version": env_version(cfg.env.id),
              "actor": cfg.actor.kind, "algo": cfg.algo.name, "seed": cfg.run.seed}  # fmt: skip
    return network_spec(actor, normalizer, action_bounds(cfg.env.id), source)


def cmd_export(args: argparse.Namespace) -> int:
    from ..export import quantize_policy, write_c, write_npz
    from ..export.nir import write_nir

    _check_output(args.output, args.format, args.run)
    _check_format_options(args)
    spec, arrays = _description(args.run)
    if args.quantize == "int8":
        if "quantization" in spec:
            raise UsageError(f"{args.run}: its weights are 8-bit already; drop --quantize")
        spec, arrays = quantize_policy(spec, arrays, args.per)
    if args.format == "nir" and "quantization" in spec:
        raise UsageError(
            f"{args.run}: 8-bit weights, and NIR stores float weights; export the run or a "
            "float file"
        )
    output_folder = args.output if args.format == "c" else args.output.parent
    try:
        output_folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"-o {args.output}: {err.strerror or err}") from None
    shape = (f"{len(spec['layers'])} spiking layers, T = {spec['timesteps']}, "
             f"{'stateful' if spec['stateful'] else 'stateless'}"
             f"{', int8 weights' if 'quantization' in spec else ''}")  # fmt: skip
    if args.format == "c":
        sizes = write_c(spec, arrays, args.output)
        ram = f"RAM {sizes['ram']:,} bytes state + {sizes['stack']:,} bytes stack"
        print(f"wrote {args.output}/spikerl_policy.{{h,c}}: {shape}; "
              f"flash {sizes['flash']:,} bytes, {ram}")  # fmt: skip
        return 0
    if args.format == "nir":
        path = write_nir(spec, arrays, args.output, args.dt, args.nir_readout)
        print(f"wrote {path} ({path.stat().st_size:,} bytes): {shape}; dt = {args.dt:g} s per "
              f"tick, forward Euler, readout in the {args.nir_readout}; read it with nir.read "
              "(the host-side encoder and scaling are in the graph's metadata)")  # fmt: skip
        return 0
    path = write_npz(spec, arrays, args.output)
    print(f"wrote {path} ({path.stat().st_size:,} bytes): {shape}, "
          f"{sum(a.size for a in arrays.values()):,} stored values; run it with "
          "spikerl.runtime.load_policy")  # fmt: skip
    return 0
