"""Command-line interface: ``spikerl train | evaluate | energy | quickstart | sweep | report |
grad-analysis | convert | convert-sweep | analyze-conversion | bench``.

The CLI only parses arguments and calls the library; ``main(argv)`` can be called in-process.
Every expected failure (bad config, bad run directory, corrupt checkpoint, unknown env, missing
optional dependency, divergence) is a :class:`~spikerl.errors.SpikerlError` raised where it
happens; :func:`main` catches that one base class, prints one ``error:`` line and exits with the
error's status (2: usage, 1: run failure), never a traceback.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from . import __version__
from .atomic import write_output
from .bench.cli import add_bench_parser, cmd_bench
from .errors import EXIT_INTERRUPTED, SpikerlError, UsageError
from .experiments.argtypes import non_negative_int, positive_int, seed, seed_list, unit_interval
from .experiments.config import ConfigError, format_config_help, load_config
from .experiments.convert_cli import (
    add_analyze_parser,
    add_convert_parser,
    add_convert_sweep_parser,
    cmd_analyze,
    cmd_convert,
    cmd_convert_sweep,
)
from .experiments.energy_cli import add_energy_parser, cmd_energy
from .experiments.export_cli import add_export_parser, cmd_export
from .experiments.grad_analysis import add_grad_analysis_parser, cmd_grad_analysis
from .experiments.outputs import check_output_file, check_output_folder
from .experiments.report import format_table
from .experiments.report_cli import add_report_parser, cmd_report
from .experiments.run import load_run_config, train
from .experiments.seeds_run import seed_configs, train_seeds
from .experiments.sweep_cli import add_sweep_parser, cmd_sweep

__all__ = ["main"]


def _add_overrides(p: argparse.ArgumentParser, scope: str) -> None:
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"dotted config override{scope}, e.g. --set algo.tau=0.01 (repeatable)",
    )


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train an agent from a YAML preset and overrides")
    p.add_argument("--config", type=Path, help="YAML preset (default: built-in defaults)")
    _add_overrides(p, "")
    p.add_argument(
        "--runs-dir", type=Path, default=Path("runs"), help="parent of run folders (default: runs)"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing run folder (refused if it holds files training did not write)",
    )
    p.add_argument(
        "--seeds",
        type=seed_list,
        metavar="SEEDS",
        help="train these seeds (0-7, 0,2,5) in one process, batched; one run folder each",
    )
    p.add_argument(
        "--resume",
        type=Path,
        nargs="+",
        metavar="RUN_DIR",
        help="continue a stopped run (several: the seeds of one --seeds run, together)",
    )
    p.add_argument("--help-config", action="store_true", help="list every config key and exit")


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="re-evaluate a run's checkpoint (optionally record video)")
    p.add_argument(
        "run",
        type=Path,
        nargs="+",
        help="run directory or a checkpoint inside one (checkpoint.pt, best.pt, "
        "policies/step-<N>.pt); several: one summary row each",
    )
    p.add_argument(
        "--episodes", type=positive_int, default=None, help="episodes (default: the run's)"
    )
    p.add_argument(
        "--curriculum",
        type=unit_interval,
        default=None,
        metavar="RHO",
        help="reward curriculum rho in [0, 1] for envs that have one (the quadrotor); "
        "default: the env's start",
    )
    p.add_argument(
        "--seed",
        type=seed,
        default=None,
        help="start states from this seed's evaluation stream (default: the run's seed; "
        "another seed gives held-out starts, e.g. to choose a checkpoint on)",
    )
    p.add_argument(
        "--guide-steps",
        type=non_negative_int,
        default=None,
        metavar="W",
        help="sequence runs: the run's guide flies the first W steps of each episode, as in the "
        "run's eval/* rows (W = algo.sequence.eval_guide_steps, 50 in the presets); default 0: "
        "the actor alone from a cold state, as the eval_free/* rows. A sequence run is flown "
        "from the start states of its in-run evaluations: with --curriculum at the evaluated "
        "epoch's rho (the env/curriculum of the row before) both give the run's own numbers",
    )
    p.add_argument(
        "--video",
        type=Path,
        default=None,
        help="folder to write episode videos to (the quadrotor: a trajectory plot)",
    )
    p.add_argument(
        "--csv", type=Path, default=None, metavar="PATH", help="also write the summary rows as CSV"
    )


def _add_quickstart(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "quickstart", help="train ANN TD3 and proxy-target LIF side by side and compare them"
    )
    p.add_argument("--env", default="Pendulum-v1", help="Gymnasium env id (default: Pendulum-v1)")
    p.add_argument(
        "--steps", type=int, default=8000, help="env steps per method, >= 2000 (default: 8000)"
    )
    p.add_argument("--seed", type=seed, default=0, help="random seed (default: 0)")
    p.add_argument(
        "--runs-dir",
        type=Path,
        default=Path("runs/quickstart"),
        help="where the two runs go (default: runs/quickstart; a second call reuses or "
        "continues the same runs; it never deletes a folder it did not create)",
    )
    _add_overrides(p, " applied to both methods")


class _Parser(argparse.ArgumentParser):
    """argparse with a bad argument reported in one line (the usage is one ``--help`` away);
    its subcommands' parsers are of this class too."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="spikerl", description="Spiking neural network policies for continuous control."
    )
    parser.add_argument("--version", action="version", version=f"spikerl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_evaluate(sub)
    add_energy_parser(sub)
    _add_quickstart(sub)
    add_sweep_parser(sub)
    add_report_parser(sub)
    add_grad_analysis_parser(sub)
    add_convert_parser(sub)
    add_convert_sweep_parser(sub)
    add_analyze_parser(sub)
    add_bench_parser(sub)
    add_export_parser(sub)
    return parser


def _print_config_help() -> None:
    print(format_config_help())


def _result_table(cfgs, results) -> str:
    rows = [
        [
            cfg.run_name,
            cfg.env.id,
            result.steps,
            result.summary["max_return"],
            result.summary["final_return"],
            result.steps_per_sec,
        ]
        for cfg, result in zip(cfgs, results, strict=True)
    ]
    return format_table(["run", "env", "steps", "max avg return", "final return", "steps/s"], rows)


def _cmd_train(args: argparse.Namespace) -> int:
    if args.help_config:
        _print_config_help()
        return 0
    if args.resume is not None:
        if args.config is not None or args.overrides or args.seeds:
            raise ConfigError(
                "--resume continues runs with their saved configs; drop --config/--set/--seeds"
            )
        cfgs = [load_run_config(run_dir) for run_dir in args.resume]
        results = _train_runs(cfgs, resume=True, run_dirs=args.resume)
    else:
        cfg = load_config(args.config, args.overrides)
        if args.seeds and any(o.split("=", 1)[0].strip() == "run.seed" for o in args.overrides):
            raise ConfigError("--seeds and --set run.seed both choose the seed; use one")
        cfgs = seed_configs(cfg, args.seeds) if args.seeds else [cfg]
        results = _train_runs(cfgs, runs_root=args.runs_dir, overwrite=args.overwrite)
    print(_result_table(cfgs, results))
    if len(results) > 1:
        together = sum(r.steps_per_sec for r in results)
        print(f"{len(results)} seeds in one process: {together:.1f} env steps/s together")
    if any(r.interrupted for r in results):
        folders = " ".join(str(r.run_dir) for r in results)
        steps = sorted({r.steps for r in results})
        at = f"step {steps[0]}" if len(steps) == 1 else f"steps {', '.join(map(str, steps))}"
        print(
            f"interrupted at {at}; continue with: spikerl train --resume {folders}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    for result in results:
        print(f"run folder: {result.run_dir}")
    return 0


def _train_runs(cfgs, runs_root=Path("runs"), resume=False, overwrite=False, run_dirs=None):
    """One run with :func:`train`; several seeds of one config together, batched."""
    if len(cfgs) == 1:
        run_dir = run_dirs[0] if run_dirs else None
        return [train(cfgs[0], runs_root, resume=resume, overwrite=overwrite, run_dir=run_dir)]
    return train_seeds(cfgs, runs_root, resume=resume, overwrite=overwrite, run_dirs=run_dirs)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .experiments.evaluation import eval_info_labels
    from .experiments.policy import check_guide_steps, evaluate_loaded, load_policy
    from .experiments.provenance import env_version

    if args.video is not None and len(args.run) > 1:
        raise UsageError("--video records one policy; give one run or checkpoint")
    if args.csv is not None:
        check_output_file(args.csv, "--csv", reads=args.run)
    if args.video is not None:
        check_output_folder(args.video, "--video")
    policies = {str(path): load_policy(path) for path in args.run}
    for path, (_, cfg, _) in policies.items():  # before anything flies
        check_guide_steps(args.guide_steps, cfg, path, "--guide-steps")
    if len({cfg.env.id for _, cfg, _ in policies.values()}) > 1:
        listed = ", ".join(f"{path} ({cfg.env.id})" for path, (_, cfg, _) in policies.items())
        raise UsageError(f"evaluate compares policies of one environment; got {listed}")
    rows = []
    for path, policy in policies.items():
        cfg = policy[1]
        result = evaluate_loaded(
            policy, args.episodes, args.video, curriculum=args.curriculum, seed=args.seed,
            guide_steps=args.guide_steps,
        )  # fmt: skip
        extras = list(result.info)  # env-declared extras: the quadrotor's position error
        if len(args.run) == 1:
            episodes = [
                [i, float(ret), int(length), *(float(result.info[k][i - 1]) for k in extras)]
                for i, (ret, length) in enumerate(
                    zip(result.returns, result.lengths, strict=True), 1
                )
            ]
            print(format_table(["episode", "return", "length", *extras], episodes))
            print()
        summary = [result.returns.mean(), result.returns.std(), result.lengths.mean()]
        summary += [float(result.info[k].mean()) for k in extras]
        name = cfg.run_name if len(args.run) == 1 else str(path)
        rows.append([name, cfg.env.id, len(result.returns), *summary])
    labels = eval_info_labels(cfg.env.id)
    headers = ["run", "env", "episodes", "return mean", "return std", "length"]
    headers += [labels.get(k, k) for k in extras]
    print(format_table(headers, rows))
    if args.csv is not None:
        _write_csv(args.csv, headers, rows)
    counts = {row[2] for row in rows}
    at = "" if args.curriculum is None else f", reward curriculum rho = {args.curriculum:g}"
    stream = "the run seed's" if args.seed is None else f"seed {args.seed}'s"
    episodes_text = "episodes as listed"
    if len(counts) == 1:
        count = counts.pop()
        each = " each" if len(args.run) > 1 else ""
        episodes_text = f"{count} episode{'s' if count != 1 else ''}{each}"
    print(f"{episodes_text}, deterministic actor, start states from {stream} evaluation stream{at}")
    if any(c.algo.name == "sequence" for _, c, _ in policies.values()):
        w = args.guide_steps or 0
        flown = f"the guide flying the first {w} steps" if w else "the actor alone, cold state"
        print(f"sequence runs flown as their in-run evaluations fly: {flown}")
    print(f"environment: {env_version(cfg.env.id)}")
    return 0


def _write_csv(path: Path, headers: list[str], rows: list[list]) -> None:
    """``rows`` under ``headers`` as CSV, written atomically (a bad path is one error line)."""
    import csv

    from .experiments.run import RunError

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows([[f"{x:.6g}" if isinstance(x, float) else x for x in row] for row in rows])
    write_output(path, lambda tmp: tmp.write_text(text.getvalue(), encoding="utf-8"), RunError)
    print(f"wrote {path}")


def _cmd_quickstart(args: argparse.Namespace) -> int:
    from .experiments.quickstart import quickstart

    if args.steps < 2000:
        raise ConfigError("--steps must be at least 2000 (1000 of them are random warm-up)")
    print(quickstart(args.env, args.steps, args.seed, args.runs_dir, args.overrides))
    return 0


COMMANDS = {
    "train": _cmd_train,
    "evaluate": _cmd_evaluate,
    "energy": cmd_energy,
    "quickstart": _cmd_quickstart,
    "sweep": cmd_sweep,
    "report": cmd_report,
    "grad-analysis": cmd_grad_analysis,
    "convert": cmd_convert,
    "convert-sweep": cmd_convert_sweep,
    "analyze-conversion": cmd_analyze,
    "bench": cmd_bench,
    "export": cmd_export,
}


def _one_line(err: BaseException) -> str:
    """The error's message on one line (a multi-line message is joined), or its class name."""
    parts = [part.strip() for part in str(err).splitlines() if part.strip()]
    return " ".join(parts) or type(err).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except SpikerlError as err:  # every expected failure: one line, the class's exit status
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # stdout piped into a reader that stopped early (``| head``)
        _discard_stdout()
        return 1


def _discard_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass  # in-process callers with a replaced stdout


if __name__ == "__main__":
    sys.exit(main())
