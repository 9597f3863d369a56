"""The conversion grid and the batched evaluation it runs on."""

import pytest
import torch

from spikerl.convert import CalibrationSettings, ConversionSettings, build_converted
from spikerl.convert.grid import GridSpec, read_results, run_grid, summarize
from spikerl.convert.source import ConversionError, source_from_module
from spikerl.experiments.evaluation import episode_seeds, evaluate_batched, run_batched_episodes
from spikerl.nets.ann import DeterministicActor
from spikerl.nets.policy import ActingPolicy


def pendulum_source():
    torch.manual_seed(0)
    source = source_from_module(DeterministicActor(3, 1, (16, 16)))
    source.env_id, source.origin = "Pendulum-v1", "tiny-actor"
    return source


def test_batched_episodes_equal_single_episodes():
    source = pendulum_source()
    snn = build_converted(source, [torch.ones(16)] * 2, ConversionSettings("if", 4, 1.0))
    batch = evaluate_batched(snn, "Pendulum-v1", 3, 3, record=True)
    for i, seed in enumerate(episode_seeds(3, 3)):
        single = run_batched_episodes("Pendulum-v1", [seed], ActingPolicy(snn))
        assert single.returns[0] == pytest.approx(batch.returns[i], rel=1e-6)
    assert batch.observations.shape == (200, 3, 3) and batch.alive.all()
    assert episode_seeds(3, 3) != episode_seeds(4, 3)


def test_per_row_alphas_equal_separate_networks():
    source = pendulum_source()
    obs = torch.randn(6, 3)
    thetas = [torch.full((16,), 0.5)] * 2
    alphas = torch.tensor([0.0, 0.0, 0.5, 0.5, 1.0, 1.0])
    batched = build_converted(source, thetas, ConversionSettings("dc", 4), row_alphas=alphas)
    singles = [build_converted(source, thetas, ConversionSettings("dc", 4, a)) for a in (0, 0.5, 1)]
    state, states = None, [None] * 3
    for _ in range(5):
        action, state = batched.step(obs, state)
        for k, net in enumerate(singles):
            single, states[k] = net.step(obs[2 * k : 2 * k + 2], states[k])
            assert torch.allclose(action[2 * k : 2 * k + 2], single, atol=1e-6)


def test_grid_writes_labelled_rows_resumes_and_summarizes(tmp_path):
    source = pendulum_source()
    spec = GridSpec(("if", "mt"), (2,), (0.0, 1.0), (0,), 2, CalibrationSettings(steps=50))
    path = run_grid([source], spec, tmp_path)
    rows = read_results(path)
    assert len(rows) == 1 + 4  # the ANN and 2 neurons x 2 alphas
    snn = [r for r in rows if r["policy"] == "snn"]
    assert {(r["neuron"], r["crpi"]) for r in snn} == {
        ("if", "0.0"),
        ("if", "1.0"),
        ("mt", "0.0"),
        ("mt", "1.0"),
    }
    assert all(r["env"] == "Pendulum-v1" and r["torch"] and r["calibration_steps"] == "50"
               for r in rows)  # fmt: skip
    assert all(float(r["energy_nj"]) > 0 for r in snn)
    run_grid([source], spec, tmp_path)  # nothing left to do: no row is repeated
    assert len(read_results(path)) == 5
    summary = summarize(read_results(path))
    assert [(s["neuron"], s["timesteps"]) for s in summary] == [("if", 2), ("mt", 2)]
    assert set(summary[0]) >= {"ann", "a0", "a1", "ratio_a1", "energy_nj"}
    ann = float(next(r for r in rows if r["policy"] == "ann")["return_mean"])
    assert summary[0]["ann"][0] == pytest.approx(ann)


def test_grid_spec_refuses_bad_values():
    with pytest.raises(ConversionError, match="neuron"):
        GridSpec(neurons=("lif",))
    with pytest.raises(ConversionError, match=r"\[0, 1\]"):
        GridSpec(crpi=(2.0,))
    assert len(GridSpec().settings()) == 5 * 4 * 3  # the default grid of spec Sec. 8


def test_grid_plot(tmp_path):
    from spikerl.convert.grid import plot_grid

    source = pendulum_source()
    spec = GridSpec(("if",), (2, 4), (0.0, 1.0), (0,), 1, CalibrationSettings(steps=20))
    summary = summarize(read_results(run_grid([source], spec, tmp_path)))
    assert plot_grid(summary, tmp_path / "grid.png").stat().st_size > 5_000
