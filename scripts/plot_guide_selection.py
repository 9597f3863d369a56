"""Plot the held-out evaluation of a run's kept policies (``run.keep_policies``): return and
crash rate against the env step of each ``policies/step-<N>.pt``, with reference policies
(e.g. the guide shipped before) as dashed lines. The inputs are ``spikerl evaluate --csv``
tables::

    spikerl evaluate runs/guide-1m-s0/policies/*.pt --episodes 300 --curriculum 1 --seed 1000 \\
        --csv selection.csv
    spikerl evaluate spikerl/guides/quadrotor/guide.pt --episodes 300 --curriculum 1 \\
        --seed 1000 --csv reference.csv
    .venv/bin/python scripts/plot_guide_selection.py selection.csv --reference reference.csv \\
        --label "builtin-v1" --out docs/figures/quadrotor_guide_selection.png
"""

from __future__ import annotations

import argparse
import csv
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STEP = re.compile(r"step-(\d+)\.pt$")


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("selection", type=Path, help="spikerl evaluate --csv of the kept policies")
    p.add_argument("--reference", type=Path, help="spikerl evaluate --csv of reference policies")
    p.add_argument("--label", action="append", default=[], help="a name per reference row")
    p.add_argument("--chosen", type=int, default=None, help="env step of the chosen policy")
    p.add_argument(
        "--rho-one",
        type=int,
        default=None,
        help="env step from which the run trained at rho = 1 (a shaded span)",
    )
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    rows = [r for r in _rows(args.selection) if STEP.search(r["run"])]
    rows.sort(key=lambda r: int(STEP.search(r["run"])[1]))
    steps = [int(STEP.search(r["run"])[1]) / 1e3 for r in rows]
    refs = _rows(args.reference) if args.reference else []
    labels = args.label + [r["run"] for r in refs[len(args.label) :]]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
    for ax, key, title in (
        (axes[0], "return mean", "return (rho = 1)"),
        (axes[1], "crash rate", "crash rate"),
    ):
        ax.plot(steps, [float(r[key]) for r in rows], "o-", ms=3, label="kept policies")
        for ref, label in zip(refs, labels, strict=False):
            ax.axhline(float(ref[key]), ls="--", color="grey", label=label)
        if args.chosen is not None:
            ax.axvline(args.chosen / 1e3, color="C3", lw=0.8, label="shipped")
        if args.rho_one is not None:
            ax.axvspan(
                args.rho_one / 1e3, max(steps), color="C2", alpha=0.08, label="trained at rho = 1"
            )
        if key == "crash rate":
            ax.set_ylim(0, None)  # shares from zero, so that no gap looks larger than it is
        ax.set_xlabel("env steps of training (thousands)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    episodes = rows[0]["episodes"] if rows else "?"
    axes[0].legend(fontsize=8)
    fig.suptitle(f"held-out starts, {episodes} episodes per policy", fontsize=10)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=130)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
