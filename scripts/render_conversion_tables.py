"""Markdown tables of a conversion grid for docs/results.md, one per source actor.

    .venv/bin/python scripts/render_conversion_tables.py runs/conversion_grid_td3 \
        runs/conversion_grid_sac

Reads each folder's ``results.csv`` (written by ``spikerl convert-sweep``) and prints, per
source, the return per CRPI alpha (mean ± std over seeds of per-seed means), J/J_ANN at alpha 0
and 1, the recovered fraction at 0.5 and 1 and the energy per decision; ``--plot`` also draws
the grid of every folder together into one PNG.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from spikerl.convert.grid import plot_grid, read_results, summarize


def _pm(pair: tuple[float, float]) -> str:
    mean, std = pair
    return "-" if np.isnan(mean) else f"{mean:,.0f} ± {std:,.0f}"


def _frac(value: float) -> str:
    return "-" if value is None or np.isnan(value) else f"{value:.2f}"


def _table(source: str, rows: list[dict], seeds: list[str]) -> str:
    first = rows[0]
    lines = [
        f"**{source}** (seeds {', '.join(seeds)}; ANN {_pm(first['ann'])}, "
        f"{first['ann_energy_nj']:.1f} nJ/decision)",
        "",
        "| neuron | T | α = 0 | α = 0.5 | α = 1 | J/J_ANN α=0 → 1 | recovered α=0.5 / 1 "
        "| nJ/decision |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['neuron']} | {r['timesteps']} | {_pm(r['a0'])} | {_pm(r['a0.5'])} "
            f"| {_pm(r['a1'])} | {r['ratio_a0']:.2f} → {r['ratio_a1']:.2f} "
            f"| {_frac(r.get('recovered_a0.5'))} / {_frac(r.get('recovered_a1'))} "
            f"| {r['energy_nj']:,.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("folders", type=Path, nargs="+")
    p.add_argument("--plot", type=Path, default=None, help="PNG of all folders' grids")
    args = p.parse_args()
    everything = []
    for folder in args.folders:
        rows = read_results(folder / "results.csv")
        if not rows:
            p.error(
                f"{folder} holds no grid results (run: spikerl convert-sweep SOURCE -o {folder})"
            )
        everything.extend(rows)
        summary = summarize(rows)
        for source in sorted({r["source"] for r in summary}):
            seeds = sorted({r["seed"] for r in rows if r["source"] == source}, key=int)
            print(_table(source, [r for r in summary if r["source"] == source], seeds))
            print()
    if args.plot is not None:
        print(f"plot: {plot_grid(summarize(everything), args.plot)}")


if __name__ == "__main__":
    main()
