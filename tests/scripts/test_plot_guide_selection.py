"""``scripts/plot_guide_selection.py``: kept policies' held-out return and crash rate against
their env step, with a reference, the shipped step and the span trained at rho = 1."""

from __future__ import annotations

import csv
import sys

import pytest

SCRIPT = "plot_guide_selection"
HEADER = ["run", "env", "episodes", "return mean", "return std", "length",
          "position error (m)", "crash rate"]  # fmt: skip


def _write(path, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        writer.writerows(rows)


def test_the_figure_is_written_with_the_kept_steps_in_order(script, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    selection, reference, out = tmp_path / "s.csv", tmp_path / "r.csv", tmp_path / "f.png"
    kept = [(f"runs/g/policies/step-{step:09d}.pt", "spikerl/Quadrotor-v0", 300, ret, 1.0, 400,
             0.3, crash) for step, ret, crash in ((30000, 320, 0.2), (10000, 300, 0.25),
                                                  (20000, 310, 0.21))]  # fmt: skip
    _write(selection, [*kept, ("runs/g", "spikerl/Quadrotor-v0", 300, 1, 1, 1, 1, 1)])
    _write(reference, [("guide.pt", "spikerl/Quadrotor-v0", 300, 341.5, 160, 422, 0.2, 0.16)])
    argv = ["plot_guide_selection.py", str(selection), "--reference", str(reference),
            "--label", "builtin-v2", "--chosen", "20000", "--rho-one", "20000",
            "--out", str(out)]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    drawn = {}
    original = script.plt.subplots

    def spy(*args, **kwargs):
        fig, axes = original(*args, **kwargs)
        drawn["axes"] = axes
        return fig, axes

    monkeypatch.setattr(script.plt, "subplots", spy)
    script.main()
    assert out.stat().st_size > 10_000
    returns, crashes = (ax.get_lines()[0] for ax in drawn["axes"])
    assert list(returns.get_xdata()) == [10, 20, 30]  # thousands of steps, sorted; the run row
    assert list(returns.get_ydata()) == [300, 310, 320]  # without a step is left out
    assert list(crashes.get_ydata()) == [0.25, 0.21, 0.2]
    legend = [t.get_text() for t in drawn["axes"][0].get_legend().get_texts()]
    assert legend == ["kept policies", "builtin-v2", "shipped", "trained at rho = 1"]
