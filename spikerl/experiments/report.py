"""Result tables and summary statistics (APG, mean +- std over seeds) of a folder of runs.

:func:`summarize` turns the :class:`~spikerl.experiments.run_records.RunRecord` list of a sweep
(:func:`~spikerl.experiments.run_records.collect_runs`) into a :class:`Report`. Per (method M,
env e), over the finished seeds ``s``, with ``R_{s,k}`` the k-th evaluation's mean return:

    Rbar_M(e) = mean_s max_k R_{s,k}     (max average return; std over seeds with ddof 0)
    final_M(e) = mean_s R_{s,K}          (the last evaluation)
    APG_M = mean_{e in E_M & E_B} (Rbar_M(e) / Rbar_B(e) - 1)   against the baseline B

as in arXiv 2505.24161 (Table 1). Unfinished, missing and broken runs are not averaged:
their cells say how many runs are left out, and the report lists each one. On request
(``include_unfinished``) unfinished runs that have been evaluated after their start are
averaged as they stand, marked in every cell and APG that counts them, and listed.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import numpy as np

from ..errors import UsageError
from ..tables import format_table, markdown_table
from .run_records import ENERGY_PRESETS, UNKNOWN, RunRecord
from .status import finite_or_none

__all__ = [
    "CSV_COLUMNS",
    "DEFAULT_BASELINE",
    "FORMATS",
    "Cell",
    "Gain",
    "Report",
    "apg",
    "format_table",
    "mean_std",
    "summarize",
]

DEFAULT_BASELINE = "ANN TD3"  # Table 1's baseline, used when a report has it and names none
FORMATS = ("md", "csv", "json")


def _energy_key(preset: str) -> str:
    """The CSV and JSON key of a preset's energy: ``energy_nj_proxy_target``."""
    return f"energy_nj_{preset.replace('-', '_')}"


CSV_COLUMNS = (
    "method", "env", "runs", "seeds", "left_out", "unfinished", "max_return_mean", "max_return_std",
    "final_return_mean", "final_return_std", "free_max_return_mean", "free_max_return_std",
    "free_final_return_mean", "free_final_return_std", "free_seeds",
    *map(_energy_key, ENERGY_PRESETS),
    "baseline", "apg_pct",
)  # fmt: skip


def mean_std(values: Sequence[float], ddof: int = 0) -> tuple[float, float]:
    """Mean and standard deviation over seeds (ddof 0, as the proxy-target paper's tables fit)."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return float("nan"), float("nan")
    return float(arr.mean()), float(arr.std(ddof=ddof)) if arr.size > ddof else float("nan")


def apg(method: Mapping[str, float], baseline: Mapping[str, float]) -> float:
    """Average performance gain ``mean_e (R_M(e) / R_B(e) - 1)`` over the envs both report.

    ``method`` and ``baseline`` map env ids to the seed-mean of per-seed max average returns
    (arXiv 2505.24161, Table 1). Returned as a fraction (0.0584 = +5.84%).
    """
    envs = [e for e in method if e in baseline]
    if not envs:
        raise ValueError("method and baseline share no environment")
    return float(np.mean([method[e] / baseline[e] - 1.0 for e in envs]))


@dataclass(frozen=True)
class Cell:
    """One (method, env) of the grid: ``runs`` expected, ``seeds`` of them averaged (finished,
    or ``unfinished`` of them included as they stand).

    ``max_return`` and ``final_return`` are (mean, std) over the averaged seeds; ``energy_nj``
    the mean nJ per decision per preset over the averaged seeds that have an ``energy.json``;
    ``free_max_return`` and ``free_final_return`` the same of the guide-free curves
    (``eval_free/return_mean``) of sequence runs, over the ``free_seeds`` averaged seeds that
    have one (NaN without).
    """

    method: str
    env: str
    runs: int
    seeds: int
    max_return: tuple[float, float]
    final_return: tuple[float, float]
    energy_nj: Mapping[str, float]
    unfinished: int = 0
    free_max_return: tuple[float, float] = (math.nan, math.nan)
    free_final_return: tuple[float, float] = (math.nan, math.nan)
    free_seeds: int = 0

    @property
    def left_out(self) -> int:
        """Runs not averaged: unfinished, missing or broken."""
        return self.runs - self.seeds

    @property
    def seeds_text(self) -> str:
        """``5``; ``3 (+2 left out)`` when runs are left out (unfinished, missing, failed, broken
        or copies); ``4 (incl. 2 unfinished)`` when unfinished runs are averaged as they stand
        (then ``(+1 left out)`` for the others)."""
        if not self.unfinished:
            left = f" (+{self.left_out} left out)" if self.left_out else ""
            return f"{self.seeds}{left}"
        text = f"{self.seeds} (incl. {self.unfinished} unfinished)"
        return f"{text} (+{self.left_out} left out)" if self.left_out else text


class Gain(NamedTuple):
    """APG of one method against the baseline (a fraction) over ``envs`` shared envs;
    ``complete`` is False when a cell it averages has runs left out or averages unfinished
    ones."""

    value: float
    envs: int
    complete: bool = True


@dataclass(frozen=True)
class Report:
    """The grid of :class:`Cell` (methods x envs, in the order found) and the APG per method.

    ``cells`` holds the (method, env) pairs that have runs; ``gains`` is empty without a
    baseline; ``records`` are every run, averaged or not.
    """

    methods: tuple[str, ...]
    envs: tuple[str, ...]
    cells: Mapping[tuple[str, str], Cell]
    baseline: str | None
    gains: Mapping[str, Gain]
    records: tuple[RunRecord, ...]

    @property
    def left_out(self) -> tuple[RunRecord, ...]:
        """The runs left out of every mean (not averaged), in record order."""
        return tuple(r for r in self.records if not r.averaged)

    @property
    def included(self) -> tuple[RunRecord, ...]:
        """The unfinished runs averaged as they stand (``include_unfinished``)."""
        return tuple(r for r in self.records if r.included)

    @property
    def seeds_phrase(self) -> str:
        """What the means average, for titles: ``finished seeds``, or ``seeds, n unfinished as
        they stand``."""
        if not self.included:
            return "finished seeds"
        return f"seeds, {len(self.included)} unfinished as they stand"

    @property
    def has_energy(self) -> bool:
        return any(c.energy_nj for c in self.cells.values())

    @property
    def has_guide_free(self) -> bool:
        """Whether some averaged run has a guide-free curve (sequence training)."""
        return any(c.free_seeds for c in self.cells.values())

    def averaged_runs(self, method: str, env: str) -> list[RunRecord]:
        """The runs (seeds) of one cell that its means average."""
        return [r for r in self.records if r.averaged and (r.method, r.env) == (method, env)]

    def format(self, fmt: str = "md") -> str:
        """The report as ``md`` (see :meth:`markdown`), ``csv`` (:meth:`csv`) or ``json``."""
        if fmt == "md":
            return self.markdown()
        if fmt == "csv":
            return self.csv()
        if fmt == "json":
            return json.dumps(self.to_dict(), indent=2)
        raise UsageError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}")

    def markdown(self) -> str:
        """The paper's table, one row per method and one column per env (max average return
        mean +- std, then APG), so an 8-method x 5-env grid reads like Table 1 at 7 columns;
        then the long table (final return, seeds, energy per (method, env)) and the runs left
        out (and those averaged unfinished). A cell that averages fewer runs than expected shows
        ``(averaged/expected)``."""
        parts = [self._grid_markdown(), self._long_markdown()]
        if self.included:
            parts.append(self._included_markdown())
        if self.left_out:
            parts.append(self._left_out_markdown())
        note = _NOTE if not self.included else _NOTE_UNFINISHED
        parts.append(note + (_APG_NOTE if self.baseline is not None else ""))
        return "\n\n".join(parts) + "\n"

    def _grid_markdown(self) -> str:
        headers = ["method", *self.envs]
        if self.baseline is not None:
            headers.append(f"APG vs {self.baseline}")
        rows = []
        for m in self.methods:
            row = [m, *(_grid_cell(self.cells.get((m, e))) for e in self.envs)]
            if self.baseline is not None:
                row.append("baseline" if m == self.baseline else self._gain_text(m))
            rows.append(row)
        title = f"### Max average return (mean ± std over {self.seeds_phrase})"
        notes = self._apg_notes()
        if self.included:
            notes.insert(0, f"{UNFINISHED_MARK} averages unfinished runs as they stand (below).")
        return "\n\n".join([title, markdown_table(headers, rows, left=1), *notes])

    def _gain_text(self, method: str) -> str:
        """``+5.84%``; ``(4/5 envs)`` when envs are missing, ``*`` when runs are left out."""
        gain = self.gains[method]
        if math.isnan(gain.value):
            return "-"
        partial = f" ({gain.envs}/{len(self.envs)} envs)" if gain.envs < len(self.envs) else ""
        return f"{100 * gain.value:+.2f}%{'' if gain.complete else '*'}{partial}"

    def _apg_notes(self) -> list[str]:
        """Footnotes of the APG column: runs left out, baseline means that are not positive
        (the ratio then loses its meaning)."""
        if self.baseline is None:
            return []
        notes = []
        if not all(g.complete for g in self.gains.values()):
            notes.append("\\* APG over cells with runs left out or unfinished (listed below).")
        bad = [e for e in self.envs if _mean(self.cells.get((self.baseline, e))) <= 0]
        if bad:
            notes.append(
                f"APG assumes positive returns; left out on {', '.join(bad)}, where the "
                "baseline's mean is <= 0."
            )
        return notes

    def _long_markdown(self) -> str:
        presets = ENERGY_PRESETS if self.has_energy else ()
        free = self.has_guide_free
        headers = ["method", "env", "seeds", "max avg return", "std", "final return", "std"]
        if free:
            headers += ["guide-free max", "std", "guide-free final", "std"]
        headers += [f"nJ/decision {p}" for p in presets]
        rows = [
            [
                c.method,
                c.env,
                c.seeds_text,
                *_mean_std_text(c.max_return),
                *_mean_std_text(c.final_return),
                *(_free_texts(c) if free else ()),
                *(_num(c.energy_nj.get(p, math.nan)) for p in presets),
            ]
            for c in self._ordered_cells()
        ]  # fmt: skip
        table = f"### Per method and env\n\n{markdown_table(headers, rows, left=2)}"
        return f"{table}\n\n{_FREE_NOTE}" if free else table

    def _included_markdown(self) -> str:
        return _runs_markdown("Unfinished runs averaged as they stand", self.included,
                              "step/total", left=5)  # fmt: skip

    def _left_out_markdown(self) -> str:
        return _runs_markdown("Runs left out of the means", self.left_out,
                              "step/total or problem", left=6)  # fmt: skip

    def _ordered_cells(self) -> list[Cell]:
        keys = [(m, e) for m in self.methods for e in self.envs]
        return [self.cells[k] for k in keys if k in self.cells]

    def _cell_row(self, c: Cell) -> dict[str, Any]:
        """One (method, env) with every number, as the CSV and JSON hold it (NaN: None)."""
        gain = self.gains.get(c.method)
        row = {
            "method": c.method,
            "env": c.env,
            "runs": c.runs,
            "seeds": c.seeds,
            "left_out": c.left_out,
            "unfinished": c.unfinished,
            "max_return_mean": c.max_return[0],
            "max_return_std": c.max_return[1],
            "final_return_mean": c.final_return[0],
            "final_return_std": c.final_return[1],
            "free_max_return_mean": c.free_max_return[0],
            "free_max_return_std": c.free_max_return[1],
            "free_final_return_mean": c.free_final_return[0],
            "free_final_return_std": c.free_final_return[1],
            "free_seeds": c.free_seeds,
            **{_energy_key(p): c.energy_nj.get(p, math.nan) for p in ENERGY_PRESETS},
            "baseline": self.baseline,
            "apg_pct": math.nan if gain is None else 100 * gain.value,
        }
        return {k: finite_or_none(v) for k, v in row.items()}

    def csv(self) -> str:
        """Long format: a header, then one row per (method, env) with all numbers (NaN empty)."""
        rows = [self._cell_row(c) for c in self._ordered_cells()]
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON: the cells, APG per method and every run (NaN: None)."""
        return {
            "version": 1,
            "include_unfinished": bool(self.included),
            "baseline": self.baseline,
            "methods": list(self.methods),
            "envs": list(self.envs),
            "cells": [self._cell_row(c) for c in self._ordered_cells()],
            "apg_pct": {m: finite_or_none(100 * g.value) for m, g in self.gains.items()},
            "runs": [_run_row(r) for r in self.records],
        }


_NOTE = (
    "Means over finished seeds only, std with ddof 0. Max average return: the maximum of a "
    "seed's evaluation curve (biased upward; compare the final return too)."
)
UNFINISHED_MARK = "†"  # a grid cell that averages unfinished runs as they stand

#: Run states whose curve ``include_unfinished`` averages: still going, stopped by a signal,
#: killed (``crashed``: a ``running`` status whose trainer is gone), or without a status.
INCLUDABLE_STATES = ("running", "stopped", "crashed", "unfinished")

_NOTE_UNFINISHED = (
    "Means over finished seeds and the unfinished runs listed above, each with the evaluations "
    "it has so far (a shorter curve than a finished run's), std with ddof 0. Max average return: "
    "the maximum of a seed's evaluation curve (biased upward; compare the final return too)."
)
_FREE_NOTE = (
    "Guide-free: the sequence runs' evaluation of the actor alone from a cold state "
    "(`eval_free/*`, the deployment case), over the seeds that have it (`n of m` where fewer); "
    "the return columns before it are their guided evaluation (`eval/*`: the guide flies the "
    "first `algo.sequence.eval_guide_steps` steps; without a guide the two are the same)."
)
_APG_NOTE = " APG: mean over shared envs of Rbar_M / Rbar_B - 1 (arXiv 2505.24161, Table 1)."


def summarize(
    records: Sequence[RunRecord], baseline: str | None = None, include_unfinished: bool = False
) -> Report:
    """Group runs by (method, env) and average their finished seeds; APG against ``baseline``.

    ``include_unfinished`` also averages the runs that are running, stopped, crashed (killed)
    or unfinished and were evaluated after their start, as they stand (a long run cut short, or
    one still going); failed and broken runs stay out. Copies of one run (a run folder copied,
    or extended in a copy; see :func:`_without_copies`) count once, the finished one, else the
    one furthest on; the others are left out as ``copy``.

    ``baseline`` None takes :data:`DEFAULT_BASELINE` when the runs have it (else no APG); a
    name that is no method of the runs is a :class:`~spikerl.errors.UsageError`. Runs whose
    method is unknown (a broken config in a plain folder) join no cell but stay in ``records``.
    """
    records = [replace(r, included=include_unfinished and _includable(r)) for r in records]
    records = _without_copies(records)
    labelled = [r for r in records if r.method != UNKNOWN]
    methods = tuple(dict.fromkeys(r.method for r in labelled))
    envs = tuple(dict.fromkeys(r.env for r in labelled))
    groups: dict[tuple[str, str], list[RunRecord]] = {}
    for r in labelled:
        groups.setdefault((r.method, r.env), []).append(r)
    cells = {key: _cell(*key, runs) for key, runs in groups.items()}
    baseline = _check_baseline(baseline, methods)
    gains = {} if baseline is None else {m: _gain(cells, m, baseline) for m in methods}
    return Report(methods, envs, cells, baseline, gains, tuple(records))


def _includable(r: RunRecord) -> bool:
    """An unfinished run, neither failed nor broken, evaluated past its untrained start."""
    return not r.finished and r.state in INCLUDABLE_STATES and any(step > 0 for step in r.steps)


COPY = "copy"  # the state of a run left out as a copy of another one


def _without_copies(records: list[RunRecord]) -> list[RunRecord]:
    """``records`` with the copies of a run marked :data:`COPY`. Runs are copies of one run
    when they are equal in method, env and ``learns`` (which leaves out ``run.total_steps``,
    so a copy extended by a resume counts) and their curves agree wherever both evaluated
    (runs started with another budget part at the first epoch whose curriculum or schedule
    differs). Of the copies, the finished one, else the averaged one furthest on, else the
    first, stays; the others are left out."""
    groups: dict[tuple[str, str, str], list[int]] = {}
    for i, r in enumerate(records):
        if r.learns and r.steps:
            groups.setdefault((r.method, r.env, r.learns), []).append(i)
    out = list(records)
    for members in groups.values():
        order = sorted(members, key=lambda i: (not records[i].finished, not records[i].averaged,
                                               -(records[i].step or 0), i))  # fmt: skip
        kept: list[int] = []
        for i in order:
            original = next((k for k in kept if _same_curve(records[k], records[i])), None)
            if original is None:
                kept.append(i)
                continue
            problem = f"a copy of {records[original].name} (same config, seed and curve)"
            out[i] = replace(records[i], state=COPY, included=False, problem=problem)
    return out


def _same_curve(a: RunRecord, b: RunRecord) -> bool:
    """Whether two runs evaluated after their start at some common step and agree (exactly)
    on every step both evaluated at."""
    shared = set(a.steps) & set(b.steps)
    if not any(step > 0 for step in shared):
        return False
    curve_a = dict(zip(a.steps, a.returns, strict=True))
    curve_b = dict(zip(b.steps, b.returns, strict=True))
    return all(curve_a[step] == curve_b[step] for step in shared)


def _check_baseline(name: str | None, methods: tuple[str, ...]) -> str | None:
    if name is None:
        return DEFAULT_BASELINE if DEFAULT_BASELINE in methods else None
    if name not in methods:
        raise UsageError(
            f"baseline {name!r} is not a method of these runs; choose one of {', '.join(methods)}"
        )
    return name


def _cell(method: str, env: str, runs: list[RunRecord]) -> Cell:
    done = [r for r in runs if r.averaged]
    free = [r for r in done if r.free_returns]
    energy = {
        p: float(np.mean(values))
        for p in ENERGY_PRESETS
        if (values := [r.energy_nj[p] for r in done if p in r.energy_nj])
    }
    return Cell(
        method,
        env,
        runs=sum(r.state != COPY for r in runs),  # a copy is no run the cell expects
        seeds=len(done),
        max_return=mean_std([r.max_return for r in done]),
        final_return=mean_std([r.final_return for r in done]),
        energy_nj=energy,
        unfinished=sum(r.included for r in done),
        free_max_return=mean_std([r.max_free_return for r in free]),
        free_final_return=mean_std([r.final_free_return for r in free]),
        free_seeds=len(free),
    )


def _gain(cells: Mapping[tuple[str, str], Cell], method: str, baseline: str) -> Gain:
    """APG of ``method`` over the envs where both it and the baseline have finished seeds and
    the baseline's mean is positive: with a baseline mean <= 0 (Pendulum's returns are
    negative) the ratio ``R_M / R_B`` rewards the worse method, so such envs are left out."""

    def means(m: str) -> dict[str, float]:
        return {e: c.max_return[0] for (k, e), c in cells.items() if k == m and c.seeds}

    ours, base = means(method), means(baseline)
    base = {e: r for e, r in base.items() if r > 0}
    shared = [e for e in ours if e in base]
    if not shared:
        return Gain(math.nan, 0)
    pairs = [cells[m, e] for m in (method, baseline) for e in shared]
    complete = all(not (c.left_out or c.unfinished) for c in pairs)
    return Gain(apg(ours, base), len(shared), complete)


def _run_row(r: RunRecord) -> dict[str, Any]:
    row = {
        "name": r.name,
        "method": r.method,
        "env": r.env,
        "seed": r.seed,
        "state": r.state,
        "averaged": r.averaged,
        "step": r.step,
        "total_steps": r.total_steps,
        "max_return": r.max_return,
        "final_return": r.final_return,
        "free_max_return": r.max_free_return,
        "free_final_return": r.final_free_return,
        **{_energy_key(p): r.energy_nj.get(p, math.nan) for p in ENERGY_PRESETS},
        "problem": r.problem or None,
    }
    return {k: finite_or_none(v) for k, v in row.items()}


def _mean(cell: Cell | None) -> float:
    return math.nan if cell is None or not cell.seeds else cell.max_return[0]


def _num(x: float, like: float | None = None) -> str:
    """A table number: ``-`` for NaN, whole numbers from 100 up, else 3 significant digits.

    ``like`` formats a std as its mean is formatted: ``2517 ± 53``, not ``2517 ± 52.7``.
    """
    if math.isnan(x):
        return "-"
    whole = abs(x if like is None or math.isnan(like) else like) >= 100
    return f"{x:.0f}" if whole else f"{x:.3g}"


def _free_texts(c: Cell) -> tuple[str, ...]:
    """The guide-free max, std, final, std of a cell; ``(2 of 3)`` after the max where fewer
    averaged seeds have a guide-free curve than the cell averages."""
    max_mean, max_std = _mean_std_text(c.free_max_return)
    if 0 < c.free_seeds < c.seeds:
        max_mean += f" ({c.free_seeds} of {c.seeds})"
    return max_mean, max_std, *_mean_std_text(c.free_final_return)


def _mean_std_text(mean_std: tuple[float, float]) -> tuple[str, str]:
    mean, std = mean_std
    return _num(mean), _num(std, like=mean)


def _runs_markdown(title: str, runs: Sequence[RunRecord], progress: str, left: int) -> str:
    """A titled table of runs with their state and ``progress`` column (``left``: how many
    columns are left-aligned)."""
    rows = [[r.name, r.method, r.env, "-" if r.seed is None else r.seed, r.state, r.progress]
            for r in runs]  # fmt: skip
    headers = ["run", "method", "env", "seed", "state", progress]
    return f"### {title} ({len(rows)})\n\n{markdown_table(headers, rows, left=left)}"


def _grid_cell(cell: Cell | None) -> str:
    """``9347 ± 12``; ``(3/5)`` appended when runs are left out, ``†`` when unfinished runs are
    averaged as they stand; ``-`` without runs."""
    if cell is None:
        return "-"
    text = " ± ".join(_mean_std_text(cell.max_return)) if cell.seeds else "-"
    text += UNFINISHED_MARK if cell.unfinished else ""
    return f"{text} ({cell.seeds}/{cell.runs})" if cell.left_out else text
