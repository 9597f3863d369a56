"""Plot the CSV of ``quadrotor_recoverable_starts.py``: where the crashed starts lie (distance to
the wall each start would reach first at its start velocity, and its speed towards it),
recovered or not, and how long the best planned prefix kept the unrecovered ones in the box::

    .venv/bin/python scripts/plot_recoverable_starts.py \\
        docs/guide_selection/recoverable_starts_v2.csv \\
        --out docs/figures/quadrotor_recoverable_starts.png
"""

from __future__ import annotations

import argparse
import csv

import numpy as np
from quadrotor_crash_starts import OPTIONS, drawn_start


def nearest_wall(seed: int) -> tuple[float, float]:
    """Distance (m) to the wall the start reaches first at its start velocity, and its speed
    towards that wall (m/s); the nearest wall and speed 0 when it moves towards none."""
    state = drawn_start(seed)
    p, v = state[0:3], state[7:10]
    outward, distance = v * np.sign(p), OPTIONS.position_limit - np.abs(p)
    time = np.where(outward > 0, distance / np.maximum(outward, 1e-12), np.inf)
    axis = int(np.argmin(time)) if np.isfinite(time).any() else int(np.argmin(distance))
    return float(distance[axis]), float(max(outward[axis], 0.0))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("csv")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    try:
        with open(args.csv, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as err:
        p.error(f"cannot read {args.csv}: {err.strerror or err}")
    recovered = np.array([r["recovered"] == "True" for r in rows])
    walls = np.array([nearest_wall(int(r["seed"])) for r in rows])
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    groups = ((recovered, "tab:green", "recovered"), (~recovered, "tab:red", "not recovered"))
    for mask, colour, label in groups:
        ax.scatter(walls[mask, 0], walls[mask, 1], s=14, c=colour, alpha=0.7,
                   label=f"{label} ({mask.sum()})")  # fmt: skip
    ax.set_xlabel("distance to the wall it moves towards (m)")
    ax.set_ylabel("start speed towards that wall (m/s)")
    ax.set_title("starts the guide crashes on")
    ax.legend()
    lost = [r for r in rows if r["recovered"] == "False"]
    bins = np.arange(0, 81, 4)
    bx.hist([int(r["guide_length"]) for r in lost], bins=bins, alpha=0.6, label="guide alone")
    bx.hist([int(r["searched_steps"]) for r in lost], bins=bins, alpha=0.6,
            label="best planned prefix + guide")  # fmt: skip
    bx.set_xlabel("steps in the box before the crash (10 ms each)")
    bx.set_ylabel("unrecovered starts")
    bx.set_title("how long the unrecovered starts last")
    bx.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
