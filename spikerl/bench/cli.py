"""``spikerl bench``: run the benchmark suite and write its Markdown and JSON report."""

from __future__ import annotations

import argparse
import shlex
import sys
import warnings
from dataclasses import replace
from pathlib import Path

from ..errors import EXIT_INTERRUPTED, UsageError
from ..experiments.argtypes import non_negative_int, positive_int
from ..experiments.outputs import check_output_file
from .machine import usable_cores
from .suite import SECTIONS, BenchSettings

__all__ = ["add_bench_parser", "cmd_bench"]

DEFAULT_MARKDOWN = Path("runs/bench/benchmarks.md")
DEFAULT_JSON = Path("runs/bench/benchmarks.json")
QUICK_MARKDOWN, QUICK_JSON = Path("runs/bench/quick.md"), Path("runs/bench/quick.json")


def add_bench_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``spikerl bench`` on the CLI's subparsers."""
    p = subparsers.add_parser(
        "bench",
        help="time training, sequence training, converted policies, the quadrotor env and "
        "latency on this machine (about 7 minutes on 2 CPU cores)",
    )
    p.add_argument(
        "--sections", nargs="+", choices=list(SECTIONS), default=list(SECTIONS),
        help="sections to run (default: all)",
    )  # fmt: skip
    p.add_argument("--quick", action="store_true", help="tiny windows: a smoke run, ~1 minute")
    p.add_argument(
        "--device", default="auto", help="cpu, cuda[:N] or auto (cuda when available, default)"
    )
    p.add_argument("--threads", type=non_negative_int, default=0, help="torch threads (0: all)")
    p.add_argument(
        "--repeats", type=positive_int, default=None,
        help="windows per setting (default 3; --quick: 1)",
    )  # fmt: skip
    p.add_argument(
        "--window", type=positive_int, default=None,
        help="training steps per window (default 300; --quick: 5)",
    )  # fmt: skip
    p.add_argument("--env", default=None, help="training env (default HalfCheetah-v4)")
    p.add_argument("--no-sb3", action="store_true", help="leave out Stable-Baselines3 TD3")
    p.add_argument(
        "--no-opt-in", action="store_true",
        help="leave out the bfloat16 and compiled training variants (they compile ~1 minute)",
    )  # fmt: skip
    p.add_argument(
        "--markdown", type=Path, default=None,
        help=f"report path (default {DEFAULT_MARKDOWN}; --quick: {QUICK_MARKDOWN}, so a smoke "
        "run never replaces a full run's report)",
    )  # fmt: skip
    p.add_argument(
        "--json", type=Path, default=None,
        help=f"results as JSON (default {DEFAULT_JSON}; --quick: {QUICK_JSON})",
    )  # fmt: skip
    p.add_argument(
        "--plot", type=Path, default=None, metavar="PNG",
        help="also draw the training section (steps/s and roofline fraction; needs matplotlib)",
    )  # fmt: skip
    p.add_argument(
        "--from-json", type=Path, default=None, metavar="PATH",
        help="time nothing: redraw --plot (and rewrite --markdown) from a saved --json file",
    )  # fmt: skip


def _device(spec: str) -> str:
    import torch

    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {spec}: torch sees no CUDA device here; use cpu or auto")
    if spec != "cpu" and not spec.startswith("cuda"):
        raise UsageError(f"--device {spec!r}: choose cpu, cuda, cuda:N or auto")
    return spec


def _outputs(**paths: Path | None) -> list[Path]:
    """The report paths given (``markdown=``, ``json=``, ``plot=``), checked before the timing
    starts, not after ten minutes of it; their missing folders are created only when they are
    written."""
    given = [(f"--{name}", path) for name, path in paths.items() if path is not None]
    for option, path in given:
        check_output_file(path, option)
    seen: dict[Path, str] = {}
    for option, path in given:
        other = seen.setdefault(path.resolve(), option)
        if other != option:
            raise UsageError(f"{other} and {option} name one file, {path}; give each its own")
    return [path for _, path in given]


def _make_folders(paths: list[Path]) -> None:
    try:
        for path in paths:
            path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"cannot create {err.filename}: {err.strerror or err}") from None


def _settings(args: argparse.Namespace) -> BenchSettings:
    changes = {"device": _device(args.device), "threads": args.threads, "sb3": not args.no_sb3}
    if args.no_opt_in:
        changes["opt_in"] = False
    changes |= {k: v for k, v in (("repeats", args.repeats), ("window", args.window),
                                  ("env_id", args.env)) if v is not None}  # fmt: skip
    return BenchSettings.quick(**changes) if args.quick else replace(BenchSettings(), **changes)


def _saved_results(path: Path) -> dict:
    import json

    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UsageError(f"--from-json {path}: not a readable JSON file ({err})") from None
    if not isinstance(results, dict) or "machine" not in results or "command" not in results:
        raise UsageError(f"--from-json {path}: not a spikerl bench result (no machine, command)")
    return results


def _redraw(args: argparse.Namespace) -> int:
    from ..atomic import write_text_atomic
    from .report import plot_training, render_markdown

    timing = {"--quick": args.quick, "--json": args.json, "--repeats": args.repeats,
              "--window": args.window, "--env": args.env, "--threads": args.threads,
              "--no-sb3": args.no_sb3, "--no-opt-in": args.no_opt_in,
              "--sections": args.sections != list(SECTIONS)}  # fmt: skip
    ignored = [option for option, value in timing.items() if value]
    if ignored:
        raise UsageError(f"--from-json times nothing, so {', '.join(ignored)} would be ignored; "
                         "drop them")  # fmt: skip
    results = _saved_results(args.from_json)
    if args.plot is None and args.markdown is None:
        raise UsageError("--from-json redraws --plot PNG and/or rewrites --markdown PATH; give one")
    given = _outputs(markdown=args.markdown, plot=args.plot, **{"from-json": args.from_json})
    _make_folders(given[:-1])  # not the input, the last one
    try:
        if args.plot is not None:
            if "training" not in results:
                raise UsageError(f"--from-json {args.from_json}: no training section to plot")
            print(f"wrote {plot_training(results, args.plot)}", file=sys.stderr)
        if args.markdown is not None:
            write_text_atomic(args.markdown, render_markdown(results, results["command"]))
            print(f"wrote {args.markdown}", file=sys.stderr)
    except (KeyError, TypeError, IndexError, ValueError, AttributeError) as err:  # edited
        raise UsageError(
            f"--from-json {args.from_json}: incomplete bench result ({err!r})"
        ) from None
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .report import busy_warning, plot_training, render_markdown, write_report
    from .suite import run_suite

    if args.from_json is not None:
        return _redraw(args)
    args.markdown = args.markdown or (QUICK_MARKDOWN if args.quick else DEFAULT_MARKDOWN)
    args.json = args.json or (QUICK_JSON if args.quick else DEFAULT_JSON)
    settings = _settings(args)
    outputs = _outputs(markdown=args.markdown, json=args.json, plot=args.plot)
    if args.plot is not None and "training" not in args.sections:
        raise UsageError("--plot draws the training section; add training to --sections")
    if args.env is not None and not {"training", "seeds"} & set(args.sections):
        raise UsageError("--env is the training and seeds sections' env; add one of them")
    cores = usable_cores()
    if args.threads > cores:
        print(f"warning: --threads {args.threads} on {cores} usable cores: the threads share "
              "cores, and the timings measure that too", file=sys.stderr)  # fmt: skip
    if args.plot is not None:
        from ..experiments.report_plots import matplotlib_or_error

        matplotlib_or_error("benchmark plots")  # before the timing, not after it
    warnings.filterwarnings("ignore", module=r"gymnasium(\..*)?")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    command = "spikerl bench " + shlex.join(sys.argv[2:]) if sys.argv[1:2] == ["bench"] else ""
    command = command.strip() or "spikerl bench"
    sections = [name for name in SECTIONS if name in args.sections]
    results = run_suite(settings, sections, lambda line: print(line, file=sys.stderr, flush=True))
    _make_folders(outputs)
    write_report(results, command, args.markdown, args.json)
    print(render_markdown(results, command))
    print(f"wrote {args.markdown} and {args.json}", file=sys.stderr)
    warning = busy_warning(results)
    if warning:
        print(f"warning: {warning.replace('**', '')}", file=sys.stderr)
    if "interrupted" in results:
        print(f"interrupted in the {results['interrupted']} section; the report holds the "
              "sections before it", file=sys.stderr)  # fmt: skip
        return EXIT_INTERRUPTED
    if args.plot is not None and "training" in results:
        print(f"wrote {plot_training(results, args.plot)}", file=sys.stderr)
    return 0
