"""Neuron step functions: golden trajectories, spec equations, unroll, state handling."""

from __future__ import annotations

import functools

import pytest
import torch

from spikerl.snn.functional import (
    CLIFState,
    DNState,
    LIFState,
    clif_step,
    detach_state,
    dn_step,
    if_step,
    lif_step,
    unroll,
)
from spikerl.snn.surrogate import Surrogate, spike, surrogate_grad

F64 = torch.float64
RECT = Surrogate("rectangular", 1.0)


def _const(value: float, ticks: int, dtype=F64) -> torch.Tensor:
    return torch.full((ticks, 1), value, dtype=dtype)


def _random_currents(seed: int, scale: float, low: float) -> list[float]:
    """40 reproducible currents uniform in [low, low + scale)."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(40, generator=gen, dtype=F64) * scale + low).tolist()


def _column(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=F64).unsqueeze(-1)


def _trajectory(step, currents):
    """Python loop over ticks, recording spikes and full states."""
    state, spikes, states = None, [], []
    for j in currents:
        s, state = step(j, state)
        spikes.append(s)
        states.append(state)
    return torch.stack(spikes), states


# --- scalar reference implementations of the spec equations (plain python floats) -------------
def _h(z: float) -> float:
    return 1.0 if z > 0 else 0.0


def _ref_lif(js, decay=0.75, v_th=0.5, soft=False):
    v = s = 0.0
    out = []
    for j in js:
        v = decay * ((v - v_th * s) if soft else v * (1 - s)) + j
        s = _h(v - v_th)
        out.append((v, s))
    return out


def _ref_clif(js, gamma=0.5, beta=0.75, v_th=0.5):
    i = v = s = 0.0
    out = []
    for j in js:
        i = gamma * i + j
        v = beta * v * (1 - s) + i
        s = _h(v - v_th)
        out.append((i, v, s))
    return out


def _ref_dn(js):
    c = v = u = s = 0.0
    out = []
    for j in js:
        c = 0.5 * c + j
        vp = v * (1 - s) + 0.021 * s
        up = u + 0.132 * s
        v = vp + (vp**2 - vp - up + c)
        u = up + (-0.172 * vp + 0.529 * up)
        s = _h(v - 0.5)
        out.append((c, v, u, s))
    return out


# --- golden trajectories --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_lif_constant_current_golden(dtype):
    spikes, states = _trajectory(functools.partial(lif_step, spike_fn=RECT), _const(0.3, 5, dtype))
    assert spikes.flatten().tolist() == [0.0, 1.0, 0.0, 1.0, 0.0]  # ticks 2 and 4 (1-based)
    v = torch.stack([st.v for st in states]).flatten()
    torch.testing.assert_close(v, torch.tensor([0.3, 0.525, 0.3, 0.525, 0.3], dtype=dtype))
    assert torch.equal(torch.stack([st.s for st in states]).flatten(), spikes.flatten())


def test_lif_defaults_are_paper_constants():
    s, st = lif_step(torch.tensor([0.6], dtype=F64), None, RECT)
    assert st.v.item() == pytest.approx(0.6) and s.item() == 1.0
    s, st = lif_step(
        torch.tensor([0.0], dtype=F64),
        LIFState(torch.tensor([0.4], dtype=F64), torch.tensor([0.0], dtype=F64)),
        RECT,
    )
    assert st.v.item() == pytest.approx(0.3) and s.item() == 0.0


def test_lif_matches_reference_random_currents():
    js = _random_currents(1, 0.8, -0.1)
    for soft in (False, True):
        step = functools.partial(lif_step, spike_fn=RECT, reset="soft" if soft else "hard")
        spikes, states = _trajectory(step, _column(js))
        ref = _ref_lif(js, soft=soft)
        assert spikes.flatten().tolist() == [s for _, s in ref]
        assert [st.v.item() for st in states] == pytest.approx([v for v, _ in ref], abs=1e-12)
        assert 0 < sum(s for _, s in ref) < len(js)  # non-trivial trajectory


def test_soft_vs_hard_reset():
    currents = _const(0.3, 5)
    _, hard = _trajectory(functools.partial(lif_step, spike_fn=RECT, reset="hard"), currents)
    soft_spikes, soft = _trajectory(
        functools.partial(lif_step, spike_fn=RECT, reset="soft"), currents
    )
    # soft: V3 = 0.75 * (0.525 - 0.5) + 0.3, V4 = 0.75 * V3 + 0.3, V5 = 0.75 * (V4 - 0.5) + 0.3
    v3 = 0.75 * 0.025 + 0.3
    v4 = 0.75 * v3 + 0.3
    v5 = 0.75 * (v4 - 0.5) + 0.3
    assert [st.v.item() for st in soft] == pytest.approx([0.3, 0.525, v3, v4, v5])
    assert [st.v.item() for st in hard] == pytest.approx([0.3, 0.525, 0.3, 0.525, 0.3])
    assert soft_spikes.flatten().tolist() == [0.0, 1.0, 0.0, 1.0, 0.0]
    # a case where the spike trains differ: IF, J = 0.75, threshold 1
    step_soft = functools.partial(lif_step, spike_fn=RECT, decay=1.0, v_th=1.0, reset="soft")
    step_hard = functools.partial(lif_step, spike_fn=RECT, decay=1.0, v_th=1.0, reset="hard")
    s_soft, _ = _trajectory(step_soft, _const(0.75, 6))
    s_hard, _ = _trajectory(step_hard, _const(0.75, 6))
    assert s_soft.flatten().tolist() == [0.0, 1.0, 1.0, 0.0, 1.0, 1.0]
    assert s_hard.flatten().tolist() == [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]


def test_if_soft_reset_golden():
    # v_th = 1 (default), soft reset (default); values exactly representable
    spikes, states = _trajectory(functools.partial(if_step, spike_fn=RECT), _const(0.75, 6))
    assert spikes.flatten().tolist() == [0.0, 1.0, 1.0, 0.0, 1.0, 1.0]
    assert [st.v.item() for st in states] == [0.75, 1.5, 1.25, 1.0, 1.75, 1.5]
    # V exactly at threshold does not spike (H(0) = 0)
    spikes, states = _trajectory(functools.partial(if_step, spike_fn=RECT), _const(0.5, 5))
    assert [st.v.item() for st in states] == [0.5, 1.0, 1.5, 1.0, 1.5]
    assert spikes.flatten().tolist() == [0.0, 0.0, 1.0, 0.0, 1.0]
    # no leak: equals LIF with decay 1
    cur = torch.rand(7, 3, dtype=F64) * 0.9
    s_if, _ = unroll(functools.partial(if_step, spike_fn=RECT, v_th=0.7), cur)
    s_lif, _ = unroll(
        functools.partial(lif_step, spike_fn=RECT, decay=1.0, v_th=0.7, reset="soft"), cur
    )
    assert torch.equal(s_if, s_lif)


def test_clif_by_hand():
    spikes, states = _trajectory(functools.partial(clif_step, spike_fn=RECT), _const(0.3, 4))
    # t1: I=.3 V=.3 S=0; t2: I=.45 V=.225+.45=.675 S=1; t3: I=.525 V=0+.525 S=1;
    # t4: I=.5625 V=0+.5625 S=1
    assert [st.i.item() for st in states] == pytest.approx([0.3, 0.45, 0.525, 0.5625])
    assert [st.v.item() for st in states] == pytest.approx([0.3, 0.675, 0.525, 0.5625])
    assert spikes.flatten().tolist() == [0.0, 1.0, 1.0, 1.0]
    assert isinstance(states[-1], CLIFState)


def test_clif_matches_reference_random_currents():
    js = _random_currents(2, 0.6, -0.2)
    spikes, states = _trajectory(functools.partial(clif_step, spike_fn=RECT), _column(js))
    ref = _ref_clif(js)
    assert spikes.flatten().tolist() == [r[2] for r in ref]
    assert [st.i.item() for st in states] == pytest.approx([r[0] for r in ref], abs=1e-12)
    assert [st.v.item() for st in states] == pytest.approx([r[1] for r in ref], abs=1e-12)
    assert 0 < sum(r[2] for r in ref) < len(js)


def test_dn_by_hand():
    spikes, states = _trajectory(functools.partial(dn_step, spike_fn=RECT), _const(0.3, 3))
    # t1: C=.3, V'=U'=0 -> V=.3, U=0, S=0
    # t2: C=.45, V'=.3, U'=0 -> V=.3+(.09-.3+.45)=.54, U=-.172*.3=-.0516, S=1
    # t3: C=.525, V'=.021 (reset), U'=-.0516+.132=.0804
    #     V=.021+(.021^2-.021-.0804+.525), U=.0804+(-.172*.021+.529*.0804), S=0
    v3 = 0.021 + (0.021**2 - 0.021 - 0.0804 + 0.525)
    u3 = 0.0804 + (-0.172 * 0.021 + 0.529 * 0.0804)
    assert [st.c.item() for st in states] == pytest.approx([0.3, 0.45, 0.525])
    assert [st.v.item() for st in states] == pytest.approx([0.3, 0.54, v3])
    assert [st.u.item() for st in states] == pytest.approx([0.0, -0.0516, u3])
    assert spikes.flatten().tolist() == [0.0, 1.0, 0.0]
    assert v3 == pytest.approx(0.445041) and u3 == pytest.approx(0.1193196)
    assert isinstance(states[-1], DNState)


def test_dn_matches_reference_random_currents():
    js = _random_currents(3, 0.6, -0.2)
    spikes, states = _trajectory(functools.partial(dn_step, spike_fn=RECT), _column(js))
    ref = _ref_dn(js)
    assert spikes.flatten().tolist() == [r[3] for r in ref]
    for k, name in enumerate("cvu"):
        got = [getattr(st, name).item() for st in states]
        assert got == pytest.approx([r[k] for r in ref], abs=1e-12), name
    assert 0 < sum(r[3] for r in ref) < len(js)


def test_lif_tensor_decay_and_threshold_broadcast():
    decay = torch.tensor([0.5, 0.75, 1.0], dtype=F64)
    v_th = torch.tensor([0.2, 0.5, 0.9], dtype=F64)
    js = torch.full((4, 2, 3), 0.3, dtype=F64)
    spikes, _ = unroll(functools.partial(lif_step, spike_fn=RECT, decay=decay, v_th=v_th), js)
    for n in range(3):
        ref = _ref_lif([0.3] * 4, decay=float(decay[n]), v_th=float(v_th[n]))
        for b in range(2):
            assert spikes[:, b, n].tolist() == [s for _, s in ref]


# --- gradients through the reset ------------------------------------------------------------------
def test_gradient_flows_through_hard_reset():
    """dV2/dJ1 = beta * (1 - S1) - beta * V1 * g(V1 - th): the reset factor is not detached."""
    for j1, expected_s1 in ((0.7, 1.0), (0.3, 0.0)):
        j = torch.tensor([[j1], [0.1]], dtype=F64, requires_grad=True)
        _, states = _trajectory(functools.partial(lif_step, spike_fn=RECT), j)
        (grad,) = torch.autograd.grad(states[1].v.sum(), j)
        g1 = surrogate_grad(torch.tensor(j1 - 0.5, dtype=F64), "rectangular", 1.0).item()
        assert states[0].s.item() == expected_s1
        assert grad[0].item() == pytest.approx(0.75 * (1 - expected_s1) - 0.75 * j1 * g1)
        assert grad[1].item() == pytest.approx(1.0)


def test_gradient_flows_through_dn_reset_and_adaptation():
    j = torch.tensor([[0.7], [0.0]], dtype=F64, requires_grad=True)
    _, states = _trajectory(functools.partial(dn_step, spike_fn=RECT), j)
    (gu,) = torch.autograd.grad(states[1].u.sum(), j, retain_graph=True)
    # U2 = U' + (-0.172 V' + 0.529 U'), V' = V1 (1 - S1) + 0.021 S1, U' = 0.132 S1 (U1 = 0)
    # dS1/dJ1 = g(0.7 - 0.5) = 1, dV1/dJ1 = 1, S1 = 1
    dvp = 1.0 * (1 - 1) - 0.7 * 1.0 + 0.021 * 1.0
    dup = 0.132 * 1.0
    assert gu[0].item() == pytest.approx(dup + (-0.172 * dvp + 0.529 * dup))


# --- unroll / state handling ---------------------------------------------------------------------
STEPS = {
    "lif": functools.partial(lif_step, spike_fn=Surrogate("sigmoid", 4.0)),
    "lif_soft": functools.partial(lif_step, spike_fn=Surrogate("sigmoid", 4.0), reset="soft"),
    "if": functools.partial(if_step, spike_fn=Surrogate("sigmoid", 4.0)),
    "clif": functools.partial(clif_step, spike_fn=Surrogate("sigmoid", 4.0)),
    "dn": functools.partial(dn_step, spike_fn=Surrogate("sigmoid", 4.0)),
}


@pytest.mark.parametrize("name", sorted(STEPS))
def test_unroll_equals_python_loop_forward_and_backward(name):
    step = STEPS[name]
    gen = torch.Generator().manual_seed(4)
    base = torch.rand(6, 3, 5, generator=gen, dtype=F64) * 0.8
    w = torch.randn(6, 3, 5, generator=gen, dtype=F64)

    def loss_of(spikes, state):
        return (spikes * w).sum() + sum(t.pow(2).sum() for t in state)

    cur_a = base.clone().requires_grad_(True)
    spikes_a, state_a = unroll(step, cur_a)
    loss_of(spikes_a, state_a).backward()

    cur_b = base.clone().requires_grad_(True)
    state, outs = None, []
    for t in range(cur_b.shape[0]):
        out, state = step(cur_b[t], state)
        outs.append(out)
    spikes_b = torch.stack(outs)
    loss_of(spikes_b, state).backward()

    assert spikes_a.shape == base.shape
    assert torch.equal(spikes_a, spikes_b)
    assert type(state_a) is type(state)
    for a, b in zip(state_a, state, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(cur_a.grad, cur_b.grad, rtol=1e-12, atol=1e-12)
    assert cur_a.grad.abs().sum() > 0
    assert 0 < spikes_a.mean() < 1


@pytest.mark.parametrize("name", sorted(STEPS))
def test_unroll_with_initial_state_continues(name):
    step = STEPS[name]
    cur = torch.rand(8, 2, 4, dtype=F64)
    full, st_full = unroll(step, cur)
    first, st = unroll(step, cur[:3])
    second, st2 = unroll(step, cur[3:], st)
    assert torch.equal(torch.cat([first, second]), full)
    for a, b in zip(st2, st_full, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    "step,cls",
    [(lif_step, LIFState), (if_step, LIFState), (clif_step, CLIFState), (dn_step, DNState)],
)
def test_state_none_means_zeros(step, cls):
    j = torch.tensor([[0.3, 0.8, -0.2]], dtype=F64)
    zeros = cls(*(torch.zeros_like(j) for _ in cls._fields))
    s_none, st_none = step(j, None, RECT)
    s_zero, st_zero = step(j, zeros, RECT)
    assert isinstance(st_none, cls)
    assert torch.equal(s_none, s_zero)
    for a, b in zip(st_none, st_zero, strict=True):
        assert torch.equal(a, b)
        assert a.shape == j.shape and a.dtype == j.dtype


def test_steps_do_not_mutate_state():
    st = LIFState(torch.tensor([0.4]), torch.tensor([1.0]))
    before = [t.clone() for t in st]
    lif_step(torch.tensor([0.9]), st, RECT)
    for a, b in zip(st, before, strict=True):
        assert torch.equal(a, b)


def test_detach_state_cuts_gradients():
    step = STEPS["dn"]
    cur = torch.rand(6, 2, 3, dtype=F64, requires_grad=True)
    _, st = unroll(step, cur[:3])
    st_det = detach_state(st)
    assert isinstance(st_det, DNState)
    assert all(not t.requires_grad for t in st_det)
    for a, b in zip(st_det, st, strict=True):
        assert torch.equal(a, b)
    spikes, st_end = unroll(step, cur[3:], st_det)
    (grad,) = torch.autograd.grad(spikes.sum() + st_end.v.sum(), cur)
    assert torch.equal(grad[:3], torch.zeros_like(grad[:3]))
    assert grad[3:].abs().sum() > 0
    # without detaching, gradient reaches the first ticks
    spikes, st_end = unroll(step, cur[3:], st)
    (grad,) = torch.autograd.grad(spikes.sum() + st_end.v.sum(), cur)
    assert grad[:3].abs().sum() > 0


def test_detach_state_nested_and_invalid():
    x = torch.ones(2, requires_grad=True) * 2
    assert detach_state(None) is None
    assert not detach_state(x).requires_grad
    nested = [LIFState(x, x), None, (x, [x])]
    out = detach_state(nested)
    assert isinstance(out, list) and out[1] is None
    assert isinstance(out[0], LIFState) and not out[0].v.requires_grad
    assert isinstance(out[2], tuple) and not out[2][1][0].requires_grad
    with pytest.raises(TypeError):
        detach_state({"v": x})
    with pytest.raises(TypeError):
        detach_state(1.0)


def test_spike_fn_is_called_on_v_minus_threshold():
    seen = []

    def recorder(z):
        seen.append(z.clone())
        return spike(z)

    lif_step(torch.tensor([0.3]), None, recorder, v_th=0.5)
    assert seen[0].item() == pytest.approx(-0.2)
