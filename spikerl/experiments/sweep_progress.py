"""Live progress of a sweep: a table of runs and an overall bar with an ETA, or plain log lines.

On a terminal the display redraws in place (at most twice a second): one line per running or
failed run (state, env steps, last evaluation return, steps/s) under an overall bar counting
env steps over all runs, with an ETA from the sweep's throughput over the last two minutes. Events
(a run started, finished, crashed and retried, failed) print above the table. Elsewhere (logs,
CI, ``nohup``) every event is one plain line and a summary line follows every 30 seconds.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections import Counter, deque
from typing import TextIO

from ..tables import format_table

__all__ = ["SweepDisplay", "format_duration", "overall_line"]

REDRAW_EVERY, SUMMARY_EVERY = 0.5, 30.0
ETA_WINDOW = 120.0  # seconds of throughput the ETA is based on
BAR_WIDTH = 24


def format_duration(seconds: float | None) -> str:
    """``1h02m``, ``4m10s``, ``12s``; ``?`` when unknown."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def _steps_done(states) -> int:
    return sum(st.total_steps if st.done else min(st.step, st.total_steps) for st in states)


def _counts(states) -> str:
    counts = Counter("done" if st.done else st.state for st in states)
    order = ("done", "running", "pending", "stopped", "failed", "conflict")
    return ", ".join(f"{counts[k]} {k}" for k in order if counts[k])


def overall_line(states, eta: float | None) -> str:
    """``[#######.........]  45%  12,345/27,000 steps | 3 done, 2 running | ETA 4m10s``."""
    total = sum(st.total_steps for st in states) or 1
    done = _steps_done(states)
    filled = int(BAR_WIDTH * done / total)
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    return (
        f"[{bar}] {100 * done / total:3.0f}%  {done:,}/{total:,} steps | {_counts(states)} "
        f"| ETA {format_duration(eta)}"
    )


def _run_rows(states, limit: int) -> list[list]:
    shown = [st for st in states if st.state in ("running", "failed", "conflict")]
    rows = []
    for st in shown[:limit]:
        rows.append(
            [
                st.run.name,
                st.state if st.attempts <= 1 else f"{st.state} (try {st.attempts})",
                f"{st.step:,}/{st.total_steps:,}",
                float("nan") if st.last_return is None else float(st.last_return),
                float("nan") if st.steps_per_sec is None else float(st.steps_per_sec),
            ]
        )
    if len(shown) > limit:
        rows.append([f"... {len(shown) - limit} more", "", "", float("nan"), float("nan")])
    return rows


class SweepDisplay:
    """Progress for :func:`~spikerl.experiments.sweep_exec.run_sweep` on ``stream``."""

    def __init__(self, stream: TextIO | None = None, live: bool | None = None) -> None:
        stream = sys.stderr if stream is None else stream
        self.stream = stream
        self.live = stream.isatty() if live is None else live
        self._drawn_lines = 0
        self._last_draw = self._last_summary = 0.0
        self._samples: deque[tuple[float, int]] = deque()  # (time, env steps done)

    # -- events --------------------------------------------------------------------------
    def event(self, st) -> None:
        """A run changed state; one line above the table (live) or in the log (plain)."""
        self._print(self._event_text(st))

    def note(self, message: str) -> None:
        self._print(message)

    def _event_text(self, st) -> str:
        name, tries = st.run.name, f"attempt {st.attempts}"
        if st.state == "running":
            return f"start    {name} ({tries})"
        if st.state == "finished":
            ret = "" if st.last_return is None else f", last return {st.last_return:.1f}"
            return f"finished {name} in {format_duration(st.seconds)}{ret}"
        if st.state == "pending":  # returned to the queue: a crash with retries left
            return f"retry    {name} after a crash ({tries} failed):\n{_indent(st.error)}"
        if st.state == "failed":
            return f"FAILED   {name} after {st.attempts} attempts:\n{_indent(st.error)}"
        return f"{st.state:8s} {name} at step {st.step:,}"

    # -- periodic ------------------------------------------------------------------------
    def eta(self, states) -> float | None:
        """Remaining env steps over the sweep's throughput in the last :data:`ETA_WINDOW`
        seconds (so the estimate follows the runs in flight, fast or slow)."""
        now, done = time.perf_counter(), _steps_done(states)
        self._samples.append((now, done))
        while len(self._samples) > 2 and now - self._samples[1][0] >= ETA_WINDOW:
            self._samples.popleft()
        then, done_then = self._samples[0]
        rate = (done - done_then) / (now - then) if now > then else 0.0
        remaining = sum(st.total_steps for st in states) - done
        return remaining / rate if rate > 0 else None

    def update(self, states) -> None:
        now = time.perf_counter()
        eta = self.eta(states)
        if self.live and now - self._last_draw >= REDRAW_EVERY:
            self._draw(states, eta)
            self._last_draw = now
        elif not self.live and now - self._last_summary >= SUMMARY_EVERY:
            self.stream.write(f"sweep {overall_line(states, eta)}\n")
            self.stream.flush()
            self._last_summary = now

    def close(self, states) -> None:
        if self.live:
            self._draw(states, self.eta(states))
        else:
            self.stream.write(f"sweep {overall_line(states, None)}\n")
        self.stream.flush()
        self._drawn_lines = 0

    # -- drawing -------------------------------------------------------------------------
    def _draw(self, states, eta: float | None) -> None:
        height = shutil.get_terminal_size((100, 24)).lines
        rows = _run_rows(states, limit=max(height - 6, 3))
        text = overall_line(states, eta)
        if rows:
            headers = ["run", "state", "env steps", "last return", "steps/s"]
            text = format_table(headers, rows) + "\n" + text
        self._erase()
        self.stream.write(text + "\n")
        self.stream.flush()
        self._drawn_lines = text.count("\n") + 1

    def _erase(self) -> None:
        if self._drawn_lines:
            self.stream.write(f"\x1b[{self._drawn_lines}F\x1b[J")

    def _print(self, text: str) -> None:
        if self.live:
            self._erase()
            self._drawn_lines = 0
        self.stream.write(text + "\n")
        self.stream.flush()


def _indent(text: str) -> str:
    return "\n".join(f"    | {line}" for line in text.splitlines()) or "    | (empty log)"
