"""``spikerl grad-analysis``: the slope changes gradients, never the forward pass; steeper
slopes shrink early-layer gradients and align them with the steep reference. Samples are taken
in chunks with results bit for bit those of the whole batch; each mode writes to its own
default folder."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from spikerl.buffers import EpisodeSequenceBuffer
from spikerl.cli import main
from spikerl.experiments import grad_analysis
from spikerl.experiments.grad_analysis import (
    _chunks,
    _window_losses,
    add_grad_analysis_parser,
    gradient_analysis,
    output_folder,
    synthetic_network,
)


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


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_chunked_statistics_are_the_whole_batchs_bit_for_bit(monkeypatch, dtype):
    slopes, samples = (1.0, 10.0, 100.0, 1.0), 11
    whole = gradient_analysis(slopes, samples=samples, seed=2, dtype=dtype, chunk=samples)
    held = []
    gradients = grad_analysis._per_sample_gradients

    def spy(net, sample_loss, count, slope):
        held.append(count)
        return gradients(net, sample_loss, count, slope)

    monkeypatch.setattr(grad_analysis, "_per_sample_gradients", spy)
    for chunk in (1, 3, 5, 10, samples + 5):
        held.clear()
        assert gradient_analysis(slopes, samples=samples, seed=2, dtype=dtype, chunk=chunk) == whole
        # gradients of at most chunk + 1 samples (a single leftover joins the last chunk) at once
        assert max(held) <= max(chunk, 2) + 1 and sum(held) == samples * (len(slopes) + 1)


def test_chunks_cover_the_samples_and_never_hold_a_single_row_unless_there_is_one():
    for samples in range(1, 30):
        for chunk in (1, 2, 3, 7, 256):
            parts = _chunks(samples, chunk)
            assert [a for a, _ in parts] == [0] + [b for _, b in parts[:-1]]
            assert parts[-1][1] == samples
            assert all(2 <= b - a <= max(chunk, 2) + 1 for a, b in parts) or samples == 1


def test_windows_gathered_by_chunk_are_the_windows_buffer_sample_draws():
    rng = np.random.default_rng(0)
    buffer = EpisodeSequenceBuffer(3, 2, capacity=500, window=10, lookahead=2, stride=3, min_len=4)
    for length in (12, 30, 7, 25):  # odd lengths end by truncation, even ones by a crash
        crash = length % 2 == 0
        obs, actions = rng.normal(size=(length + 1, 3)), rng.normal(size=(length, 2))
        buffer.add_episode(obs, actions, rng.normal(size=length), crash, not crash, actions[-1])
    buffer.rng = np.random.default_rng(5)
    batch = buffer.sample(13, 0.9)  # what actor mode drew before windows came in chunks
    buffer.rng = np.random.default_rng(5)
    learner = SimpleNamespace(actor_loss=lambda window, bc_weight: (window, {}))
    chunk_losses = _window_losses(learner, buffer, 13, 0.9, bc_weight=0.5)
    for start, stop in _chunks(13, 4):
        sample_loss = chunk_losses(start, stop)
        for i in range(stop - start):
            window, _ = sample_loss(i)
            n = start + i
            assert all(torch.equal(a, b[n : n + 1]) for a, b in zip(window, batch, strict=True))


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_grad_analysis_parser(parser.add_subparsers())
    return parser.parse_args(["grad-analysis", *argv])


def test_each_mode_has_its_own_default_output_folder():
    assert output_folder(_args()) == Path("runs/grad_analysis")  # the docs' figure command
    actor = output_folder(_args("--mode", "actor", "--buffer", "runs/seq-s0/"))
    assert actor == Path("runs/grad_analysis_actor/seq-s0")
    assert output_folder(_args("--mode", "actor", "--buffer", "runs/s", "--out", "o")) == Path("o")


def test_the_two_modes_run_one_after_the_other_keep_both_results(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    fake = gradient_analysis((1.0,), samples=2)[:2]
    monkeypatch.setattr(grad_analysis, "actor_gradient_analysis", lambda *args: fake)
    common = ["--samples", "2", "--slopes", "1", "--no-plot"]
    assert main(["grad-analysis", *common]) == 0
    assert main(["grad-analysis", "--mode", "actor", "--buffer", "runs/seq-s0", *common]) == 0
    synthetic = list(csv.DictReader(open("runs/grad_analysis/grad_analysis.csv")))
    actor = list(csv.DictReader(open("runs/grad_analysis_actor/seq-s0/grad_analysis.csv")))
    assert (len(synthetic), len(actor)) == (5, 2)
    assert "wrote runs/grad_analysis_actor/seq-s0/grad_analysis.csv" in capsys.readouterr().out


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
