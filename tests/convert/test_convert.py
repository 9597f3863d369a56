"""ANN-to-SNN conversion: source checks, calibration, the converted network and its file."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spikerl.convert import (
    CalibrationSettings,
    ConversionError,
    ConversionSettings,
    build_converted,
    calibrate,
    load_converted,
    read_source,
    save_converted,
    source_from_module,
)
from spikerl.convert.calibrate import Calibration, UnitStatistic
from spikerl.convert.source import source_from_state_dict
from spikerl.nets.ann import DeterministicActor, GaussianActor
from spikerl.nets.policy import ActingPolicy
from spikerl.seeding import SeedStreams
from spikerl.snn.conversion import CONVERSION_MODELS


def random_actor(seed: int = 0, hidden=(24, 16), obs_dim: int = 5, act_dim: int = 2):
    torch.manual_seed(seed)
    return DeterministicActor(obs_dim, act_dim, hidden)


def max_thresholds(source, obs):
    _, hidden = source.hidden_activations(obs)
    return [h.detach().flatten(1).max(0).values for h in hidden]


@pytest.mark.parametrize("model", CONVERSION_MODELS)
def test_converted_output_approaches_the_ann_as_t_grows(model):
    source = source_from_module(random_actor())
    obs = torch.randn(256, 5)
    thetas = max_thresholds(source, obs)
    target = source(obs).detach()
    errors = []
    for timesteps in (4, 16, 64):
        snn = build_converted(source, thetas, ConversionSettings(model, timesteps))
        errors.append((snn(obs) - target).abs().mean().item())
    assert errors[2] < errors[1] < errors[0]
    assert errors[2] < 0.01


def test_crpi_shrinks_decision_averaged_error_on_a_repeated_input():
    """A constant observation over many decisions: with CRPI the decision-averaged action
    error is smaller than without (the carry cancels the repeating quantisation bias)."""
    source = source_from_module(random_actor(1))
    obs = torch.randn(64, 5)
    thetas = max_thresholds(source, obs)
    target = source(obs).detach()
    errs = {}
    for alpha in (0.0, 1.0):
        snn = build_converted(source, thetas, ConversionSettings("if", 4, alpha))
        state, actions = None, []
        for _ in range(100):
            action, state = snn.step(obs, state)
            actions.append(action)
        errs[alpha] = (torch.stack(actions[10:]).mean(0) - target).abs().mean().item()
    assert errs[1.0] < 0.7 * errs[0.0]


def test_acting_policy_resets_the_carry_per_episode_and_row():
    source = source_from_module(random_actor(2))
    obs = torch.randn(3, 5)
    snn = build_converted(source, max_thresholds(source, obs), ConversionSettings("if", 4, 1.0))
    policy = ActingPolicy(snn)
    first = policy(obs.numpy())
    policy(obs.numpy())
    policy.reset(mask=[True, False, False])
    again = policy(obs.numpy())
    assert (again[0] == first[0]).all()  # row 0 restarted: same as the first decision
    policy.reset()
    assert (policy(obs.numpy()) == first).all()


def test_sac_converts_its_mean_path():
    torch.manual_seed(3)
    actor = GaussianActor(4, 2, (16, 16), max_action=2.0)
    source = source_from_module(actor)
    obs = torch.randn(10, 4)
    assert torch.allclose(source(obs), actor(obs))
    assert source.algo == "sac" and source.hidden_sizes == [16, 16]


@pytest.mark.parametrize(
    ("actor", "message"),
    [
        (nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)), r"1 \(Tanh\)"),
        (nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.ReLU(), nn.Linear(4, 1)), "LayerNorm"),
        (nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1), nn.ReLU()), "last layer"),
        (nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 1)), "without a ReLU"),
        (nn.GRU(3, 4), "GRU"),
    ],
)
def test_unconvertible_modules_are_refused_by_name(actor, message):
    with pytest.raises(ConversionError, match=message):
        source_from_module(actor)


def test_state_dict_source_reads_sizes_and_refuses_other_entries(tmp_path):
    actor = random_actor(4, hidden=(7, 9), obs_dim=3, act_dim=2)
    path = tmp_path / "actor.pt"
    torch.save(actor.state_dict(), path)
    source = read_source(path)
    assert source.hidden_sizes == [7, 9] and source.obs_dim == 3 and source.act_dim == 2
    obs = torch.randn(5, 3)
    assert torch.allclose(source(obs), actor(obs))
    state = {**actor.state_dict(), "norm.weight": torch.ones(7)}
    with pytest.raises(ConversionError, match="norm.weight"):
        source_from_state_dict(state, "x")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(ConversionError, match="not a PyTorch state_dict"):
        read_source(bad)
    with pytest.raises(ConversionError, match="does not exist"):
        read_source(tmp_path / "missing.pt")


def test_converted_file_round_trips_and_loads_strictly(tmp_path):
    source = source_from_module(random_actor(5))
    obs = torch.randn(8, 5)
    thetas = max_thresholds(source, obs)
    thetas[0][:3] = 0.0
    settings = ConversionSettings("dc-mt", 6, 0.5)
    snn = build_converted(source, thetas, settings)
    record = Calibration(thetas, CalibrationSettings(steps=5), 0, 0, 0.0)
    path = tmp_path / "snn.pt"
    save_converted(path, snn, source, settings, record)
    loaded, meta = load_converted(path)
    assert meta["settings"]["neuron"] == "dc-mt" and meta["calibration"]["zero_units"][0] == 3
    assert torch.equal(loaded(obs), snn(obs))
    saved = torch.load(path, weights_only=True)
    saved["snn"]["neurons.0.theta"] = torch.ones(3)  # wrong size
    torch.save(saved, path)
    with pytest.raises(ConversionError, match="do not match"):
        load_converted(path)
    del saved["snn"]["neurons.0.theta"]
    torch.save(saved, path)
    with pytest.raises(ConversionError, match="Missing key"):
        load_converted(path)


def test_unit_statistic_max_and_percentile():
    gen = torch.Generator().manual_seed(0)
    rows = torch.cat([torch.zeros(500, 3), torch.rand(1000, 3) * torch.tensor([1.0, 2.0, 0.0])])
    exact = UnitStatistic(3, CalibrationSettings(statistic="max"), gen)
    exact.update(rows)
    assert torch.allclose(exact.thresholds(), rows.max(0).values)
    pct = UnitStatistic(3, CalibrationSettings(statistic="percentile", percentile=50.0,
                                               reservoir=4096), gen)  # fmt: skip
    for chunk in rows.split(100):
        pct.update(chunk)
    got = pct.thresholds()
    assert got[0].item() == pytest.approx(0.5, abs=0.05)  # median of the positive values only
    assert got[1].item() == pytest.approx(1.0, abs=0.1)
    assert got[2].item() == 0.0  # never positive
    small = UnitStatistic(3, CalibrationSettings(statistic="percentile", reservoir=16), gen)
    small.update(rows)
    assert small.values.shape == (16, 3)  # memory bounded by the reservoir


def test_calibration_is_seeded_apart_from_evaluation_and_deterministic():
    source = source_from_module(random_actor(6, obs_dim=3, act_dim=1))
    settings = CalibrationSettings(steps=300)
    a = calibrate(source, "Pendulum-v1", 7, settings)
    b = calibrate(source, "Pendulum-v1", 7, settings)
    c = calibrate(source, "Pendulum-v1", 8, settings)
    assert all(torch.equal(x, y) for x, y in zip(a.thetas, b.thetas, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a.thetas, c.thetas, strict=True))
    assert a.env_seed != SeedStreams(7).integer("evaluation")
    with pytest.raises(ConversionError, match="observation"):
        calibrate(source_from_module(random_actor(6)), "Pendulum-v1", 0, settings)


def test_conv_actor_on_pixels_converts_per_channel():
    torch.manual_seed(7)
    actor = nn.Sequential(
        nn.Conv2d(3, 4, 3, stride=2), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU(),
        nn.AvgPool2d(2), nn.Flatten(), nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2),
    )  # fmt: skip
    source = source_from_module(actor, input_shape=(3, 12, 12))
    assert source.shapes[:2] == [(4, 5, 5), (4, 3, 3)]
    obs = torch.rand(64, 3 * 12 * 12)
    _, hidden = source.hidden_activations(obs)
    per_channel = [h.amax(dim=(0, 2, 3)) for h in hidden[:2]]
    thetas = [
        c.view(-1, 1, 1).expand(h.shape[1:]).reshape(-1)
        for c, h in zip(per_channel, hidden[:2], strict=True)
    ] + [hidden[2].max(0).values]
    target = source(obs)
    errors = []
    for timesteps in (4, 32):
        snn = build_converted(source, thetas, ConversionSettings("mt", timesteps))
        errors.append((snn(obs) - target).abs().mean().item())
    assert errors[1] < errors[0] < 0.2


def test_energy_counts_graded_spikes_once_and_dc_priming_tick():
    from spikerl.snn.energy import OpCounter

    source = source_from_module(random_actor(8))
    obs = torch.randn(1, 5)
    thetas = max_thresholds(source, torch.randn(64, 5))
    for model, ticks in (("mt", 6), ("dc-mt", 7)):
        snn = build_converted(source, thetas, ConversionSettings(model, 6))
        trace = snn.trace(obs)
        with OpCounter(snn) as counter:
            snn(obs)
        layers = {layer.name: layer for layer in counter.report().layers}
        assert layers["fc0"].ticks == ticks  # DC's priming tick is one more row of MACs
        # SOPs of the second synaptic layer: every non-zero (graded) output of h0 is one event
        assert layers["out"].ops.mean == pytest.approx(float(trace.spike_counts[0].sum()) * 16)


def test_shipped_actors_load_by_name_and_stay_small():
    from spikerl.convert.source import SHIPPED, shipped_actors

    names = shipped_actors()
    assert {"td3-halfcheetah-v4", "sac-halfcheetah-v4"} <= set(names) and len(names) >= 3
    for name in names:
        assert (SHIPPED / name / "actor.pt").stat().st_size < 1_000_000
        assert "spikerl train --config" in (SHIPPED / name / "README.md").read_text()
        source = read_source(name)
        assert source.origin == name and source.env_id.endswith("-v4")
        assert source.hidden_sizes == [256, 256]
    assert read_source("sac-halfcheetah-v4").algo == "sac"
    with pytest.raises(ConversionError, match="td3-halfcheetah-v4"):
        read_source("td3-halfcheetah-v9")  # the message lists the shipped names
