"""Result tables and summary statistics (APG, mean +- std over seeds)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["apg", "format_table", "mean_std"]


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


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.3g}"
    return str(value)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table with right-aligned numeric columns (floats get sensible precision)."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]

    def line(items: Sequence[str]) -> str:
        return "  ".join(
            item.rjust(w) if i else item.ljust(w)
            for i, (item, w) in enumerate(zip(items, widths, strict=True))
        )

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in cells)])
