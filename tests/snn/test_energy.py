"""Energy accounting: closed forms, hook counts on hand-set spikes, rates, presets and the CLI
(energy spec Sec. 6)."""

from __future__ import annotations

import argparse
import json
import math

import pytest
import torch
import yaml
from torch import nn

from spikerl.experiments.checkpoint import save_checkpoint
from spikerl.experiments.config import ConfigError, config_to_dict
from spikerl.experiments.energy_cli import add_energy_parser, cmd_energy, measure_policy
from spikerl.experiments.run import CHECKPOINT_NAME, CONFIG_NAME, RunError
from spikerl.nets import DeterministicActor, SpikingActor, SynapticLayer, build_actor
from spikerl.snn import energy
from spikerl.snn.energy import (
    CAVEAT,
    PRESETS,
    EnergyPreset,
    OpCounter,
    analytic_ann_report,
    ann_actor_macs,
    compare,
    register_preset,
    sop_ceiling,
)
from spikerl.snn.layers import LIF

V4_DIMS = {
    "InvertedDoublePendulum-v4": (11, 1),
    "Ant-v4": (27, 8),
    "HalfCheetah-v4": (17, 6),
    "Hopper-v4": (11, 3),
    "Walker2d-v4": (17, 6),
}
V4_MACS = {
    "InvertedDoublePendulum-v4": 68_608,
    "Ant-v4": 74_496,
    "HalfCheetah-v4": 71_424,
    "Hopper-v4": 69_120,
    "Walker2d-v4": 71_424,
}


class SpikeLayer(nn.Module):
    """A spike-driven dense layer fed hand-set spikes ``[T, B, N_in]``."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.fc = nn.Linear(n_in, n_out)

    def forward(self, spikes: torch.Tensor) -> torch.Tensor:
        return self.fc(spikes)

    def energy_layers(self) -> list[SynapticLayer]:
        return [SynapticLayer("fc", self.fc, "spike")]


class LIFThenLayer(SpikeLayer):
    """N LIF neurons driven by a constant current ``[B, N]`` for T ticks, feeding ``fc``."""

    def __init__(self, n: int, n_out: int, timesteps: int = 5) -> None:
        super().__init__(n, n_out)
        self.neuron, self.timesteps = LIF(), timesteps

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        spikes, _ = self.neuron(current.expand(self.timesteps, *current.shape))
        return self.fc(spikes)

    def populations(self) -> dict[str, nn.Module]:
        return {"lif": self.neuron}


@pytest.fixture(autouse=True)
def _one_thread():
    """Batch-1 forwards are fastest on one thread (conftest restores the count)."""
    torch.set_num_threads(1)


def _count(module: nn.Module, x: torch.Tensor, **kwargs):
    with torch.no_grad(), OpCounter(module, **kwargs) as counter:
        module(x)
    return counter.report()


# --- closed forms ------------------------------------------------------------------------------
def test_ann_macs_of_the_five_v4_envs_and_their_priced_mean():
    macs = {env: ann_actor_macs(*dims) for env, dims in V4_DIMS.items()}
    assert macs == V4_MACS
    mean = sum(macs.values()) / len(macs)
    assert mean == pytest.approx(71_014.4)
    for preset, nj in (("proxy-target", 281.9), ("45nm", 326.7)):
        e = [
            analytic_ann_report(*dims).energy(PRESETS[preset]).joules.mean
            for dims in V4_DIMS.values()
        ]
        assert sum(e) / len(e) / 1e-9 == pytest.approx(nj, rel=1e-3)


def test_sop_ceiling_of_halfcheetah():
    assert sop_ceiling(17, 6) == 5 * 124_476 == 622_380


def test_measured_ann_actor_equals_closed_form():
    report = _count(DeterministicActor(17, 6), torch.randn(3, 17))
    assert report.mac == (71_424.0, 0.0) and report.sop.mean == 0
    assert report.other_ops["relu"] == 512 and report.other_ops["bias_adds"] == 256 + 256 + 6
    assert report.meta["decisions"] == 3 and report.meta["act_dim"] == 6


# --- hand-set spikes ---------------------------------------------------------------------------
@pytest.mark.parametrize("k", [0, 1, 9, 40])
def test_k_events_into_seven_outputs_give_7k_sops(k):
    spikes = torch.zeros(5 * 13)
    spikes[torch.randperm(5 * 13, generator=torch.Generator().manual_seed(k))[:k]] = 1.0
    report = _count(SpikeLayer(13, 7), spikes.reshape(5, 1, 13), debug=True)
    assert report.sop == (7.0 * k, 0.0)
    assert report.layers[0].density == pytest.approx(k / (13 * 5))


def test_lif_population_at_constant_current_fires_twice_in_five_ticks():
    n, n_out = 6, 4
    report = _count(LIFThenLayer(n, n_out), torch.full((1, n), 0.3))
    assert report.sop.mean == 2 * n * n_out
    (pop,) = report.populations
    assert (pop.name, pop.neurons, pop.ticks, pop.spikes.mean) == ("lif", n, 5.0, 2.0 * n)
    assert pop.rate.mean == pytest.approx(0.4) and report.network_rate.mean == pytest.approx(0.4)
    assert report.other_ops["neuron_updates"] == n * 5


@pytest.mark.parametrize(
    ("value", "rate", "silent", "saturated"), [(1.0, 1.0, 0.0, 1.0), (0.0, 0.0, 1.0, 0.0)]
)
def test_rate_bounds(value, rate, silent, saturated):
    report = _count(SpikeLayer(10, 3), torch.full((5, 2, 10), value))
    (pop,) = report.populations
    assert (pop.rate.mean, pop.silent, pop.saturated) == (rate, silent, saturated)
    assert report.layers[0].density == rate


def test_encoder_at_constant_stimulation_emits_three_spikes_in_five_ticks():
    actor = SpikingActor(1, 1, hidden=(4,), pop_in=1, pop_out=1)
    with torch.no_grad():
        actor.encoder.mu.zero_()
        x = actor.encoder.sigma * math.sqrt(-2 * math.log(0.6))  # A = exp(-x^2 / 2 sigma^2)
        assert actor.encoder.receptive_fields(x).item() == pytest.approx(0.6)
    report = _count(actor, torch.atanh(x))  # the actor squashes observations with tanh
    encoder = report.populations[0]
    assert (encoder.name, encoder.spikes.mean, encoder.rate.mean) == ("encoder", 3.0, 0.6)
    assert report.layers[0].ops.mean == 3 * 4
    assert report.other_ops["encoder_steps"] == 5 and report.other_ops["encoder_gaussians"] == 1


# --- side effects, debug mode, presets ---------------------------------------------------------
def test_counting_changes_no_numerics_and_leaves_no_hooks():
    torch.manual_seed(0)
    actor = SpikingActor(17, 6, hidden=(64, 64))
    obs = torch.randn(8, 17)
    before = actor(obs)
    with OpCounter(actor, debug=True) as counter:
        during = actor(obs)
    assert torch.equal(before, during) and torch.equal(before, actor(obs))
    assert during.requires_grad and actor.training
    modules = [actor, *actor.linears, actor.decoder]
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in modules)
    report = counter.report()
    assert report.meta["decisions"] == 8 and report.mac.mean == 0
    assert [p.name for p in report.populations] == ["encoder", "h0", "h1", "output"]
    assert sum(layer.ops.mean for layer in report.layers) == pytest.approx(report.sop.mean)
    assert report.layers[-1].fan_out == 1  # readout: one SOP per output spike


def test_layer_called_outside_the_actor_is_an_error():
    actor = SpikingActor(3, 1, hidden=(8,))
    with OpCounter(actor), pytest.raises(RuntimeError, match="outside a call"):
        actor.linears[0](torch.zeros(5, 1, 30))


def test_debug_mode_rejects_non_event_spike_inputs_and_accepts_declared_amplitudes():
    layer = SpikeLayer(4, 2)
    with pytest.raises(ValueError, match="not integer multiples"):
        _count(layer, torch.full((5, 1, 4), 0.3), debug=True)
    report = _count(layer, torch.full((5, 1, 4), 0.3), debug=True, amplitudes={"fc": 0.15})
    assert report.sop.mean == 5 * 4 * 2


def test_custom_presets_and_no_mixing(monkeypatch):
    monkeypatch.setattr(energy, "PRESETS", dict(PRESETS))
    custom = register_preset(EnergyPreset("unit", 1.0, 0.5))
    assert energy.PRESETS["unit"] is custom
    with pytest.raises(ValueError, match="exists"):
        register_preset(EnergyPreset("unit", 2.0, 0.5))
    ann = analytic_ann_report(17, 6)
    snn = _count(SpikeLayer(13, 7), torch.ones(5, 1, 13))
    assert snn.energy(custom).joules.mean == 0.5 * 5 * 13 * 7
    assert compare(snn.energy(custom), ann.energy(custom)) == 71_424 / (0.5 * 455)
    with pytest.raises(ValueError, match="different presets"):
        compare(snn.energy(custom), ann.energy(PRESETS["45nm"]))


def test_report_prints_counts_constants_and_ends_with_the_caveat():
    report = _count(SpikeLayer(13, 7), torch.ones(5, 1, 13))
    text = report.format(baseline=analytic_ann_report(17, 6))
    for needed in ("455.0", "71,424.0", "45nm", "proxy-target", "0.077", "4.6", "ratio"):
        assert needed in text
    assert " ".join(text.split()).endswith(" ".join(CAVEAT.split()))
    assert report.to_dict()["caveat"] == CAVEAT


# --- real rollouts and the CLI -----------------------------------------------------------------
def test_measure_policy_on_pendulum():
    torch.manual_seed(0)
    actor = SpikingActor(3, 1, hidden=(32, 32))
    report = measure_policy(actor, "Pendulum-v1", seed=0, episodes=1)
    assert report.meta["decisions"] == 200 and report.meta["env_version"] == 1
    assert 0 < report.sop.mean <= sop_ceiling(3, 1, (32, 32))
    rates = [p.rate.mean for p in report.populations]
    rates += [report.network_rate.mean, report.network_rate_with_encoder.mean]
    assert all(0.0 <= r <= 1.0 for r in rates)


def _run_dir(tmp_path, tiny_config):
    cfg = tiny_config("actor.kind=lif", "actor.hidden=[16, 16]", "run.name=energy")
    run_dir = tmp_path / cfg.run_name
    run_dir.mkdir()
    (run_dir / CONFIG_NAME).write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    actor = build_actor(cfg.actor, cfg.algo.name, 3, 1)
    save_checkpoint(
        {"learner": {"actor": actor.state_dict()}, "env": {}}, run_dir / CHECKPOINT_NAME
    )
    return run_dir


def _energy_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_energy_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["energy", *argv])


def test_energy_cli_writes_report_json_and_csv(tmp_path, tiny_config, capsys):
    run_dir = _run_dir(tmp_path, tiny_config)
    out_json, out_csv = tmp_path / "e.json", tmp_path / "e.csv"
    args = _energy_args(
        str(run_dir),
        "--episodes",
        "1",
        "--preset",
        "proxy-target",
        "--json",
        str(out_json),
        "--csv",
        str(out_csv),
    )
    assert cmd_energy(args) == 0
    text = capsys.readouterr().out
    assert "ANN 256-256 (analytic)" in text and "ratio baseline/policy" in text
    data = json.loads(out_json.read_text())
    assert data["meta"]["checkpoint"] == str(run_dir / CHECKPOINT_NAME)
    assert data["meta"]["env_id"] == "Pendulum-v1" and data["meta"]["episodes"] == 1
    assert [r["preset"] for r in data["energy"]] == ["proxy-target"] * 3
    assert "totals.sop.mean" in out_csv.read_text()


def test_energy_cli_rejects_bad_input(tmp_path, tiny_config):
    with pytest.raises(RunError, match="no such run"):
        cmd_energy(_energy_args(str(tmp_path / "missing")))
    run_dir = _run_dir(tmp_path, tiny_config)
    with pytest.raises(ConfigError, match="unknown preset '7nm'"):
        cmd_energy(_energy_args(str(run_dir), "--preset", "7nm"))
