"""Plots of a :class:`~spikerl.experiments.report.Report`, one PNG each, one panel per env.

- ``learning_curves.png``: per method, the mean over its averaged seeds of
  ``eval/return_mean`` against env steps with a +-1 std band. Finished seeds are aligned on the
  evaluation steps they all have: ``mean_s R_s(t)`` for ``t`` in the intersection of their step
  sets; when the report averages unfinished runs as they stand, each step averages the runs
  that reached it (the union of the step sets), so a run cut short ends its share early.
- ``guide_free_curves.png``: the same of the guide-free evaluation (``eval_free/return_mean``,
  the actor alone from a cold state) of sequence runs; written only when some averaged run has
  it.
- ``max_return.png``: the grid as bars, one per method: mean max average return, std error bars.
- ``eval_info_curves.png``: curves of the evaluation info an env declares (the quadrotor's
  position error and crash rate), mean over the averaged seeds per method, one row per
  quantity; written only when some averaged run has such columns.
- ``energy_vs_return.png``: mean max average return against nJ per decision (45 nm preset, log
  scale), one labelled marker per (method, env); written only when some run has an
  ``energy.json``.

matplotlib (``pip install 'spikerl[plot]'``) is imported when a plot is drawn. Figures render
on the Agg canvas directly, without pyplot, so no global backend or figure list is touched.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MissingDependencyError
from .report import Report
from .run_records import ReportError, RunRecord

__all__ = ["ENERGY_PLOT_PRESET", "aligned_curves", "write_plots"]

ENERGY_PLOT_PRESET = "45nm"
PANEL_COLUMNS = 3  # envs per row of panels


def write_plots(report: Report, out_dir: str | Path) -> list[Path]:
    """Draw the plots of ``report`` into ``out_dir`` (created); returns the PNG paths.

    The energy plot is left out when no averaged run has an ``energy.json``
    (:attr:`Report.has_energy`). Raises MissingDependencyError without matplotlib.
    """
    out_dir = Path(out_dir)
    drawings: list[tuple[str, Callable[[Report], Any]]] = [
        ("learning_curves.png", _learning_curves),
        ("max_return.png", _return_bars),
    ]
    if report.has_guide_free:
        drawings.append(("guide_free_curves.png", _guide_free_curves))
    if report.has_energy:
        drawings.append(("energy_vs_return.png", _energy_scatter))
    if _info_labels(report):
        drawings.append(("eval_info_curves.png", _info_curves))
    matplotlib_or_error()  # fail before creating the folder
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ReportError(f"cannot create plot folder {out_dir}: {err.strerror or err}") from None
    paths = []
    for name, draw in drawings:
        path = out_dir / name
        try:
            draw(report).savefig(path, dpi=110)
        except OSError as err:
            raise ReportError(f"cannot write {path}: {err.strerror or err}") from None
        paths.append(path)
    return paths


def matplotlib_or_error(what: str = "report plots") -> Any:
    """The matplotlib module, or a MissingDependencyError saying what to install."""
    try:
        import matplotlib
        import matplotlib.backends.backend_agg  # noqa: F401 (the canvas of every figure)
        import matplotlib.figure  # noqa: F401
        import matplotlib.ticker  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            f"{what} need matplotlib, which is not installed; pip install 'spikerl[plot]'"
        ) from None
    return matplotlib


def _panels(report: Report, title: str) -> tuple[Any, list[Any]]:
    """A figure on the Agg canvas with one panel per env (rows of :data:`PANEL_COLUMNS`)."""
    mpl = matplotlib_or_error()
    n = max(len(report.envs), 1)
    cols = min(n, PANEL_COLUMNS)
    rows = math.ceil(n / cols)
    size = (max(4.4 * cols, 6.4), 3.3 * rows + 0.9)  # one panel: wide enough for the title
    fig = mpl.figure.Figure(figsize=size, layout="constrained")
    mpl.backends.backend_agg.FigureCanvasAgg(fig)
    axes = list(fig.subplots(rows, cols, squeeze=False).ravel())
    for ax in axes[n:]:
        fig.delaxes(ax)
    for ax, env in zip(axes, report.envs, strict=False):
        ax.set_title(env)
        ax.grid(alpha=0.3)
        ax.set_axisbelow(True)
    fig.suptitle(title)
    return fig, axes[:n]


def _colors(report: Report) -> dict[str, Any]:
    """One color per method, the same in every plot (tab10, or tab20 beyond ten methods)."""
    mpl = matplotlib_or_error()
    cmap = mpl.colormaps["tab10" if len(report.methods) <= 10 else "tab20"]
    return {m: cmap(i % cmap.N) for i, m in enumerate(report.methods)}


def _note_if_empty(ax: Any, text: str) -> None:
    """Say why a panel has nothing drawn in it."""
    if not ax.has_data():
        ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")


def _legend(fig: Any, axes: list[Any]) -> None:
    """One legend for the figure, below the panels, each method once."""
    entries: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    if entries:
        fig.legend(
            entries.values(),
            entries.keys(),
            loc="outside lower center",
            ncol=_legend_columns(fig, list(entries)),
            frameon=False,
        )


def _legend_columns(fig: Any, labels: list[str]) -> int:
    """As many legend columns (at most 5) as entries of the longest label fit side by side in
    the figure's width (about 6 points a character at the legend's font, 35 for the handle),
    so long labels (``TD3BC+JSRL [builtin-v1]``) wrap into rows instead of running off."""
    entry = 6.0 * max(len(label) for label in labels) + 35.0
    fit = int(fig.get_figwidth() * 72 // entry)
    return max(1, min(len(labels), 5, fit))


def aligned_curves(runs: list[RunRecord], union: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Steps ``[K]`` that every run evaluated at, and the returns there, ``[S, K]``; with
    ``union`` the steps any run evaluated at, NaN where a run has none (runs cut short)."""
    return _aligned(runs, lambda r: r.returns, union)


def _learning_curves(report: Report) -> Any:
    title = f"Learning curves: mean ± std over {report.seeds_phrase}"
    return _return_curves(report, title, lambda r: r.returns, "mean eval return",
                          "no averaged runs")  # fmt: skip


def _guide_free_curves(report: Report) -> Any:
    title = (f"Guide-free evaluation (the actor alone from a cold state)\n"
             f"mean ± std over {report.seeds_phrase}")  # fmt: skip
    return _return_curves(report, title, lambda r: r.free_returns, "mean guide-free return",
                          "no guide-free curves")  # fmt: skip


def _return_curves(
    report: Report,
    title: str,
    values: Callable[[RunRecord], tuple[float, ...]],
    ylabel: str,
    empty: str,
) -> Any:
    """Per env, per method: the mean over its averaged runs that have ``values`` of that curve
    against env steps, with a +-1 std band; ``empty`` says why a panel has none."""
    fig, axes = _panels(report, title)
    colors = _colors(report)
    mpl = matplotlib_or_error()
    for ax, env in zip(axes, report.envs, strict=True):
        for method in report.methods:
            # runs cut short end early: each step averages the runs that reached it
            runs = [r for r in report.averaged_runs(method, env) if values(r)]
            steps, returns = _aligned(runs, values, union=bool(report.included))
            if not steps.size:
                continue
            mean, std = np.nanmean(returns, axis=0), np.nanstd(returns, axis=0)
            ax.plot(steps, mean, color=colors[method], label=method, lw=1.6)
            ax.fill_between(steps, mean - std, mean + std, color=colors[method], alpha=0.18, lw=0)
        _note_if_empty(ax, empty)
        ax.set_xlabel("env steps")
        ax.set_ylabel(ylabel)
        ax.xaxis.set_major_formatter(mpl.ticker.EngFormatter())
    _legend(fig, axes)
    return fig


def _info_labels(report: Report) -> list[str]:
    """Labels of the declared evaluation info of the averaged runs, first-seen order."""
    labels: dict[str, None] = {}
    for run in report.records:
        if run.averaged:
            labels.update(dict.fromkeys(run.info))
    return list(labels)


def _info_curves(report: Report) -> Any:
    """One row of panels (one per env) for each declared info quantity."""
    mpl = matplotlib_or_error()
    labels, envs = _info_labels(report), report.envs
    fig = mpl.figure.Figure(figsize=(max(4.4 * len(envs), 6.4), 3.0 * len(labels) + 0.9),
                            layout="constrained")  # fmt: skip
    mpl.backends.backend_agg.FigureCanvasAgg(fig)
    grid = fig.subplots(len(labels), len(envs), squeeze=False)
    colors = _colors(report)
    for row, label in zip(grid, labels, strict=True):
        for ax, env in zip(row, envs, strict=True):
            for method in report.methods:
                runs = [r for r in report.averaged_runs(method, env) if label in r.info]
                steps, values = _aligned(runs, lambda r, key=label: r.info[key],
                                         union=bool(report.included))  # fmt: skip
                if steps.size:
                    ax.plot(steps, np.nanmean(values, axis=0), color=colors[method],
                            label=method, lw=1.6)  # fmt: skip
            _note_if_empty(ax, "no averaged runs")
            ax.set(title=env, xlabel="env steps", ylabel=label)
            ax.grid(alpha=0.3)
            ax.xaxis.set_major_formatter(mpl.ticker.EngFormatter())
    fig.suptitle(f"Evaluation info: mean over {report.seeds_phrase}")
    _legend(fig, list(grid.ravel()))
    return fig


def _aligned(
    runs: list[RunRecord], values: Callable[[RunRecord], tuple[float, ...]], union: bool = False
):
    """Steps every run (``union``: any run) evaluated at and ``values(run)`` there, ``[S, K]``
    (NaN where a run has no value)."""
    merge = set.union if union else set.intersection
    steps = sorted(merge(*(set(r.steps) for r in runs))) if runs else []
    table = [dict(zip(r.steps, values(r), strict=True)) for r in runs]
    rows = [[t.get(s, np.nan) for s in steps] for t in table]
    return np.array(steps, dtype=float), np.array(rows, dtype=float)


def _return_bars(report: Report) -> Any:
    title = f"Max average return: mean ± std over {report.seeds_phrase}"
    if any(c.left_out for c in report.cells.values()):
        title += "\n(a/b over a bar: a of its b runs averaged; the others are left out)"
    fig, axes = _panels(report, title)
    colors = _colors(report)
    x = np.arange(len(report.methods))
    for ax, env in zip(axes, report.envs, strict=True):
        for i, method in enumerate(report.methods):
            cell = report.cells.get((method, env))
            if cell is None:
                continue
            mean, std = cell.max_return if cell.seeds else (0.0, 0.0)  # no bar, only 0/b
            yerr = std if cell.seeds else None
            bar = ax.bar(i, mean, yerr=yerr, capsize=3, color=colors[method], label=method)
            if cell.left_out:  # flag a bar that averages fewer seeds than expected
                ax.bar_label(bar, [f"{cell.seeds}/{cell.runs}"], padding=2, fontsize=8)
        ax.set_xticks(x, report.methods, rotation=30, ha="right", rotation_mode="anchor")
        ax.set_xlim(-0.6, len(report.methods) - 0.4)
        ax.set_ylabel("max average return")
        ax.axhline(0.0, color="black", lw=0.6)
        lo, hi = ax.get_ylim()  # room for the a/b labels, also beside 0 where bars stick
        pad = 0.08 * (hi - lo)
        ax.set_ylim(lo - pad if lo < 0 else lo, hi + pad)
    return fig


def _energy_scatter(report: Report) -> Any:
    title = f"Energy per decision vs max average return ({report.seeds_phrase})"
    fig, axes = _panels(report, title)
    colors = _colors(report)
    mpl = matplotlib_or_error()
    points: dict[Any, list[tuple[float, float, str]]] = {}
    for ax, env in zip(axes, report.envs, strict=True):
        points[ax] = []
        for method in report.methods:
            cell = report.cells.get((method, env))
            if cell is None or not cell.seeds or ENERGY_PLOT_PRESET not in cell.energy_nj:
                continue
            x, (y, std) = cell.energy_nj[ENERGY_PLOT_PRESET], cell.max_return
            ax.errorbar(x, y, yerr=std, fmt="o", color=colors[method], capsize=3, label=method)
            points[ax].append((x, y, method))
        _note_if_empty(ax, "no energy.json in finished runs")
        ax.set_xscale("log")
        plain = mpl.ticker.LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.6))
        ax.xaxis.set_major_formatter(mpl.ticker.LogFormatter(labelOnlyBase=False))
        ax.xaxis.set_minor_formatter(plain)  # plain numbers, minor ones within one decade
        ax.margins(x=0.15, y=0.1)
        ax.set_xlabel(f"energy per decision (nJ, {ENERGY_PLOT_PRESET} preset)")
        ax.set_ylabel("max average return")
    _legend(fig, axes)
    fig.canvas.draw()  # fixes the layout and the limits, so label extents are final
    for ax, pts in points.items():
        _label_points(ax, pts, fig.canvas.get_renderer())
    return fig


# Where a point's label may go, in points from the marker (tried in turn); dx < 0: to the left.
LABEL_OFFSETS = ((5, 4), (5, -12), (-5, 4), (-5, -12), (5, 14), (-5, 14), (5, -22), (-5, -22))


def _label_points(ax: Any, points: list[tuple[float, float, str]], renderer: Any) -> None:
    """Name each point beside its marker, at the first offset of :data:`LABEL_OFFSETS` whose
    box overlaps no label placed before it and no other marker (else at the last one)."""
    taken = [_marker_box(ax, x, y) for x, y, _ in points]
    for i, (x, y, text) in enumerate(points):
        others = taken[:i] + taken[i + 1 :]
        for dx, dy in LABEL_OFFSETS:
            label = ax.annotate(
                text, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=8,
                ha="left" if dx > 0 else "right", va="bottom" if dy > 0 else "top",
            )  # fmt: skip
            box = label.get_window_extent(renderer)
            if (dx, dy) == LABEL_OFFSETS[-1] or not any(box.overlaps(b) for b in others):
                break
            label.remove()
        taken.append(box)


def _marker_box(ax: Any, x: float, y: float, half: float = 4.0) -> Any:
    """The display-space box of a marker at data ``(x, y)`` (``half`` points each side)."""
    from matplotlib.transforms import Bbox

    cx, cy = ax.transData.transform((x, y))
    r = half * ax.figure.dpi / 72
    return Bbox.from_extents(cx - r, cy - r, cx + r, cy + r)
