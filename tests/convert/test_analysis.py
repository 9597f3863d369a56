"""Error-amplification analysis: the statistics on known signals, and one whole analysis."""

import numpy as np
import pytest
import torch

from spikerl.cli import main
from spikerl.convert import ConversionSettings, build_converted
from spikerl.convert.analysis import (
    _moving_average,
    analyze,
    autocorrelation,
    bias_share,
    mmd2,
    plot_analysis,
)
from spikerl.convert.source import source_from_module
from spikerl.nets.ann import DeterministicActor


def test_autocorrelation_of_constant_white_and_alternating_errors():
    rng = np.random.default_rng(0)
    constant = [np.full((300, 2), 0.1)]
    white = [rng.standard_normal((5000, 2))]
    alternating = [np.tile([[1.0], [-1.0]], (150, 1))]
    assert autocorrelation(constant, 3)[0] == pytest.approx(299 / 300)
    assert abs(autocorrelation(white, 3)[0]) < 0.05
    assert autocorrelation(alternating, 2)[0] == pytest.approx(-299 / 300)
    assert autocorrelation(alternating, 2)[1] == pytest.approx(298 / 300)
    assert bias_share(constant) == pytest.approx(1.0)
    assert bias_share(white) < 0.01


def test_autocorrelation_sums_inside_episodes_only():
    """Two episodes of opposite constant bias: no lag pairs across the episode boundary."""
    episodes = [np.ones((10, 1)), -np.ones((10, 1))]
    assert autocorrelation(episodes, 1)[0] == pytest.approx(18 / 20)


def test_moving_average_is_the_mean_of_the_last_window_values():
    values = np.array([4.0, 0.0, 2.0, 6.0, 1.0])
    expected = [np.mean(values[max(0, i - 2) : i + 1]) for i in range(len(values))]
    np.testing.assert_allclose(_moving_average(values, 3), expected)
    np.testing.assert_allclose(_moving_average(values, 1), values)


def test_mmd_separates_shifted_states():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((400, 3)), rng.standard_normal((400, 3))
    shifted = rng.standard_normal((400, 3)) + 1.0
    same = mmd2(a, b, np.random.default_rng(2))
    assert abs(same) < 0.01
    assert mmd2(a, shifted, np.random.default_rng(2)) > 10 * abs(same)


def test_analysis_of_a_converted_pendulum_policy(tmp_path):
    torch.manual_seed(0)
    source = source_from_module(DeterministicActor(3, 1, (16, 16)))
    source.env_id, source.origin = "Pendulum-v1", "tiny"
    snn = build_converted(source, [torch.full((16,), 0.5)] * 2, ConversionSettings("if", 2))
    result = analyze(source, snn, seed=0, episodes=2, label="if T2", sigmas=(0.05,))
    row = result.row
    assert row["kappa"] == pytest.approx(row["E_S"] / row["E_A"])
    assert -1 <= row["rho1_S"] <= 1 and 0 <= row["bias_S"] <= 1
    assert {n["kind"] for n in result.noise} == {"iid", "ar1", "constant"}
    assert len(result.noise) == 3 * 2  # sigma = E_S and 0.05
    for n in result.noise:  # clipping at the bounds can only shrink the realised noise
        assert 0 < n["rms"] <= 1.2 * n["sigma"]
    assert result.divergence[0] == 0.0  # both rollouts start from the same state
    assert result.error_vs_time["R_S"].shape == (200,)
    path = plot_analysis([result], tmp_path / "a.png", "test")
    assert path.stat().st_size > 10_000


def test_analyze_conversion_cli(tmp_path, capsys):
    runs = tmp_path / "runs"
    from tests.conftest import TINY

    args = ["train", *[a for o in (*TINY, "run.total_steps=200", "run.name=src")
                       for a in ("--set", o)], "--runs-dir", str(runs)]  # fmt: skip
    assert main(args) == 0
    out = tmp_path / "ana"
    assert main(["analyze-conversion", str(runs / "src"), "--timesteps", "2", "--crpi", "0,1",
                 "--episodes", "2", "--calibration-steps", "20", "-o", str(out)]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "kappa" in text and "if T2 a1" in text
    assert (out / "analysis.csv").is_file() and (out / "noise.csv").is_file()
    assert (out / "analysis.png").is_file()
