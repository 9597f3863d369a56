"""The composable spiking network: explicit state, traces, resets, parts, torch.func."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from torch import nn

from spikerl.experiments.config import ConfigError, load_config
from spikerl.nets import build_actor
from spikerl.nets.ann import mlp
from spikerl.nets.spiking import SpikingActor, SpikingNetwork, stateful_controller
from spikerl.snn.coding import DirectEncoder, LinearReadout
from spikerl.snn.conversion import ConversionNeuron
from spikerl.snn.energy import OpCounter
from spikerl.snn.functional import LIFState, StateShapeError
from spikerl.snn.layers import LIF, SpikingNeuron, make_neuron
from spikerl.snn.surrogate import Surrogate

F64 = torch.float64


def _obs(batch: int, dim: int, seed: int = 0) -> torch.Tensor:
    return 2.0 * torch.randn(batch, dim, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _actor(kind: str = "lif") -> SpikingActor:
    torch.manual_seed(0)
    actor = SpikingActor(5, 2, kind, hidden=(16, 12)).double()
    with torch.no_grad():
        for lin in actor.linears:
            lin.weight.mul_(2.5)
    return actor


def _controller(obs_dim: int = 6, act_dim: int = 2, hidden=(16, 8)) -> SpikingNetwork:
    torch.manual_seed(1)
    net = stateful_controller(obs_dim, act_dim, hidden, slope=5.0).double()
    with torch.no_grad():
        for lin in net.linears:
            lin.weight.mul_(2.0)
    return net


# --- parts and configurations ------------------------------------------------------------------


def test_stateful_controller_matches_the_sequence_paper():
    net = stateful_controller()  # arXiv 2510.24461 Sec. 6: 18 -> 256 -> 128 -> 4
    assert sum(p.numel() for p in net.parameters()) == 39_044
    lif_params = sum(p.numel() for n in net.neurons for p in n.parameters())
    assert lif_params == 768
    assert net.stateful and net.timesteps == 1 and net.input_kind == "analog"
    for neuron in net.neurons:
        modes = (neuron.reset, neuron.leak, neuron.threshold_mode)
        assert modes == ("soft_detached", "clip", "learn")
        for values in (neuron.beta.detach(), neuron.v_th.detach()):  # U(0, 1)
            assert 0 <= float(values.min()) and float(values.max()) <= 1
        assert neuron.surrogate.kind == "fast_sigmoid"


def test_direct_actor_is_the_slope_study_network():
    # arXiv 2510.24461 Sec. 5: 146-d input current -> LIF 256 -> LIF 128 -> readout, T = 4
    cfg = load_config(
        None,
        ["actor.kind=lif", "actor.network=direct", "actor.hidden=[256,128]",
         "actor.timesteps=4", "actor.surrogate=fast_sigmoid", "actor.slope=2"],
    )  # fmt: skip
    actor = build_actor(cfg.actor, "td3", 146, 4).double()
    weights = 146 * 256 + 256 + 256 * 128 + 128 + 128 * 4 + 4
    assert sum(p.numel() for p in actor.parameters()) == weights + 2 * (256 + 128)
    assert not actor.stateful and actor.timesteps == 4 and actor.input_kind == "analog"
    assert all(n.threshold_mode == "learn" and n.surrogate.slope == 2.0 for n in actor.neurons)
    obs = _obs(3, 146)
    ref = actor.forward_stepwise(obs)  # readout of the summed output spikes, one bias
    readout = actor.decoder.linear
    expected = torch.tanh(readout(ref.spikes[-1].sum(0)))
    torch.testing.assert_close(actor(obs), expected)
    torch.testing.assert_close(actor(obs), actor(obs))  # stateless: zeros every decision


def test_direct_network_needs_lif():
    with pytest.raises(ConfigError, match="actor.kind=lif"):
        load_config(None, ["actor.kind=plif", "actor.network=direct"])


def test_proxy_target_actor_is_a_stateless_configuration():
    actor = SpikingActor(5, 2, "lif", hidden=(8,))
    assert isinstance(actor, SpikingNetwork) and not actor.stateful
    assert actor.squash_obs and actor.input_kind == "spike"
    assert [layer.input_kind for layer in actor.energy_layers()] == ["spike"] * 3
    assert list(actor.populations()) == ["encoder", "h0", "output"]


def test_parts_must_fit():
    lin = [nn.Linear(3, 4)]
    with pytest.raises(ValueError, match="one synaptic layer per neuron"):
        SpikingNetwork(None, lin, [], LinearReadout(4, 1), timesteps=1)
    with pytest.raises(ValueError, match="size"):
        SpikingNetwork(None, lin, [LIF()], LinearReadout(4, 1), timesteps=1)
    with pytest.raises(ValueError, match="activation"):
        SpikingNetwork(None, lin, [LIF(size=4)], LinearReadout(4, 1), 1, activation="relu")
    with pytest.raises(ValueError, match="source"):
        LinearReadout(4, 1, source="voltage")


@pytest.mark.parametrize("source", ["spikes", "rate", "membrane"])
def test_linear_readout_sources(source):
    torch.manual_seed(2)
    neuron = LIF(size=4, surrogate=Surrogate("sigmoid", 4.0))
    net = SpikingNetwork(
        DirectEncoder(3, timesteps=4),
        [nn.Linear(3, 4)],
        [neuron],
        LinearReadout(4, 2, source),
        timesteps=4,
        activation=None,
    ).double()
    obs = _obs(5, 3)
    out = net.trace(obs, membranes=True)
    spikes = net.forward_stepwise(obs).spikes[0]
    w, b = net.decoder.linear.weight, net.decoder.linear.bias
    expected = {
        "spikes": spikes[-1] @ w.T + b,
        "rate": spikes.mean(0) @ w.T + b,
        "membrane": out.membranes[0][-1] @ w.T + b,
    }[source]
    torch.testing.assert_close(out.action, expected)
    kind = "analog" if source == "membrane" else "spike"
    assert net.energy_layers()[-1].input_kind == kind
    assert net.energy_layers()[0].input_kind == "analog"  # direct input: MACs


def test_energy_counter_runs_on_the_controller():
    net = _controller()
    with OpCounter(net) as counter:
        with torch.no_grad():
            net(_obs(4, 6))
    report = counter.report()
    assert [p.name for p in report.populations] == ["h0", "output"]
    assert report.mac.mean == 6 * 16  # the analog first layer
    assert report.sop.mean > 0


# --- state ---------------------------------------------------------------------------------------


def test_init_state_shapes_and_equivalence_with_none():
    net = _controller()
    state = net.init_state(3)
    assert [tuple(s.v.shape) for s in state] == [(3, 16), (3, 8)]
    assert all(t.dtype == F64 and not t.any() for s in state for t in s)
    obs = _obs(3, 6)
    a_none, s_none = net.step(obs)
    a_zero, s_zero = net.step(obs, state)
    assert torch.equal(a_none, a_zero)
    for x, y in zip(s_none, s_zero, strict=True):
        assert all(torch.equal(p, q) for p, q in zip(x, y, strict=True))


@pytest.mark.parametrize(
    "bad,match",
    [
        (lambda net: net.init_state(4), r"layer h0: .* \(4, 16\), expected \(3, 16\)"),
        (lambda net: net.init_state(3)[:1], "1 layer states; this network has 2"),
        (
            lambda net: (net.init_state(3)[0], LIFState(torch.zeros(3, 9), torch.zeros(3, 9))),
            r"layer output: .*\(3, 9\), expected \(3, 8\)",
        ),
    ],
)
def test_mismatched_state_raises_naming_the_layer(bad, match):
    net = _controller()
    with pytest.raises(StateShapeError, match=match):
        net.step(_obs(3, 6), bad(net))


def test_functional_step_refuses_a_state_of_another_shape():
    lif = LIF(size=4)
    _, state = lif.step(torch.ones(2, 4))
    with pytest.raises(StateShapeError, match=r"\(2, 4\) does not match .*\(5, 4\)"):
        lif.step(torch.ones(5, 4), state)


def test_reset_rows_zeroes_finished_episodes_only():
    net = _controller()
    obs = _obs(4, 6)
    _, state = net.step(obs)
    _, state = net.step(obs, state)
    mask = torch.tensor([True, False, True, False])
    reset = net.reset_rows(state, mask)
    for before, after in zip(state, reset, strict=True):
        for b, a in zip(before, after, strict=True):
            assert not a[mask].any()
            assert torch.equal(a[~mask], b[~mask])
    # the reset rows continue exactly as fresh episodes, the others as before
    a_reset, _ = net.step(obs, reset)
    a_fresh, _ = net.step(obs)
    a_kept, _ = net.step(obs, state)
    assert torch.equal(a_reset[mask], a_fresh[mask])
    assert torch.equal(a_reset[~mask], a_kept[~mask])
    with pytest.raises(ValueError, match="boolean"):
        net.reset_rows(state, torch.tensor([1, 0, 1, 0]))
    with pytest.raises(StateShapeError):
        net.reset_rows(state, torch.tensor([True, False]))


def test_stateful_stepping_equals_one_unrolled_sequence():
    """K control steps with carried state equal each layer unrolled over the K-tick sequence."""
    net = _controller()
    seq = torch.stack([_obs(3, 6, seed=s) for s in range(12)])  # [K, B, n]
    state, actions = None, []
    for obs in seq:
        action, state = net.step(obs, state)
        actions.append(action)
    x = seq
    for linear, neuron in zip(net.linears, net.neurons, strict=True):
        x, _ = neuron(linear(x))
    expected = torch.tanh(net.decoder.linear(x))
    torch.testing.assert_close(torch.stack(actions), expected, rtol=1e-12, atol=1e-12)
    assert torch.stack(actions).std() > 0


def _unroll_grads(net: SpikingNetwork, seq: torch.Tensor, state, by_steps: bool):
    """Actions, final state and parameter gradients of ``unroll`` or, as the reference, of
    stepping with the eager neuron loops."""
    net.zero_grad(set_to_none=True)
    LIF.kernel = not by_steps
    try:
        run = net._unroll_by_steps if by_steps else net.unroll
        actions, final = run(seq, state)
        weights = torch.randn(actions.shape, generator=torch.Generator().manual_seed(9),
                              dtype=F64)  # fmt: skip
        ((weights * actions).sum() + sum(layer.v.sum() for layer in final)).backward()
    finally:
        LIF.kernel = True
    return actions, final, {n: p.grad.clone() for n, p in net.named_parameters()}


@pytest.mark.parametrize("readout", ["spikes", "membrane"])
@pytest.mark.parametrize("carried", [False, True])
def test_the_layer_by_layer_unroll_equals_stepping_forward_and_backward(readout, carried):
    """A one-tick controller's unroll runs each layer over the L steps at once (the LIF kernel
    with its trained leaks and thresholds); stepping it L times with the eager neuron loops is
    the reference."""
    net = _controller()
    net.decoder.source = readout
    seq = torch.stack([_obs(3, 6, seed=s) for s in range(20)], dim=1)  # [B, L, n]
    with torch.no_grad():
        state = net.step(_obs(3, 6, seed=99))[1] if carried else None
    ref_actions, ref_final, ref_grads = _unroll_grads(net, seq, state, by_steps=True)
    actions, final, grads = _unroll_grads(net, seq, state, by_steps=False)
    torch.testing.assert_close(actions, ref_actions, rtol=1e-12, atol=1e-12)
    for layer, ref_layer in zip(final, ref_final, strict=True):
        assert torch.equal(layer.s, ref_layer.s)
        torch.testing.assert_close(layer.v, ref_layer.v, rtol=1e-12, atol=1e-12)
    assert {n for n in grads} >= {"neurons.0.beta", "neurons.0.v_th"}
    for name, grad in grads.items():
        torch.testing.assert_close(grad, ref_grads[name], rtol=1e-10, atol=1e-12)
        assert torch.count_nonzero(grad) > 0, name
    with pytest.raises(StateShapeError):
        net.unroll(seq[:2], final)  # a state for 3 rows


def _one_tick_network(kind: str, readout: str = "rate") -> SpikingNetwork:
    """A stateful network of one tick per decision with ``kind`` neurons (float64)."""
    torch.manual_seed(2)
    sizes = [6, 16, 8]
    if kind == "conversion":
        neurons = [ConversionNeuron("if", n, timesteps=1, crpi=0.5) for n in sizes[1:]]
    else:
        neurons = [make_neuron(kind, n, Surrogate("sigmoid", 4.0)) for n in sizes[1:]]
    linears = [nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    with torch.no_grad():
        for lin in linears:
            lin.weight.mul_(2.5)
    readout_layer = LinearReadout(8, 2, source=readout)
    net = SpikingNetwork(DirectEncoder(6, timesteps=1), linears, neurons, readout_layer,
                         timesteps=1, stateful=True)  # fmt: skip
    return net.double()


@pytest.mark.parametrize(
    "kind,readout",
    [("lif", "rate"), ("lif", "count"), ("clif", "spikes"), ("dn", "rate"), ("plif", "count")],
)
def test_one_tick_networks_of_every_neuron_unroll_by_layer_as_they_step(kind, readout):
    net = _one_tick_network(kind, readout)
    seq = torch.stack([_obs(3, 6, seed=s) for s in range(15)], dim=1)
    assert net._unrolls_by_layer(seq)
    ref_actions, _, ref_grads = _unroll_grads(net, seq, None, by_steps=True)
    actions, _, grads = _unroll_grads(net, seq, None, by_steps=False)
    torch.testing.assert_close(actions, ref_actions, rtol=1e-12, atol=1e-12)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, ref_grads[name], rtol=1e-10, atol=1e-12)


def test_conversion_neurons_and_energy_hooks_make_unroll_step():
    """Conversion neurons restart at every decision's tick 0, and hooks count decisions: in
    both cases the L steps are not one L-tick call, so unroll steps (and still equals it)."""
    net = _one_tick_network("conversion")
    seq = torch.stack([_obs(3, 6, seed=s) for s in range(10)], dim=1)
    assert not net._unrolls_by_layer(seq)
    with torch.no_grad():
        torch.testing.assert_close(net.unroll(seq)[0], net._unroll_by_steps(seq, None)[0])
    controller = _controller()
    with OpCounter(controller) as counter:
        assert not controller._unrolls_by_layer(seq)
        controller.unroll(seq)
    assert counter.report().meta["decisions"] == 3 * 10


def test_batched_stateful_controller_equals_single_rows():
    net = _controller()
    seq = torch.stack([_obs(5, 6, seed=s) for s in range(8)])
    state = None
    batched = []
    for obs in seq:
        a, state = net.step(obs, state)
        batched.append(a)
    for row in range(5):
        st = None
        for k, obs in enumerate(seq):
            a, st = net.step(obs[row : row + 1], st)
            torch.testing.assert_close(a[0], batched[k][row], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["lif", "clif", "dn", "plif"])
def test_trace_counts_and_membranes_equal_the_stepwise_reference(kind):
    actor = _actor(kind)
    obs = _obs(6, 5)
    trace = actor.trace(obs, membranes=True)
    ref = actor.forward_stepwise(obs)
    torch.testing.assert_close(trace.action, actor(obs), rtol=0, atol=0)
    torch.testing.assert_close(trace.action, ref.action, rtol=1e-12, atol=1e-12)
    for counts, membranes, spikes, v in zip(
        trace.spike_counts, trace.membranes, ref.spikes, ref.membranes, strict=True
    ):
        assert torch.equal(counts, (spikes != 0).sum(0))
        torch.testing.assert_close(membranes, v, rtol=1e-12, atol=1e-12)
    assert sum(int(c.sum()) for c in trace.spike_counts) > 0
    assert actor.trace(obs).membranes is None


def test_stepwise_reference_with_carried_state_equals_multistep():
    net = _controller()
    obs = _obs(3, 6)
    _, state = net.step(obs)
    ref = net.forward_stepwise(obs, state)
    action, _ = net.step(obs, state)
    torch.testing.assert_close(ref.action, action, rtol=1e-12, atol=1e-12)


# --- neuron parameters -------------------------------------------------------------------------


def test_calibrated_thresholds_are_buffers():
    lif = LIF(threshold="buffer", v_th=0.8, size=3)
    assert [name for name, _ in lif.named_buffers()] == ["v_th"]
    assert list(lif.parameters()) == []
    assert "v_th" in lif.state_dict()
    lif.v_th.copy_(torch.tensor([0.1, 0.0, 2.0]))
    lif = lif.to(F64)
    assert lif.v_th.dtype == F64  # moved by .to()
    clone = LIF(threshold="buffer", size=3).to(F64)
    clone.load_state_dict(lif.state_dict())
    assert torch.equal(clone.v_th, torch.tensor([0.1, 0.0, 2.0]).to(F64))
    spikes, _ = clone(torch.full((2, 1, 3), 0.5, dtype=F64))
    assert spikes[:, 0].tolist() == [[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]]


def test_clip_leak_and_detached_soft_reset_by_hand():
    """Sec. 1 of arXiv 2510.24461: U_t = clip(b) U_{t-1} + I_t - theta sg(S_{t-1})."""
    lif = LIF(reset="soft_detached", leak="clip", threshold="learn", size=2).double()
    with torch.no_grad():
        lif.beta.copy_(torch.tensor([1.7, 0.5]))  # clipped to 1 and 0.5
        lif.v_th.copy_(torch.tensor([0.6, 0.6]))
    current = torch.full((4, 1, 2), 0.4, dtype=F64)
    spikes, _, v = lif.forward_recording(current)
    # unit 0 (leak 1): 0.4, 0.8 (spike), 0.8 + 0.4 - 0.6 = 0.6, 1.0 (spike)
    torch.testing.assert_close(v[:, 0, 0], torch.tensor([0.4, 0.8, 0.6, 1.0], dtype=F64))
    assert spikes[:, 0, 0].tolist() == [0.0, 1.0, 0.0, 1.0]
    # unit 1 (leak 0.5): 0.4, 0.6 (no spike: strict), 0.7 (spike), 0.35 + 0.4 - 0.6 = 0.15
    torch.testing.assert_close(v[:, 0, 1], torch.tensor([0.4, 0.6, 0.7, 0.15], dtype=F64))


def test_detached_reset_passes_gradient_to_threshold_not_through_the_indicator():
    th = torch.tensor([0.5], dtype=F64, requires_grad=True)
    lif = LIF(reset="soft_detached", decay=1.0, surrogate=Surrogate("fast_sigmoid", 2.0))
    lif.v_th = th
    current = torch.tensor([[[0.7]], [[0.1]]], dtype=F64, requires_grad=True)
    _, state, v = lif.forward_recording(current)
    (g_th, g_i) = torch.autograd.grad(v[-1].sum(), (th, current))
    # V_2 = V_1 + I_2 - th * sg(S_1): dV_2/dth = -S_1 = -1, dV_2/dI_1 = 1 (no path via S_1)
    assert g_th.item() == -1.0
    assert g_i.flatten().tolist() == [1.0, 1.0]
    soft = LIF(reset="soft", decay=1.0, surrogate=Surrogate("fast_sigmoid", 2.0))
    soft.v_th = th
    _, _, v_soft = soft.forward_recording(current)
    (g_soft,) = torch.autograd.grad(v_soft[-1].sum(), current)
    assert g_soft.flatten()[0] != 1.0  # the undetached reset adds a surrogate path
    torch.testing.assert_close(v_soft, v)  # same forward with leak 1


def test_uniform_init_is_seeded_and_in_unit_interval():
    torch.manual_seed(4)
    a = LIF(leak="clip", threshold="learn", init="uniform", size=50)
    torch.manual_seed(4)
    b = LIF(leak="clip", threshold="learn", init="uniform", size=50)
    assert torch.equal(a.beta, b.beta) and torch.equal(a.v_th, b.v_th)
    beta = a.beta.detach()
    assert 0 <= float(beta.min()) and float(beta.max()) < 1 and beta.std() > 0.1


def test_neuron_parameters_describe_every_layer():
    net = _controller()
    params = net.neuron_parameters()
    assert [p["layer"] for p in params] == ["h0", "output"]
    assert [p["size"] for p in params] == [16, 8]
    assert params[0]["kind"] == "lif" and params[0]["reset"] == "soft_detached"
    torch.testing.assert_close(params[0]["decay"], net.neurons[0].beta.detach().clamp(0, 1))
    assert not params[0]["v_th"].requires_grad
    actor = SpikingActor(3, 1, "clif", hidden=(4,))
    assert actor.neuron_parameters()[0] == {
        "layer": "h0",
        "size": 4,
        "kind": "clif",
        "current_decay": 0.5,
        "decay": 0.75,
        "v_th": 0.5,
        "reset": "hard",
    }


class _GradedTickNeuron(SpikingNeuron):
    """A test neuron whose output is graded and reads the tick index: o(t) = (t + 1) H(v)."""

    def tick_fn(self) -> Any:
        def tick(current: torch.Tensor, state: Any, t: int) -> tuple[torch.Tensor, Any]:
            v = current if state is None else state.v + current
            out = (t + 1) * (v > 0).to(v.dtype)
            return out, LIFState(v, out)

        return tick

    def neuron_parameters(self) -> dict[str, Any]:
        return {"kind": "graded-test"}


def test_graded_tick_reading_neurons_plug_in():
    torch.manual_seed(0)
    net = SpikingNetwork(
        DirectEncoder(2, timesteps=3),
        [nn.Linear(2, 3)],
        [_GradedTickNeuron(size=3)],
        LinearReadout(3, 1, "rate"),
        timesteps=3,
    ).double()
    obs = torch.tensor([[1.0, 1.0]], dtype=F64)
    trace = net.trace(obs)
    outputs = net.forward_stepwise(obs).spikes[0]
    fired = outputs[:, 0] != 0
    assert set(outputs[:, 0][fired].tolist()) <= {1.0, 2.0, 3.0}
    assert torch.equal(trace.spike_counts[0][0], fired.sum(0))  # a graded spike is one event


# --- torch.func ----------------------------------------------------------------------------------


def _per_sample_grads_match_loop(net: nn.Module, obs: torch.Tensor) -> None:
    params = {k: v.detach() for k, v in net.named_parameters()}
    buffers = dict(net.named_buffers())

    def loss(p: dict, x: torch.Tensor) -> torch.Tensor:
        action = torch.func.functional_call(net, (p, buffers), (x.unsqueeze(0),))
        return (action * torch.linspace(0.5, 1.5, action.shape[-1], dtype=x.dtype)).sum()

    per_sample = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0))(params, obs)
    nonzero = 0
    for i, x in enumerate(obs):
        net.zero_grad()
        loss(dict(net.named_parameters()), x).backward()
        for name, p in net.named_parameters():
            expected = p.grad if p.grad is not None else torch.zeros_like(p)
            torch.testing.assert_close(per_sample[name][i], expected, rtol=1e-10, atol=1e-12)
            nonzero += int(expected.abs().sum() > 0)
    assert nonzero > 0


@pytest.mark.parametrize("kind", ["lif", "clif", "dn", "plif"])
def test_vmap_grad_per_sample_equals_backward_loop_proxy_target_actor(kind):
    _per_sample_grads_match_loop(_actor(kind), _obs(4, 5))


def test_vmap_grad_per_sample_equals_backward_loop_controller():
    _per_sample_grads_match_loop(_controller(), _obs(4, 6))


def test_mlp_relus_in_place_give_the_values_and_gradients_of_out_of_place_ones():
    torch.manual_seed(0)
    net = mlp(7, (16, 16), 3)
    reference = copy.deepcopy(net)
    for layer in reference:
        if isinstance(layer, nn.ReLU):
            layer.inplace = False
    assert any(isinstance(m, nn.ReLU) and m.inplace for m in net)
    x = torch.randn(32, 7, requires_grad=True)
    outs = [m(x).pow(2).sum() for m in (net, reference)]
    grads = [
        torch.autograd.grad(o, [x, *m.parameters()])
        for o, m in zip(outs, (net, reference), strict=True)
    ]
    assert torch.equal(outs[0], outs[1])
    assert all(torch.equal(a, b) for a, b in zip(*grads, strict=True))
