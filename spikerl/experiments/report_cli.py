"""``spikerl report DIR``: result tables, and optionally plots, of a sweep or a folder of runs.

The table goes to stdout, or to ``--output FILE``. Everything else (the plot paths, notes about
runs left out of the means or a skipped plot) goes to stderr, so a CSV or JSON on stdout stays
machine-readable.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..atomic import write_output
from .outputs import check_output_file, check_output_folder
from .report import DEFAULT_BASELINE, FORMATS, Report, summarize
from .run_records import ENERGY_NAME, ReportError, collect_runs

__all__ = ["PLOTS_DIR", "add_report_parser", "cmd_report"]

PLOTS_DIR = "report"  # default plot folder inside DIR (a name a sweep never gives a run)


def add_report_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``spikerl report`` on the CLI's subparsers."""
    p = subparsers.add_parser(
        "report", help="result tables (and plots) of a sweep folder or a folder of runs"
    )
    p.add_argument(
        "dir", type=Path, metavar="DIR", help="sweep folder (with sweep.json) or folder of runs"
    )
    p.add_argument(
        "--baseline",
        metavar="METHOD",
        default=None,
        help=f"method label APG compares against (default: the sweep's baseline, else "
        f"{DEFAULT_BASELINE!r} when present, else no APG)",
    )
    p.add_argument(
        "--format", choices=FORMATS, default="md", help="table format (default: md, Markdown)"
    )
    p.add_argument(
        "--output", type=Path, metavar="FILE", default=None, help="write the table to FILE"
    )
    p.add_argument(
        "--plots", action="store_true", help="also write PNG plots (needs spikerl[plot])"
    )
    p.add_argument(
        "--include-unfinished",
        action="store_true",
        help="also average running, stopped or killed runs as they stand (their evaluations "
        "so far), listed in their own table; failed and broken runs stay out",
    )
    p.add_argument(
        "--plots-dir",
        type=Path,
        metavar="PLOTS_DIR",
        default=None,
        help=f"folder for the plots (default: DIR/{PLOTS_DIR}/; implies --plots)",
    )


def cmd_report(args: argparse.Namespace) -> int:
    """Summarize ``args.dir``, print or write the table, optionally draw the plots."""
    runs = collect_runs(args.dir)
    if args.output is not None:
        check_output_file(args.output, "--output")
    if args.plots or args.plots_dir is not None:
        plots = "--plots-dir" if args.plots_dir is not None else "the plots folder"
        check_output_folder(args.plots_dir or args.dir / PLOTS_DIR, plots)
    report = summarize(runs.records, args.baseline or runs.baseline, args.include_unfinished)
    text = report.format(args.format)
    text = text if text.endswith("\n") else text + "\n"
    if args.output is None:
        sys.stdout.write(text)
    else:
        _write_text(args.output, text)
        _note(f"table: {args.output}")
    if args.format != "md" and report.left_out:  # the Markdown table lists them itself
        _note(
            f"{len(report.left_out)} run(s) are left out of the means (unfinished, failed, "
            "broken or copies; --format md lists each with its state)"
        )
    if args.format != "md" and report.included:
        _note(f"{len(report.included)} unfinished run(s) are averaged as they stand")
    if args.plots or args.plots_dir is not None:
        _plots(report, args.plots_dir or args.dir / PLOTS_DIR)
    return 0


def _plots(report: Report, out_dir: Path) -> None:
    from .report_plots import write_plots

    for path in write_plots(report, out_dir):
        _note(f"plot: {path}")
    if not report.has_energy:
        _note(f"no finished run has an {ENERGY_NAME}; the energy-vs-return plot is skipped")


def _write_text(path: Path, text: str) -> None:
    write_output(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), ReportError)


def _note(message: str) -> None:
    print(message, file=sys.stderr)
