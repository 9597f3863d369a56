"""``spikerl sweep SWEEP.yaml``: expand a sweep file, run it, print a table of its runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import EXIT_INTERRUPTED
from ..tables import format_table
from .argtypes import non_negative_int, positive_int
from .run import CHECKPOINT_NAME
from .sweep import load_sweep
from .sweep_exec import RunState, SweepResult, check_output, run_sweep, sweep_states
from .sweep_progress import SweepDisplay, format_duration

__all__ = ["add_sweep_parser", "cmd_sweep"]


def add_sweep_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sweep",
        help="run a grid of runs (methods x envs x seeds) on a local pool or a Ray cluster",
        description="Run every run of a sweep file; finished runs are skipped and interrupted "
        "ones resumed, so the same command continues a stopped sweep (docs/experiments.md).",
    )
    p.add_argument("sweep", type=Path, help="sweep YAML file")
    p.add_argument(
        "--backend",
        choices=["local", "ray"],
        default="local",
        help="this machine's cores or a Ray cluster (default: local)",
    )
    p.add_argument(
        "--max-parallel",
        type=positive_int,
        default=None,
        metavar="N",
        help="runs at once (default: local, usable cores / threads per run; ray, cluster CPUs "
        "/ threads per run)",
    )
    p.add_argument(
        "--address",
        default=None,
        help="Ray head HOST:PORT (default: $RAY_ADDRESS, else a new local Ray instance)",
    )
    p.add_argument(
        "--output",
        type=Path,
        default=None,
        help="output folder (default: the sweep file's output)",
    )
    p.add_argument(
        "--retries",
        type=non_negative_int,
        default=None,
        metavar="N",
        help="re-runs of a crashed run, each from its checkpoint (default: the sweep file's "
        "retries, else 1)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="check the sweep (env ids, output folder) and list its runs and their state; "
        "run none (default: run them)",
    )
    p.add_argument(
        "--plain",
        action="store_true",
        help="plain log lines even on a terminal (default: a live table on a terminal)",
    )


def _dry_run_state(st: RunState, output: Path) -> str:
    if st.state != "pending":
        return {"skipped": "finished"}.get(st.state, st.state)
    return "resume" if (output / st.run.name / CHECKPOINT_NAME).is_file() else "new"


def _dry_run(sweep, states: list[RunState]) -> str:
    rows = [
        [st.run.name, st.run.method, st.run.env, st.run.seed, _dry_run_state(st, sweep.output)]
        for st in states
    ]
    table = format_table(["run", "method", "env", "seed", "state"], rows)
    tally: dict[str, int] = {}
    for row in rows:
        tally[row[-1]] = tally.get(row[-1], 0) + 1
    summary = ", ".join(f"{n} {state}" for state, n in tally.items())
    return f"{table}\n{len(rows)} runs ({summary}) -> {sweep.output}"


def _summary(result: SweepResult) -> str:
    rows = [
        [
            st.run.name,
            st.state,
            f"{st.step:,}/{st.total_steps:,}",
            float("nan") if st.last_return is None else float(st.last_return),
            st.attempts,
            format_duration(st.seconds) if st.attempts else "-",
        ]
        for st in result.states
    ]
    headers = ["run", "state", "env steps", "last return", "attempts", "time"]
    return format_table(headers, rows)


def _failures(result: SweepResult, output: Path) -> str:
    """Each failed run with the tail of its log."""
    lines = []
    for st in result.failed:
        lines.append(f"{st.run.name} ({st.state}), log {output / 'logs' / (st.run.name + '.log')}:")
        lines.extend(f"    | {line}" for line in st.error.splitlines())
    return "\n".join(lines)


def cmd_sweep(args: argparse.Namespace) -> int:
    sweep = load_sweep(args.sweep, args.output)
    if args.dry_run:  # the checks of run_sweep, but the backend's
        states = sweep_states(sweep, args.backend)
        print(_dry_run(sweep, states))
        check_output(sweep, states)
        return 0
    display = SweepDisplay(live=False) if args.plain else None
    result = run_sweep(sweep, args.backend, args.max_parallel, args.address, args.retries, display)
    print(_summary(result))
    if result.failed:
        print(_failures(result, sweep.output))
    done = sum(st.done for st in result.states)
    print(
        f"{done}/{len(result.states)} runs finished in {format_duration(result.seconds)}; "
        f"tables and plots: spikerl report {sweep.output}"
    )
    if result.interrupted:
        print("interrupted; run the same command again to continue", flush=True)
        return EXIT_INTERRUPTED
    return 1 if result.failed else 0
