"""Result tables and summary statistics (APG, mean +- std over seeds)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..tables import format_table

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
