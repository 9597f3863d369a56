"""``spikerl grad-analysis``: the slope changes gradients, never the forward pass; steeper
slopes shrink early-layer gradients and align them with the steep reference."""

from __future__ import annotations

import csv

import pytest
import torch

from spikerl.cli import main
from spikerl.experiments.grad_analysis import gradient_analysis, synthetic_network


def test_the_synthetic_network_is_the_papers():
    net = synthetic_network()
    shapes = [tuple(lin.weight.shape) for lin in net.linears] + [
        tuple(net.decoder.linear.weight.shape)
    ]
    assert shapes == [(64, 63), (64, 64), (64, 64), (64, 64), (64, 64)]
    assert all(lin.bias is None for lin in net.linears) and net.decoder.linear.bias is None
    assert net.timesteps == 2 and net.activation is None


def test_layer_zero_gradients_shrink_and_align_as_the_slope_steepens():
    slopes = (1.0, 10.0, 50.0, 100.0)
    stats = gradient_analysis(slopes, reference=100.0, samples=24, seed=1)
    layer0 = sorted((s for s in stats if s.layer == 0), key=lambda s: s.slope)
    mags = [s.mean_abs_grad for s in layer0]
    cos = [s.cos_mean for s in layer0]
    assert mags == sorted(mags, reverse=True) and len(set(mags)) == len(mags)
    assert cos == sorted(cos) and cos[-1] == pytest.approx(1.0, abs=1e-5)
    readout = [s for s in stats if s.layer == 4]
    # the readout's gradient does not pass through any surrogate: equal for every slope
    assert all(s.mean_abs_grad == pytest.approx(readout[0].mean_abs_grad) for s in readout)
    assert all(s.cos_mean == pytest.approx(readout[0].cos_mean) for s in readout)


def test_cli_writes_csv_and_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "ga"
    args = ["grad-analysis", "--samples", "8", "--slopes", "2", "50", "--out", str(out)]
    assert main(args) == 0
    rows = list(csv.DictReader(open(out / "grad_analysis.csv")))
    assert len(rows) == 2 * 5 and set(rows[0]) == {
        "slope", "layer", "mean_abs_grad", "cos_mean", "cos_std", "frac_zero"
    }  # fmt: skip
    assert (out / "grad_analysis.png").stat().st_size > 10_000
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--slopes", "0"], "expected a number > 0, got 0"),
        (["--reference", "-5"], "expected a number > 0, got -5"),
        (["--seed", "-1"], "expected a seed in"),
        (["--buffer", "runs/x"], "--buffer is read by --mode actor only"),
        (["--mode", "actor", "--buffer", "runs/x", "--timesteps", "4"], "--timesteps: synthetic"),
        (["--mode", "actor", "--buffer", "runs/x", "--bias"], "--bias: synthetic mode only"),
        (["--out", "FILE"], "is a file; give a folder"),
    ],
)
def test_bad_options_are_one_line_before_any_work(tmp_path, capsys, args, message):
    (tmp_path / "FILE").write_text("x")
    args = [str(tmp_path / "FILE") if a == "FILE" else a for a in args]
    try:
        status = main(["grad-analysis", "--samples", "2", *args])
    except SystemExit as stop:  # argparse's own check of a value
        status = stop.code
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and "Traceback" not in "\n".join(err)


def test_count_readout_is_the_weighted_sum_of_spikes_with_one_bias():
    from spikerl.snn.coding import LinearReadout

    readout = LinearReadout(5, 3, source="count")
    spikes = (torch.rand(4, 2, 5) > 0.5).float()
    expected = spikes.sum(0) @ readout.linear.weight.T + readout.linear.bias
    assert torch.allclose(readout(spikes), expected, atol=1e-6)
