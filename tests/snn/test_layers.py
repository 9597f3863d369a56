"""Neuron modules: equal to the functional steps, learnable leaks/thresholds, state carrying."""

from __future__ import annotations

import functools
import math

import pytest
import torch

from spikerl.snn.functional import (
    CLIFState,
    DNState,
    LIFState,
    StateShapeError,
    clif_step,
    dn_step,
    if_step,
    lif_step,
    unroll,
)
from spikerl.snn.layers import CLIF, DN, IF, LIF, PLIF, SpikingNeuron, make_neuron
from spikerl.snn.surrogate import Surrogate

F64 = torch.float64


def _currents(t=6, b=3, n=5, seed=0, scale=0.9):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(t, b, n, generator=gen, dtype=F64) * scale


def _make(kind: str, sur: Surrogate | None = None) -> SpikingNeuron:
    sur = sur if sur is not None else Surrogate("sigmoid", 4.0)
    if kind == "lif":
        return LIF(surrogate=sur)
    if kind == "lif_soft":
        return LIF(reset="soft", surrogate=sur)
    if kind == "lif_neuron":
        return LIF(leak="neuron", threshold="learn", size=5, surrogate=sur).double()
    if kind == "if":
        return IF(surrogate=sur)
    if kind == "plif":
        return PLIF(surrogate=sur).double()
    if kind == "clif":
        return CLIF(surrogate=sur)
    if kind == "dn":
        return DN(surrogate=sur)
    raise AssertionError(kind)


KINDS = ("lif", "lif_soft", "lif_neuron", "if", "plif", "clif", "dn")


@pytest.mark.parametrize(
    "module,step",
    [
        (LIF(), functools.partial(lif_step, decay=0.75, v_th=0.5, reset="hard")),
        (
            LIF(decay=0.9, v_th=0.3, reset="soft"),
            functools.partial(lif_step, decay=0.9, v_th=0.3, reset="soft"),
        ),
        (IF(), functools.partial(if_step, v_th=1.0, reset="soft")),
        (IF(v_th=0.6, reset="hard"), functools.partial(if_step, v_th=0.6, reset="hard")),
        (
            PLIF().double(),
            functools.partial(
                lif_step,
                decay=float(
                    torch.sigmoid(torch.tensor(math.log(3.0), dtype=torch.float32).double())
                ),
                v_th=0.5,
            ),
        ),
        (CLIF(), functools.partial(clif_step, current_decay=0.5, decay=0.75, v_th=0.5)),
        (
            CLIF(current_decay=0.3, decay=0.6, v_th=0.4),
            functools.partial(clif_step, current_decay=0.3, decay=0.6, v_th=0.4),
        ),
        (DN(), functools.partial(dn_step, v_th=0.5)),
        (DN(v_th=0.4), functools.partial(dn_step, v_th=0.4)),
    ],
)
def test_module_equals_functional(module, step):
    cur = _currents(scale=1.2)
    sur = module.surrogate
    spikes_m, st_m = module(cur)
    spikes_f, st_f = unroll(lambda j, s: step(j, s, sur), cur)
    torch.testing.assert_close(spikes_m, spikes_f, rtol=0, atol=0)
    assert type(st_m) is type(st_f)
    for a, b in zip(st_m, st_f, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert 0 < spikes_m.mean() < 1


def test_default_constants_are_paper_values():
    lif, clif, dn, plif, if_ = LIF(), CLIF(), DN(), PLIF(), IF()
    assert (lif.decay, lif.v_th, lif.reset) == (0.75, 0.5, "hard")
    assert (clif.current_decay, clif.decay, clif.v_th) == (0.5, 0.75, 0.5)
    assert dn.v_th == 0.5
    assert (if_.decay, if_.v_th, if_.reset) == (1.0, 1.0, "soft")
    assert float(plif.decay.detach()) == pytest.approx(0.75)
    for m in (lif, clif, dn, plif, if_):
        assert (m.surrogate.kind, m.surrogate.slope) == ("rectangular", 1.0)
    assert list(LIF().parameters()) == [] and list(CLIF().parameters()) == []
    assert list(DN().parameters()) == [] and list(IF().parameters()) == []


@pytest.mark.parametrize("kind", KINDS)
def test_forward_equals_step_loop(kind):
    module = _make(kind)
    cur = _currents(seed=1)
    spikes, state = module(cur)
    st, outs = None, []
    for j in cur:
        out, st = module.step(j, st)
        outs.append(out)
    torch.testing.assert_close(spikes, torch.stack(outs), rtol=0, atol=0)
    for a, b in zip(state, st, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_state_carried_across_calls_equals_one_long_call(kind):
    module = _make(kind)
    t = 5
    cur = _currents(t=2 * t, seed=2)
    full, st_full = module(cur)
    first, st = module(cur[:t])
    second, st2 = module(cur[t:], st)
    torch.testing.assert_close(torch.cat([first, second]), full, rtol=0, atol=0)
    for a, b in zip(st2, st_full, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    # a fresh call (state=None) differs from the carried one
    # (compare the first tick: a hard reset can make both trajectories coincide later)
    _, st_fresh = module(cur[t : t + 1])
    _, st_carried = module(cur[t : t + 1], st)
    assert not torch.equal(st_fresh.v, st_carried.v)


@pytest.mark.parametrize("kind", KINDS)
def test_module_keeps_no_state(kind):
    module = _make(kind)
    cur = _currents(seed=3)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    a, _ = module(cur)
    b, _ = module(cur)
    assert torch.equal(a, b)
    assert list(module.buffers()) == []
    after = module.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k])


@pytest.mark.parametrize("kind", ["lif", "plif", "lif_neuron"])
def test_state_types(kind):
    _, st = _make(kind)(_currents())
    assert isinstance(st, LIFState)
    _, st = CLIF()(_currents())
    assert isinstance(st, CLIFState)
    _, st = DN()(_currents())
    assert isinstance(st, DNState)


def test_plif_leak_init_and_trainable():
    plif = PLIF().double()
    params = dict(plif.named_parameters())
    assert list(params) == ["leak_logit"]
    w = params["leak_logit"]
    assert w.shape == ()
    assert w.item() == pytest.approx(math.log(3.0))
    assert float(plif.decay.detach()) == pytest.approx(0.75)
    cur = _currents(scale=1.0, seed=5)
    spikes, st = plif(cur)
    (spikes.sum() + st.v.sum()).backward()
    assert w.grad is not None and w.grad.abs().item() > 0
    assert PLIF().leak_logit is not plif.leak_logit  # each layer owns its own leak


def test_per_neuron_leak_and_threshold():
    n = 5
    lif = LIF(
        leak="neuron", threshold="learn", size=n, surrogate=Surrogate("sigmoid", 4.0)
    ).double()
    params = dict(lif.named_parameters())
    assert set(params) == {"leak_logit", "v_th"}
    assert params["leak_logit"].shape == (n,)
    assert params["v_th"].shape == (n,)
    torch.testing.assert_close(lif.decay, torch.full((n,), 0.75, dtype=F64))
    torch.testing.assert_close(params["v_th"].detach(), torch.full((n,), 0.5, dtype=F64))
    cur = _currents(n=n, seed=7)
    spikes, st = lif(cur)
    (spikes.sum() + st.v.sum()).backward()
    for name, p in params.items():
        assert p.grad is not None and p.grad.shape == (n,), name
        assert bool((p.grad != 0).all()), name


def test_per_neuron_parameters_act_per_neuron():
    n = 3
    lif = LIF(leak="neuron", threshold="learn", size=n).double()
    with torch.no_grad():
        lif.leak_logit.copy_(torch.tensor([0.0, math.log(3.0), 10.0]))  # leaks 0.5, 0.75, ~1
        lif.v_th.copy_(torch.tensor([0.2, 0.5, 0.9]))
    cur = torch.full((4, 2, n), 0.3, dtype=F64)
    spikes, _ = lif(cur)
    ref = unroll(
        functools.partial(
            lif_step,
            spike_fn=lif.surrogate,
            decay=torch.sigmoid(lif.leak_logit.detach()),
            v_th=lif.v_th.detach(),
        ),
        cur,
    )[0]
    assert torch.equal(spikes, ref)
    assert spikes[:, 0, 0].tolist() == [1.0, 1.0, 1.0, 1.0]  # th 0.2 < 0.3
    assert spikes[:, 0, 1].tolist() == [0.0, 1.0, 0.0, 1.0]  # paper LIF


def test_layer_leak_with_threshold():
    lif = LIF(leak="layer", threshold="learn", size=4)
    assert lif.leak_logit.shape == () and lif.v_th.shape == (4,)


def test_make_neuron():
    for kind, cls in (("lif", LIF), ("clif", CLIF), ("dn", DN), ("plif", PLIF)):
        sur = Surrogate("arctan", 2.0)
        m = make_neuron(kind, surrogate=sur)
        assert type(m) is cls
        assert m.surrogate is sur
    a, b = make_neuron("lif"), make_neuron("lif")
    assert a.surrogate is not b.surrogate
    assert len(list(make_neuron("plif").parameters())) == 1
    with pytest.raises(ValueError):
        make_neuron("alif")


def test_surrogate_of_module_is_used():
    cur = torch.full((1, 1, 1), 0.85, dtype=F64, requires_grad=True)  # V - th = 0.35
    for slope, expected in ((1.0, 1.0), (2.0, 0.0)):
        lif = LIF(surrogate=Surrogate("rectangular", slope))
        spikes, _ = lif(cur)
        (g,) = torch.autograd.grad(spikes.sum(), cur)
        assert g.item() == expected


@pytest.mark.parametrize(
    "kwargs",
    [
        {"leak": "bad"},
        {"reset": "subtract"},
        {"threshold": "calibrated"},
        {"init": "normal"},
        {"leak": "neuron"},  # no size
        {"leak": "clip"},  # no size
        {"threshold": "learn"},  # no size
        {"threshold": "buffer"},  # no size
        {"decay": -0.5},
        {"decay": 1.5},
        {"decay": 1.0, "leak": "layer"},
        {"decay": 0.0, "leak": "neuron", "size": 3},
    ],
)
def test_invalid_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        LIF(**kwargs)


def test_plif_invalid_decay_raises():
    with pytest.raises(ValueError):
        PLIF(decay=1.0)


def test_base_class_step_not_implemented():
    with pytest.raises(NotImplementedError):
        SpikingNeuron().step(torch.zeros(1))


@pytest.mark.parametrize("cls", [LIF, CLIF, DN, PLIF])
def test_a_layer_refuses_currents_of_another_width(cls):
    layer = cls(size=3)
    for call in (lambda: layer.step(torch.zeros(1, 4)), lambda: layer(torch.zeros(2, 1, 4))):
        with pytest.raises(StateShapeError, match=r"of 3 neurons got currents of shape .*, 4\)"):
            call()
    out, _ = layer(torch.zeros(2, 1, 3))
    assert out.shape == (2, 1, 3)


def test_a_plain_tuple_state_steps_like_the_named_one():
    spike = Surrogate()
    x = torch.randn(2, 3)
    _, state = lif_step(x, None, spike)
    expected, _ = lif_step(x, state, spike)
    got, _ = lif_step(x, (state.v, state.s), spike)
    assert torch.equal(got, expected)
    with pytest.raises(StateShapeError, match=r"a LIFState has 2 fields \('v', 's'\), got 1"):
        lif_step(x, (state.v,), spike)
