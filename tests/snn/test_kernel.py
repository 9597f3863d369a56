"""The C kernel of a LIF layer's T ticks against the eager tick loop it replaces."""

import pytest
import torch

from spikerl.nets import SpikingActor
from spikerl.snn.functional import RESET_MODES, LIFState, StateShapeError, lif_step, unroll
from spikerl.snn.kernel import kernel_available, lif_sequence
from spikerl.snn.layers import LIF, PLIF
from spikerl.snn.surrogate import SURROGATE_KINDS, Surrogate

pytestmark = pytest.mark.skipif(not kernel_available(), reason="no C compiler on this machine")

T, B, N = 5, 7, 33


def _run(kernel, dtype, reset, kind, carried, per_neuron):
    """Spikes, final membrane and the gradients (currents, initial state) of a random linear
    function of every output and of the final state."""
    gen = torch.Generator().manual_seed(0)
    currents = (torch.randn(T, B, N, generator=gen, dtype=dtype) * 0.6 + 0.3).requires_grad_()
    decay = torch.rand(N, generator=gen, dtype=dtype) if per_neuron else 0.75
    v_th = torch.rand(N, generator=gen, dtype=dtype) * 0.5 + 0.25 if per_neuron else 0.5
    spike_fn = Surrogate(kind, 2.0)
    state = None
    if carried:
        v0 = torch.randn(B, N, generator=gen, dtype=dtype).requires_grad_()
        s0 = (torch.rand(B, N, generator=gen, dtype=dtype) > 0.5).to(dtype).requires_grad_()
        state = LIFState(v0, s0)
    if kernel:
        spikes, final = lif_sequence(currents, state, spike_fn, decay, v_th, reset)
    else:
        tick = lambda c, s, t: lif_step(c, s, spike_fn, decay, v_th, reset)  # noqa: E731
        spikes, final = unroll(tick, currents, state, with_tick=True)
    weights = [torch.randn(x.shape, generator=gen, dtype=dtype) for x in (spikes, *final)]
    loss = sum((w * x).sum() for w, x in zip(weights, (spikes, *final), strict=True))
    leaves = [currents, *(state or ())]
    return spikes, final, torch.autograd.grad(loss, leaves, allow_unused=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reset", RESET_MODES)
@pytest.mark.parametrize("kind", SURROGATE_KINDS)
@pytest.mark.parametrize("carried", [False, True])
@pytest.mark.parametrize("per_neuron", [False, True])
def test_forward_bits_and_gradients_of_the_eager_loop(dtype, reset, kind, carried, per_neuron):
    eager_spikes, eager_final, eager_grads = _run(False, dtype, reset, kind, carried, per_neuron)
    spikes, final, grads = _run(True, dtype, reset, kind, carried, per_neuron)
    assert torch.equal(spikes, eager_spikes) and 0 < spikes.mean() < 1
    assert torch.equal(final.v, eager_final.v) and torch.equal(final.s, eager_final.s)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    for got, want in zip(grads, eager_grads, strict=True):
        if want is None or got is None:  # soft_detached: the initial spikes get no gradient
            assert all(g is None or torch.count_nonzero(g) == 0 for g in (got, want))
            continue
        torch.testing.assert_close(got, want, rtol=tol, atol=tol)
    assert torch.count_nonzero(grads[0]) > 0


def test_where_the_kernel_does_not_apply_it_says_so():
    spike_fn, currents = Surrogate(), torch.randn(T, B, N)
    learnt = torch.full((N,), 0.7, requires_grad=True)
    assert lif_sequence(currents, None, spike_fn, learnt, 0.5, "hard") is None  # trained leak
    with torch.no_grad():  # not trained in this pass: the kernel runs
        assert lif_sequence(currents, None, spike_fn, learnt, 0.5, "hard") is not None
    assert lif_sequence(currents.bfloat16(), None, spike_fn, 0.75, 0.5, "hard") is None
    assert lif_sequence(currents, None, spike_fn, torch.rand(B, N), 0.5, "hard") is None
    seen = []

    def run(j):
        seen.append(lif_sequence(j, None, spike_fn, 0.75, 0.5, "hard"))
        return j

    torch.func.vmap(run)(torch.randn(3, T, B, N))  # the seed stack's vmap: the eager loop
    assert seen == [None]
    with pytest.raises(StateShapeError, match="does not match"):
        lif_sequence(currents, LIFState(torch.zeros(3, N), torch.zeros(3, N)), spike_fn)


def _actor_grads(kernel, neuron):
    torch.manual_seed(0)
    actor = SpikingActor(5, 2, neuron=neuron, hidden=[32, 24], timesteps=5)
    with torch.no_grad():
        for linear in actor.linears:
            linear.weight.mul_(3.0)
    LIF.kernel = kernel
    try:
        obs = torch.randn(16, 5, generator=torch.Generator().manual_seed(4))
        action = actor(obs)
        action.pow(2).sum().backward()
        with torch.no_grad():
            acted = actor(obs)
    finally:
        LIF.kernel = True
    return action.detach(), acted, [p.grad.clone() for p in actor.parameters()]


@pytest.mark.parametrize("neuron", ["lif", "plif"])
def test_a_spiking_actor_trains_the_same_with_and_without_the_kernel(neuron):
    """The proxy-target actor (population coding, LIF layers): actions (training and acting)
    and every parameter gradient; PLIF's trained leak keeps the eager loop under gradients and
    takes the kernel when acting."""
    eager, kernel = _actor_grads(False, neuron), _actor_grads(True, neuron)
    assert torch.equal(kernel[0], eager[0]) and torch.equal(kernel[1], eager[1])
    for got, want in zip(kernel[2], eager[2], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert all(torch.count_nonzero(g) for g in kernel[2][:2])
    assert issubclass(PLIF, LIF)


def test_review_edge_cases_fall_back_or_refuse_as_eager_would():
    """What an independent review found: each case either runs the eager loop (``None``) or is
    as safe as it."""
    spike_fn, currents = Surrogate(), torch.randn(T, B, N)

    class Doubled(Surrogate):
        def __call__(self, x):
            return 2.0 * super().__call__(x)

    assert lif_sequence(currents, None, Doubled()) is None  # its own spike function
    assert lif_sequence(torch.randn(T, B, 0), None, spike_fn) is None  # no neurons
    assert (
        lif_sequence(currents, None, spike_fn, 0.75, torch.full((N,), 0.5, dtype=torch.float64))
        is None
    )
    broadcast = LIFState(torch.zeros(B, N), torch.zeros(N))  # spikes broadcast over the batch
    assert lif_sequence(currents, broadcast, spike_fn) is None


def test_edits_after_the_call_do_not_reach_the_backward_and_a_second_derivative_refuses():
    spike_fn = Surrogate("fast_sigmoid", 2.0)
    results = []
    for kernel in (False, True):
        gen = torch.Generator().manual_seed(0)
        currents = (torch.randn(T, B, N, generator=gen) * 0.6 + 0.3).requires_grad_()
        state = LIFState(torch.randn(B, N, generator=gen).requires_grad_(), torch.zeros(B, N))
        if kernel:
            spikes, final = lif_sequence(currents, state, spike_fn)
        else:
            tick = lambda c, s, t: lif_step(c, s, spike_fn)  # noqa: E731
            spikes, final = unroll(tick, currents, state, with_tick=True)
        loss = spikes.sum() + 3.0 * final.v.sum()
        final.v.detach().zero_()  # the returned state edited in place (e.g. by a caller's reset)
        results.append(torch.autograd.grad(loss, (currents, state.v), create_graph=kernel))
    for got, want in zip(results[1], results[0], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    with pytest.raises(RuntimeError, match="once_differentiable|twice|does not require grad"):
        results[1][0].sum().backward()


def test_a_damaged_cached_library_is_rebuilt(tmp_path, monkeypatch):
    from spikerl.snn import kernel

    monkeypatch.setenv("SPIKERL_CACHE", str(tmp_path))
    source = kernel._source()
    import hashlib

    name = f"lif_{hashlib.sha256(source.encode()).hexdigest()[:16]}.so"
    (tmp_path / "kernels").mkdir()
    (tmp_path / "kernels" / name).write_bytes(b"not a library")
    assert kernel._build() is not False
    assert kernel._load(tmp_path / "kernels" / name) is not None
