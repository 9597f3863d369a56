"""Population-coded spiking actor (proxy-target spec Sec. 2)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spikerl.nets.spiking import SpikingActor, diagnostic_names, spiking_diagnostics
from spikerl.snn.functional import CLIFState, DNState, LIFState
from spikerl.snn.layers import CLIF, DN, LIF, PLIF

NEURONS = ("lif", "clif", "dn", "plif")
STATE_TYPES = {"lif": LIFState, "plif": LIFState, "clif": CLIFState, "dn": DNState}
NEURON_CLASSES = {"lif": LIF, "plif": PLIF, "clif": CLIF, "dn": DN}


@pytest.fixture
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def _active_actor(neuron: str, obs_dim: int = 17, act_dim: int = 6, seed: int = 0, **kw):
    """An actor whose layers fire noticeably (default init leaves the output almost silent)."""
    torch.manual_seed(seed)
    actor = SpikingActor(obs_dim, act_dim, neuron, **kw)
    with torch.no_grad():
        for lin in actor.linears:
            lin.weight.mul_(2.0)
    return actor


def _obs(batch: int, obs_dim: int = 17, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, obs_dim, generator=gen, dtype=torch.get_default_dtype())


@pytest.mark.parametrize(
    "obs_dim,act_dim,expected",
    [(11, 1, 97_009), (27, 8, 156_356), (17, 6, 125_394), (11, 3, 102_171), (17, 6, 125_394)],
)
@pytest.mark.parametrize("neuron", NEURONS)
def test_parameter_count(neuron, obs_dim, act_dim, expected):
    actor = SpikingActor(obs_dim, act_dim, neuron)
    count = sum(p.numel() for p in actor.parameters())
    assert count == expected + (3 if neuron == "plif" else 0)
    assert all(p.requires_grad for p in actor.parameters())


def test_architecture():
    actor = SpikingActor(17, 6, "lif")
    assert [(m.in_features, m.out_features) for m in actor.linears] == [
        (170, 256),
        (256, 256),
        (256, 60),
    ]
    assert all(m.bias is not None for m in actor.linears)
    assert actor.encoder.mu.shape == (17, 10) and actor.encoder.timesteps == 5
    assert actor.decoder.weight.shape == (6, 10)
    assert actor.timesteps == 5
    assert actor.layer_names == ["h0", "h1", "output"]
    for kind, cls in NEURON_CLASSES.items():
        a = SpikingActor(5, 2, kind, hidden=(8,))
        assert [type(n) for n in a.neurons] == [cls, cls]
        assert a.layer_names == ["h0", "output"]


def test_leak_parameters():
    plif = SpikingActor(5, 2, "plif")
    leaks = plif.leak_parameters()
    assert len(leaks) == 3 and all(p.shape == () for p in leaks)
    assert all(p.item() == pytest.approx(1.0986123, abs=1e-6) for p in leaks)  # ln 3
    assert len({id(p) for p in leaks}) == 3
    for kind in ("lif", "clif", "dn"):
        assert SpikingActor(5, 2, kind).leak_parameters() == []


@pytest.mark.parametrize("neuron", NEURONS)
def test_batch_one_equals_row_of_batch(neuron, float64):
    actor = _active_actor(neuron)
    obs = _obs(256)
    with torch.no_grad():
        batch = actor(obs)
        assert batch.dtype == torch.float64 and batch.shape == (256, 6)
        for i in (0, 17, 128, 255):
            single = actor(obs[i : i + 1])
            torch.testing.assert_close(single, batch[i : i + 1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("neuron", NEURONS)
def test_forward_equals_stepwise_forward_and_backward(neuron, float64):
    actor = _active_actor(neuron)
    obs = _obs(32)
    gen = torch.Generator().manual_seed(3)
    w = torch.randn(32, 6, generator=gen)

    def grads_of(action):
        actor.zero_grad(set_to_none=True)
        (action * w).sum().backward()
        return {n: p.grad.clone() for n, p in actor.named_parameters()}

    trace = actor.forward_stepwise(obs)
    g_step = grads_of(trace.action)
    action = actor(obs)
    g_multi = grads_of(action)

    torch.testing.assert_close(action, trace.action, rtol=1e-12, atol=1e-12)
    assert set(g_multi) == set(g_step)
    for name in g_multi:
        torch.testing.assert_close(g_multi[name], g_step[name], rtol=1e-9, atol=1e-12, msg=name)
    # the comparison is not vacuous: every layer fires and gets gradient
    assert all(0 < float(s.detach().mean()) < 1 for s in trace.spikes)
    for name in (
        "linears.0.weight",
        "linears.2.weight",
        "encoder.mu",
        "encoder.sigma",
        "decoder.weight",
    ):
        assert g_multi[name].abs().sum() > 0, name
    if neuron == "plif":
        for p in actor.leak_parameters():
            assert p.grad is not None and p.grad.abs().item() > 0


@pytest.mark.parametrize("neuron", NEURONS)
def test_stepwise_trace_shapes(neuron):
    actor = SpikingActor(7, 2, neuron, hidden=(16, 8))
    trace = actor.forward_stepwise(_obs(3, 7))
    assert trace.action.shape == (3, 2)
    assert [s.shape for s in trace.spikes] == [(5, 3, 16), (5, 3, 8), (5, 3, 20)]
    assert [v.shape for v in trace.membranes] == [(5, 3, 16), (5, 3, 8), (5, 3, 20)]
    for s in trace.spikes:
        assert set(s.unique().tolist()) <= {0.0, 1.0}
    # spikes are H(V - 0.5) of the recorded membranes
    for s, v in zip(trace.spikes, trace.membranes, strict=True):
        assert torch.equal(s, (v > 0.5).to(s.dtype))


@pytest.mark.parametrize("neuron", NEURONS)
def test_every_forward_starts_from_zero_state(neuron):
    actor = _active_actor(neuron)
    obs = _obs(8)
    a1 = actor(obs)
    a2 = actor(obs)
    assert torch.equal(a1, a2)
    _, state = actor.step(obs)
    actor.step(obs, state)  # a stateful call in between must not leak into forward
    assert torch.equal(actor(obs), a1)
    assert torch.equal(actor.step(obs)[0], a1)
    assert list(actor.buffers()) == []


@pytest.mark.parametrize("neuron", NEURONS)
def test_step_with_carried_state_differs(neuron, float64):
    actor = _active_actor(neuron)
    obs = _obs(16)
    a_fresh, state = actor.step(obs)
    assert isinstance(state, tuple) and len(state) == 3
    assert all(isinstance(s, STATE_TYPES[neuron]) for s in state)
    assert [s.v.shape for s in state] == [(16, 256), (16, 256), (16, 60)]
    a_carried, state2 = actor.step(obs, state)
    assert not torch.allclose(a_carried, a_fresh)
    assert not torch.equal(state2[0].v, state[0].v)
    # carrying state equals running the layers over the concatenated 2T ticks
    with torch.no_grad():
        enc = actor.encoder(torch.tanh(obs))
        x = torch.cat([enc, enc])
        for lin, neu in zip(actor.linears, actor.neurons, strict=True):
            x, _ = neu(lin(x))
        expected = actor.max_action * torch.tanh(actor.decoder(x[5:]))
    torch.testing.assert_close(a_carried.detach(), expected, rtol=1e-12, atol=1e-12)


def test_max_action_and_tanh_of_obs():
    actor = _active_actor("lif", max_action=2.5)
    obs = _obs(64) * 10
    a = actor(obs)
    assert float(a.detach().abs().max()) <= 2.5
    # the SNN sees tanh(obs): the pipeline written out by hand
    with torch.no_grad():
        x = actor.encoder(torch.tanh(obs))
        for lin, neu in zip(actor.linears, actor.neurons, strict=True):
            x, _ = neu(lin(x))
        torch.testing.assert_close(a.detach(), 2.5 * torch.tanh(actor.decoder(x)))
        raw = actor.encoder(obs)
        assert not torch.equal(raw, actor.encoder(torch.tanh(obs)))
    ref_actor = _active_actor("lif", max_action=1.0)
    torch.testing.assert_close(a, 2.5 * ref_actor(obs))


def test_set_surrogate_slope_reaches_all_layers(float64):
    actor = _active_actor("lif", surrogate="sigmoid", slope=1.0)
    surs = actor.surrogates
    assert len(surs) == 3
    assert len({id(s) for s in surs}) == 3  # each layer owns its own surrogate
    assert [id(n.surrogate) for n in actor.neurons] == [id(s) for s in surs]
    assert all((s.kind, s.slope) == ("sigmoid", 1.0) for s in surs)
    obs = _obs(16)

    def grad_mu():
        actor.zero_grad(set_to_none=True)
        actor(obs).sum().backward()
        return actor.linears[0].weight.grad.clone()

    g1 = grad_mu()
    actor.set_surrogate_slope(4.0)
    assert all(n.surrogate.slope == 4.0 for n in actor.neurons)
    # the encoder's straight-through estimator is not part of the schedule
    assert (actor.encoder.surrogate.kind, actor.encoder.surrogate.slope) == (
        "straight_through",
        1.0,
    )
    g4 = grad_mu()
    assert not torch.allclose(g1, g4)
    actor.set_surrogate_slope(1.0)
    torch.testing.assert_close(grad_mu(), g1)


def test_surrogate_constructor_arguments():
    actor = SpikingActor(5, 2, "dn", surrogate="arctan", slope=3.0)
    assert all((s.kind, s.slope) == ("arctan", 3.0) for s in actor.surrogates)
    with pytest.raises(ValueError):
        SpikingActor(5, 2, "lif", surrogate="nope")
    with pytest.raises(ValueError):
        SpikingActor(5, 2, "alif")


@pytest.mark.parametrize("neuron", NEURONS)
def test_spiking_diagnostics(neuron):
    actor = _active_actor(neuron)
    obs = _obs(32)
    diag = spiking_diagnostics(actor, obs)
    names = diagnostic_names(actor)
    assert len(names) == 12 and len(set(names)) == 12
    assert set(diag) == set(names)
    assert "snn/rate_h0" in names and "snn/saturated_output" in names
    for k, v in diag.items():
        assert isinstance(v, float)
        assert 0.0 <= v <= 1.0, k
    with torch.no_grad():
        trace = actor.forward_stepwise(obs)
    assert diag["snn/rate_h0"] == pytest.approx(float(trace.spikes[0].mean()))
    assert diag["snn/in_window_output"] == pytest.approx(
        float(((trace.membranes[2] - 0.5).abs() < 0.5).double().mean())
    )
    assert 0 < diag["snn/in_window_h0"] < 1
    # silent: never fires for any row; saturated: fires on every tick for every row
    for name, spikes in zip(actor.layer_names, trace.spikes, strict=True):
        per_neuron = spikes.sum(0)  # [B, N] spike counts
        silent = (per_neuron == 0).all(0).double().mean()
        saturated = (per_neuron == 5).all(0).double().mean()
        assert diag[f"snn/silent_{name}"] == pytest.approx(float(silent))
        assert diag[f"snn/saturated_{name}"] == pytest.approx(float(saturated))
    counts = trace.spikes[0].sum(0)  # some h0 neuron is silent on some rows only
    assert bool(((counts == 0).any(0) & ~(counts == 0).all(0)).any())


def test_diagnostics_mixed_rows():
    """Silent / saturated mean "on every row": saturating on one row only is neither."""
    actor = SpikingActor(1, 1, "lif", hidden=(4,))
    obs = torch.tensor([[10.0], [-10.0]])  # tanh -> +-1: encoder neuron 9 (centre 1) fires
    with torch.no_grad():
        assert actor.encoder(torch.tanh(obs))[:, :, 9].tolist() == [[1.0, 0.0]] * 5
        h0, out = actor.linears
        h0.weight.zero_()
        h0.weight[2, 9], h0.weight[3, 9] = 0.7, -0.7
        h0.bias.copy_(torch.tensor([0.7, -1.0, 0.0, 0.7]))
        # neuron 0 always fires, 1 never, 2 on row 0 only, 3 on row 1 only
        out.weight.zero_()
        out.bias.fill_(-1.0)
    diag = spiking_diagnostics(actor, obs)
    assert diag["snn/saturated_h0"] == 0.25
    assert diag["snn/silent_h0"] == 0.25
    assert diag["snn/rate_h0"] == 0.5
    assert diag["snn/in_window_h0"] == 0.5  # V = 0.7 in (0, 1); V = 0 and V <= -1 are not
    assert diag["snn/silent_output"] == 1.0 and diag["snn/rate_output"] == 0.0


def test_diagnostics_extremes():
    actor = SpikingActor(3, 1, "lif", hidden=(4,))
    obs = _obs(5, 3)
    with torch.no_grad():
        for lin in actor.linears:
            lin.weight.zero_()
            lin.bias.fill_(-1.0)  # never fires
    diag = spiking_diagnostics(actor, obs)
    assert diag["snn/rate_h0"] == 0.0 and diag["snn/silent_h0"] == 1.0
    assert diag["snn/saturated_h0"] == 0.0 and diag["snn/in_window_h0"] == 0.0
    with torch.no_grad():
        for lin in actor.linears:
            lin.bias.fill_(0.7)  # V = 0.7 every tick (hard reset): fires every tick, in window
    diag = spiking_diagnostics(actor, obs)
    assert diag["snn/rate_output"] == 1.0 and diag["snn/saturated_output"] == 1.0
    assert diag["snn/silent_output"] == 0.0 and diag["snn/in_window_output"] == 1.0


def test_diagnostic_names_non_spiking():
    assert diagnostic_names(nn.Linear(3, 2)) == ()


def test_populations_and_energy_layers():
    actor = SpikingActor(5, 2, "clif")
    pops = actor.populations()
    assert list(pops) == ["encoder", "h0", "h1", "output"]
    assert pops["encoder"] is actor.encoder and pops["output"] is actor.neurons[-1]
    layers = actor.energy_layers()
    assert len(layers) == 4
