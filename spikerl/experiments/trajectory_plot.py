"""Trajectory plots for envs without a camera: ``spikerl evaluate RUN --video DIR``.

An env that draws no frames but declares where its position lies in the observation
(``metadata["trajectory_obs"] = (start, stop)``, the quadrotor's ``(0, 3)``: the position
relative to the target, m) gets one PNG per evaluation instead of videos: the flown paths in
3-D (start o, end x, target *) and the distance to the target against time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import SpikerlError
from .report_plots import matplotlib_or_error

__all__ = ["TRAJECTORY_NAME", "write_trajectory_plot"]

TRAJECTORY_NAME = "trajectories.png"


def write_trajectory_plot(paths: list[np.ndarray], dt: float, out_dir: Path, title: str) -> Path:
    """``out_dir/trajectories.png`` from per-episode positions ``[steps, 3]`` (m); ``dt`` (s)."""
    mpl = matplotlib_or_error("trajectory plots")
    import mpl_toolkits.mplot3d  # noqa: F401 (registers the 3-D projection)

    fig = mpl.figure.Figure(figsize=(10, 4.6), layout="constrained")
    mpl.backends.backend_agg.FigureCanvasAgg(fig)
    space = fig.add_subplot(1, 2, 1, projection="3d")
    error = fig.add_subplot(1, 2, 2)
    colors = mpl.colormaps["tab10"]
    for i, path in enumerate(paths):
        color = colors(i % 10)
        space.plot(path[:, 0], path[:, 1], path[:, 2], color=color, lw=1.2)
        space.scatter(*path[0], color=color, marker="o", s=18)
        space.scatter(*path[-1], color=color, marker="x", s=24)
        time = np.arange(len(path)) * dt
        error.plot(
            time, np.linalg.norm(path, axis=1), color=color, lw=1.2, label=f"episode {i + 1}"
        )
    space.scatter(0, 0, 0, color="black", marker="*", s=80, label="target")
    space.set(xlabel="x (m)", ylabel="y (m)", zlabel="z (m)", title="flown paths (o start, x end)")
    space.legend(loc="upper left", fontsize="small")
    error.set(xlabel="time (s)", ylabel="distance to target (m)", title="position error")
    error.grid(alpha=0.3)
    if len(paths) <= 10:
        error.legend(fontsize="small")
    fig.suptitle(title)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / TRAJECTORY_NAME
    try:
        fig.savefig(target, dpi=110)
    except OSError as err:
        raise SpikerlError(f"cannot write {target}: {err.strerror or err}") from None
    return target
