"""Conversion neurons and CRPI against the equations of spec conversion.md Secs. 5-6."""

from __future__ import annotations

import pytest
import torch

from spikerl.snn import conversion
from spikerl.snn.conversion import (
    CONVERSION_MODELS,
    ConversionNeuron,
    DCState,
    if_fire,
    mt_fire,
    mt_table,
)
from spikerl.snn.functional import reset_rows


def run_decisions(neuron: ConversionNeuron, current: torch.Tensor, decisions: int):
    """Decision estimates ``[decisions, B, N]`` for a constant input current, state carried."""
    state, estimates = None, []
    for _ in range(decisions):
        outputs, state = neuron(current.expand(neuron.ticks, *current.shape), state)
        estimates.append(neuron.decision_estimate(outputs, state))
    return torch.stack(estimates), state


def test_if_unit_equations_one_decision():
    """v(0) = theta/2, strict firing, soft reset: I = 0.3, theta = 1 over T = 4 ticks."""
    neuron = ConversionNeuron("if", 1, timesteps=4, theta=torch.tensor([1.0]))
    out, state = neuron(torch.full((4, 1, 1), 0.3))
    # u: 0.8, 1.1 (fire), 0.4, 0.7 -> outputs 0, 1, 0, 0
    assert out.flatten().tolist() == [0.0, 1.0, 0.0, 0.0]
    assert state.v.item() == pytest.approx(0.7)
    assert state.v0.item() == 0.5 and state.m.item() == 1.0


@pytest.mark.parametrize("timesteps", [1, 4, 16])
def test_if_constant_input_error_bound(timesteps):
    """c = 0: |y_bar - I| <= theta/(2T) on [0, theta]; 0 below 0; theta above theta."""
    theta = torch.tensor([2.0])
    neuron = ConversionNeuron("if", 1, timesteps, theta=theta)
    currents = torch.linspace(-1.0, 3.0, 401).unsqueeze(1)  # [B, 1]
    est, _ = run_decisions(neuron, currents, 1)
    target = currents.clamp(0.0, 2.0)
    assert (est[0] - target).abs().max() <= 2.0 / (2 * timesteps) + 1e-6


def test_snm_without_negative_spikes_equals_if():
    """SNM differs from IF only by negative spikes: where the memory gate never opens (inputs
    that never push u below zero after a spike), outputs are identical bit for bit."""
    torch.manual_seed(0)
    theta = torch.rand(32) + 0.5
    current = torch.rand(16, 8, 32) * theta  # non-negative: u never drops below 0
    out_if, _ = ConversionNeuron("if", 32, 16, theta=theta)(current)
    out_snm, _ = ConversionNeuron("snm", 32, 16, theta=theta)(current)
    assert torch.equal(out_if, out_snm)


def test_snm_undoes_over_firing_and_stays_non_negative():
    theta = torch.tensor([1.0])
    neuron = ConversionNeuron("snm", 1, 4, theta=theta)
    current = torch.tensor([2.0, -1.5, -1.5, 0.0]).view(4, 1, 1)
    out, state = neuron(current)
    # u: 2.5 (fire +1) -> 1.5 - 1.5 = 0.0 ... then -1.5 < 0 with m = 1: fire -1
    assert out.flatten().tolist() == [1.0, 0.0, -1.0, 0.0]
    assert state.m.item() == 0.0
    assert bool((out.cumsum(0) >= 0).all())


def mt_reference(u, theta, levels, gate):
    """The comparison form of spec Sec. 5.3, level by level (the plain reference path)."""
    lam = theta * 2.0 ** -torch.arange(levels, dtype=u.dtype)[:, None]
    pos, neg = torch.zeros_like(u), torch.zeros_like(u)
    for level in lam.flip(0):  # smallest first: the last match written is the largest level
        pos = torch.where(u >= 0.75 * level, level, pos)
        if gate is not None:
            neg = torch.where((u <= -0.75 * level) & (gate >= level), -level, neg)
    out = pos if gate is None else torch.where(u >= 0.75 * lam[-1], pos, neg)
    return torch.where(theta > 0, out, 0.0)


def mt(u, theta, levels=3, gate=None):
    inv = torch.where(theta > 0, 1.0 / theta.clamp_min(1e-30), 0.0)
    return mt_fire(u, theta, inv, mt_table(levels, u.dtype), gate)


def test_mt_fire_rounds_to_nearest_level():
    theta = torch.ones(7)  # levels 1, 0.5, 0.25
    u = torch.tensor([0.1, 0.2, 0.4, 0.74, 0.75, 5.0, -0.3])
    assert mt(u, theta).tolist() == [0.0, 0.25, 0.5, 0.5, 1.0, 1.0, 0.0]
    gated = mt(u, theta, gate=torch.full((7,), 0.5))
    assert gated[-1].item() == -0.25  # u <= -0.75 * 0.25 and memory >= 0.25; not 0.5 (u > -0.375)


@pytest.fixture(params=["lookup", "exponent"])
def mt_form(request, monkeypatch):
    """Both computations of the MT level (small tensors: lookup; large: exponent bits)."""
    monkeypatch.setattr(
        conversion, "EXPONENT_FORM_FROM", 0 if request.param == "exponent" else 1 << 62
    )
    return request.param


@pytest.mark.parametrize("signed", [False, True])
def test_mt_closed_form_equals_the_level_by_level_rule(signed, mt_form):
    torch.manual_seed(5)
    theta = torch.rand(400) * 3
    theta[:40] = 0.0
    u = torch.randn(64, 400) * 2
    gate = torch.rand(64, 400) * 3 if signed else None
    for levels in (1, 4, 8):
        assert torch.equal(mt(u, theta, levels, gate), mt_reference(u, theta, levels, gate))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_mt_closed_form_is_exact_on_and_beside_every_boundary(dtype, mt_form):
    """theta = 1 (no rounding in u / theta): values exactly on each 0.75 * 2^-j and on each
    gate level 2^-j, one float step either side, zeros, huge and tiny values."""
    levels = 6
    edges = torch.cat(
        [0.75 * 2.0 ** -torch.arange(levels + 2.0), 2.0 ** -torch.arange(levels + 2.0)]
    )
    edges = edges.to(dtype)
    inf = torch.tensor(float("inf"), dtype=dtype)
    values = torch.cat([edges, torch.nextafter(edges, inf), torch.nextafter(edges, -inf)])
    values = torch.cat(
        [values, -values, torch.tensor([0.0, -0.0, 1e30, -1e30, 1e-30], dtype=dtype)]
    )
    u = values[:, None].expand(-1, values.numel()).reshape(-1)
    gate = values.abs()[None, :].expand(values.numel(), -1).reshape(-1)
    theta = torch.ones_like(u)
    assert mt(u, theta, levels).dtype == dtype
    assert torch.equal(mt(u, theta, levels), mt_reference(u, theta, levels, None))
    assert torch.equal(mt(u, theta, levels, gate), mt_reference(u, theta, levels, gate))


def test_if_fire_strict_and_signed_gate():
    theta = torch.tensor([1.0, 1.0, 1.0])
    u = torch.tensor([1.0, 1.0001, -0.1])
    assert if_fire(u, theta, None).tolist() == [0.0, 1.0, 0.0]
    assert if_fire(u, theta, torch.tensor([0.0, 0.0, 1.0])).tolist() == [0.0, 1.0, -1.0]
    assert if_fire(u, theta, torch.tensor([0.0, 0.0, 0.99])).tolist() == [0.0, 1.0, 0.0]


@pytest.mark.parametrize("model", ["dc", "dc-mt"])
def test_dc_invariant_and_priming(model):
    """v(t) = v(0) + t (X(t) - Y(t)) at every tick; the priming tick emits nothing."""
    torch.manual_seed(1)
    theta = torch.rand(20) + 0.2
    neuron = ConversionNeuron(model, 20, timesteps=12, theta=theta)
    tick = neuron.tick_fn()
    currents = torch.randn(13, 3, 20)
    state = None
    for t in range(13):
        out, state = tick(currents[t], state, t)
        if t == 0:
            assert torch.equal(out, torch.zeros_like(out))
            assert torch.equal(state.X, currents[0])
        assert torch.allclose(state.v, state.v0 + t * (state.X - state.Y), atol=1e-5)
        assert bool((state.Y >= -1e-6).all())  # the gate keeps the output estimate >= 0


def test_dc_constant_layer_one_bound():
    """dc, c = 0, constant 0 <= x <= theta: |Y(T) - x| <= theta / (2T)."""
    theta = torch.tensor([1.5])
    for timesteps in (2, 8, 32):
        neuron = ConversionNeuron("dc", 1, timesteps, theta=theta)
        x = torch.linspace(0.0, 1.5, 61).unsqueeze(1)
        est, _ = run_decisions(neuron, x, 1)
        assert (est[0] - x).abs().max() <= 1.5 / (2 * timesteps) + 1e-6


@pytest.mark.parametrize("model", CONVERSION_MODELS)
@pytest.mark.parametrize("crpi", [0.0, 1.0])
def test_zero_threshold_units_are_silent(model, crpi):
    theta = torch.tensor([0.0, 1.0, 0.0])
    neuron = ConversionNeuron(model, 3, 8, crpi=crpi, theta=theta)
    current = torch.tensor([[5.0, 0.4, -3.0]])
    state = None
    for _ in range(5):
        out, state = neuron(current.expand(neuron.ticks, 1, 3), state)
        assert bool(torch.isfinite(torch.stack(list(state))).all())
        assert bool((out[:, :, [0, 2]] == 0).all())
    carry_start = state.v0[:, [0, 2]]
    assert bool((carry_start == 0).all())  # v_init = 0 and carry 0 for theta = 0


@pytest.mark.parametrize("model", CONVERSION_MODELS)
def test_alpha_zero_is_plain_conversion_bit_for_bit(model):
    """A stateful alpha = 0 neuron gives exactly the outputs of a fresh state every decision."""
    torch.manual_seed(2)
    theta = torch.rand(16) + 0.1
    neuron = ConversionNeuron(model, 16, 6, crpi=0.0, theta=theta)
    state = None
    for _ in range(4):
        current = torch.randn(neuron.ticks, 5, 16)
        carried, state = neuron(current, state)
        fresh, _ = neuron(current, None)
        assert torch.equal(carried, fresh)


def test_crpi_if_single_unit_bias_shrinks():
    """One IF unit, constant I over many decisions (spec Sec. 6.3): decision-averaged error
    <= theta/(2T) at alpha = 0 and <= theta/(4T) at alpha = 1; a single decision's error may
    reach 3 theta/(4T) (T = 1, I = 3/4 theta alternates theta, 0)."""
    theta, timesteps = 1.0, 4
    currents = torch.linspace(0.0, 1.0, 101).unsqueeze(1)
    errors = {}
    for alpha in (0.0, 1.0):
        neuron = ConversionNeuron("if", 1, timesteps, crpi=alpha, theta=torch.tensor([theta]))
        est, _ = run_decisions(neuron, currents, 400)
        errors[alpha] = (est[50:].mean(0) - currents).abs().max().item()  # after the transient
    assert errors[0.0] <= theta / (2 * timesteps) + 1e-6
    assert errors[1.0] <= theta / (4 * timesteps) + 1e-6
    assert errors[1.0] < errors[0.0]
    tie = ConversionNeuron("if", 1, 1, crpi=1.0, theta=torch.tensor([1.0]))
    est, _ = run_decisions(tie, torch.tensor([[0.75]]), 6)
    assert est.flatten().tolist()[1:] in ([1.0, 0.0, 1.0, 0.0, 1.0], [0.0, 1.0, 0.0, 1.0, 0.0])


@pytest.mark.parametrize("model", ["snm", "mt", "dc", "dc-mt"])
def test_crpi_reduces_decision_averaged_error_for_every_model(model):
    torch.manual_seed(3)
    theta = torch.ones(64)
    currents = torch.rand(1, 64)
    errs = []
    for alpha in (0.0, 1.0):
        neuron = ConversionNeuron(model, 64, 4, crpi=alpha, theta=theta)
        est, _ = run_decisions(neuron, currents, 200)
        errs.append((est[20:].mean(0) - currents).abs().mean().item())
    assert errs[1] < errs[0]


@pytest.mark.parametrize("model", CONVERSION_MODELS)
def test_carry_is_clipped_and_reset_per_row(model):
    torch.manual_seed(4)
    theta = torch.rand(8) + 0.5
    neuron = ConversionNeuron(model, 8, 3, crpi=1.0, theta=theta)
    half = (neuron.level_values()[-1] if neuron.multi_threshold else theta) / 2
    v_init = torch.zeros(8) if neuron.multi_threshold else theta / 2
    state = None
    for _ in range(6):
        _, state = neuron(torch.randn(neuron.ticks, 4, 8) * 2, state)
        _, next_state = neuron(torch.zeros(neuron.ticks, 4, 8), state)
        carry = next_state.v0 - v_init
        assert bool((carry.abs() <= half + 1e-6).all())
    state = reset_rows(state, torch.tensor([True, False, False, True]))
    _, after = neuron(torch.zeros(neuron.ticks, 4, 8), state)
    assert torch.equal(after.v0[[0, 3]], v_init.expand(2, 8))


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="choose one of"):
        ConversionNeuron("lif", 4, 8)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ConversionNeuron("if", 4, 8, crpi=1.5)
    with pytest.raises(ValueError, match="theta"):
        ConversionNeuron("if", 2, 8, theta=torch.tensor([1.0, -1.0]))
    with pytest.raises(ValueError, match=r"timesteps must be in \[1, 4096\], got 0"):
        ConversionNeuron("if", 4, 0)
    with pytest.raises(ValueError, match=r"timesteps must be in \[1, 4096\], got 100000000"):
        ConversionNeuron("if", 4, 10**8)  # would run for hours: refused
    with pytest.raises(ValueError, match=r"levels must be in \[1, 32\], got 33"):
        ConversionNeuron("mt", 4, 8, levels=33)  # 2**-32 * theta: below float32's resolution


def test_state_types_and_event_count():
    assert ConversionNeuron("dc", 3, 4).state_type is DCState
    assert ConversionNeuron("dc", 3, 4).ticks == 5 and ConversionNeuron("mt", 3, 4).ticks == 4
    # theta is a buffer: saved with the module
    assert "theta" in ConversionNeuron("if", 3, 4).state_dict()
