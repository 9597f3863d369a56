"""A run's live status, ``status.json``: what a sweep driver or a report reads without
loading a checkpoint.

The trainer rewrites the file atomically (temp file + rename, so a reader never sees half a
file) when a session starts, about every two seconds while it trains, and when it stops:

=================  ==========================================================================
``state``          ``running``, ``finished`` (``total_steps`` reached and the final
                   checkpoint written), ``stopped`` (Ctrl-C, SIGTERM; resumable) or ``failed``
                   (an error; ``error`` holds its message)
``step``           env steps done (live, ahead of the last checkpoint while running)
``total_steps``    the run's budget
``last_return``    mean return of the latest evaluation (null before the first)
``steps_per_sec``  env steps per second of this session so far
``updated``        Unix time of the write; ``pid`` the writing process
=================  ==========================================================================

A run killed with SIGKILL keeps ``running``: only the process that wrote it (``pid``) knows
better, so a driver trusts its own view of the process, and ``finished`` is the one state a
reader may act on alone.
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path
from typing import Any

from ..atomic import write_text_atomic

__all__ = ["FINISHED", "STATUS_NAME", "finite_or_none", "read_status", "write_status"]

STATUS_NAME = "status.json"
FINISHED = "finished"


def finite_or_none(value: Any) -> Any:
    """``value``, or None for a NaN or infinite float (JSON has neither)."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def write_status(run_dir: str | Path, **fields: Any) -> None:
    """Atomically replace ``run_dir/status.json`` with ``fields`` (NaN/inf become null)."""
    path = Path(run_dir) / STATUS_NAME
    text = json.dumps({k: finite_or_none(v) for k, v in fields.items()})
    with contextlib.suppress(OSError):  # a status file is advisory: never stop training over it
        write_text_atomic(path, text + "\n")


def read_status(run_dir: str | Path) -> dict[str, Any] | None:
    """The status mapping of ``run_dir``, or None when absent or unreadable."""
    try:
        data = json.loads((Path(run_dir) / STATUS_NAME).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
