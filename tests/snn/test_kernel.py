"""The C kernel of a LIF layer's T ticks against the eager tick loop it replaces."""

import pytest
import torch

from spikerl.nets import SpikingActor
from spikerl.snn.functional import (
    RESET_MODES,
    CLIFState,
    DNState,
    LIFState,
    StateShapeError,
    lif_step,
    unroll,
)
from spikerl.snn.kernel import kernel_available, lif_sequence
from spikerl.snn.layers import CLIF, DN, LIF, PLIF, SpikingNeuron
from spikerl.snn.surrogate import SURROGATE_KINDS, Surrogate

pytestmark = pytest.mark.skipif(not kernel_available(), reason="no C compiler on this machine")

T, B, N = 5, 7, 33


def _run(kernel, dtype, reset, kind, carried, per_neuron, trained=False, state_grad=True):
    """Spikes, final membrane and the gradients (currents, initial state; with ``trained`` also
    the leak and threshold, learnable tensors) of a random linear function of every output and
    of the final state."""
    gen = torch.Generator().manual_seed(0)
    currents = (torch.randn(T, B, N, generator=gen, dtype=dtype) * 0.6 + 0.3).requires_grad_()
    decay = torch.rand(N, generator=gen, dtype=dtype) if per_neuron else 0.75
    v_th = torch.rand(N, generator=gen, dtype=dtype) * 0.5 + 0.25 if per_neuron else 0.5
    if trained:  # a per-layer value is a 0-d parameter, as PLIF's sigmoid(w)
        decay, v_th = (torch.as_tensor(x, dtype=dtype).clone().requires_grad_()
                       for x in (decay, v_th))  # fmt: skip
    spike_fn = Surrogate(kind, 2.0)
    state = None
    if carried:
        v0 = torch.randn(B, N, generator=gen, dtype=dtype).requires_grad_(state_grad)
        s0 = (torch.rand(B, N, generator=gen, dtype=dtype) > 0.5).to(dtype)
        state = LIFState(v0, s0.requires_grad_(state_grad))
    if kernel:
        spikes, final = lif_sequence(currents, state, spike_fn, decay, v_th, reset)
    else:
        tick = lambda c, s, t: lif_step(c, s, spike_fn, decay, v_th, reset)  # noqa: E731
        spikes, final = unroll(tick, currents, state, with_tick=True)
    weights = [torch.randn(x.shape, generator=gen, dtype=dtype) for x in (spikes, *final)]
    loss = sum((w * x).sum() for w, x in zip(weights, (spikes, *final), strict=True))
    leaves = [currents, *(state or () if state_grad else ()), *((decay, v_th) if trained else ())]
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
    _assert_gradients_close(grads, eager_grads, dtype)
    assert torch.count_nonzero(grads[0]) > 0


def _assert_gradients_close(grads, eager_grads, dtype):
    """To 1e-5 (float32) or 1e-12 (float64); a gradient that one side leaves out is zero on
    the other (soft_detached: the initial spikes get none)."""
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    for got, want in zip(grads, eager_grads, strict=True):
        if want is None or got is None:
            assert all(g is None or torch.count_nonzero(g) == 0 for g in (got, want))
            continue
        torch.testing.assert_close(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reset", RESET_MODES)
@pytest.mark.parametrize("kind", ["rectangular", "fast_sigmoid", "sigmoid"])
@pytest.mark.parametrize("carried", ["zero", "carried", "carried, no gradient"])
@pytest.mark.parametrize("per_neuron", [False, True])
def test_trained_leaks_and_thresholds_get_the_eager_loops_gradients(
    dtype, reset, kind, carried, per_neuron
):
    """Also from a carried state that wants no gradient itself (a controller's state from an
    acting pass), whose values still enter the leak's and threshold's gradients at tick 0."""
    options = {"trained": True, "state_grad": carried == "carried"}
    carried = carried != "zero"
    eager_spikes, eager_final, eager_grads = _run(False, dtype, reset, kind, carried, per_neuron,
                                                  **options)  # fmt: skip
    spikes, final, grads = _run(True, dtype, reset, kind, carried, per_neuron, **options)
    assert torch.equal(spikes, eager_spikes) and torch.equal(final.v, eager_final.v)
    _assert_gradients_close(grads, eager_grads, dtype)
    decay_grad, v_th_grad = grads[-2:]
    assert torch.count_nonzero(decay_grad) > 0 and torch.count_nonzero(v_th_grad) > 0
    assert decay_grad.shape == ((N,) if per_neuron else ())


def _layer_kernel_and_eager(cls, state_type, dtype, kind, carried, seed):
    """Spikes, final state and gradients (currents, carried state) of a ``cls`` layer run
    eagerly and through the kernel, for a random linear function of all outputs."""
    results = []
    for kernel in (False, True):
        gen = torch.Generator().manual_seed(seed)
        currents = (torch.randn(T, B, N, generator=gen, dtype=dtype) * 0.5 + 0.2).requires_grad_()
        state = None
        if carried:
            n = len(state_type._fields) - 1
            fields = [torch.randn(B, N, generator=gen, dtype=dtype) * 0.3 for _ in range(n)]
            spikes0 = (torch.rand(B, N, generator=gen, dtype=dtype) > 0.5).to(dtype)
            state = state_type(*(x.requires_grad_() for x in (*fields, spikes0)))
        layer = cls(size=N, surrogate=Surrogate(kind, 3.0)).to(dtype)
        cls.kernel = kernel
        try:
            spikes, final = layer(currents, state)
        finally:
            cls.kernel = True
        weights = [torch.randn(x.shape, generator=gen, dtype=dtype) for x in (spikes, *final)]
        loss = sum((w * x).sum() for w, x in zip(weights, (spikes, *final), strict=True))
        results.append((spikes, final, torch.autograd.grad(loss, [currents, *(state or ())])))
    return results


def _assert_kernel_matches(results, tol):
    (eager_spikes, eager_final, eager_grads), (spikes, final, grads) = results
    assert torch.equal(spikes, eager_spikes) and 0 < spikes.mean() < 1
    assert all(torch.equal(a, b) for a, b in zip(final, eager_final, strict=True))
    for got, want in zip(grads, eager_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=tol, atol=tol)
    assert torch.count_nonzero(grads[0]) > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("carried", [False, True])
def test_a_clif_layer_is_its_current_filter_then_the_lif_kernel(dtype, carried):
    """CLIF through the kernel against its eager tick loop: spikes and state bit for bit,
    gradients of the currents and of the whole carried state (i, v, s)."""
    results = _layer_kernel_and_eager(CLIF, CLIFState, dtype, "sigmoid", carried, seed=3)
    _assert_kernel_matches(results, 1e-5 if dtype == torch.float32 else 1e-12)
    with pytest.raises(StateShapeError):
        CLIF(size=N)(torch.randn(T, B, N), CLIFState(*(torch.zeros(3, N) for _ in range(3))))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", SURROGATE_KINDS)
@pytest.mark.parametrize("carried", [False, True])
def test_a_dn_layer_runs_its_recurrence_in_the_kernel(dtype, kind, carried):
    """DN through the kernel against its eager tick loop: spikes and state (c, v, u, s) bit for
    bit, gradients of the currents and of the whole carried state (float32 to 1e-4: the
    quadratic term scales the adjoint by 2 v' every tick, so rounding in another operation
    order grows over the ticks; float64 to 1e-12)."""
    results = _layer_kernel_and_eager(DN, DNState, dtype, kind, carried, seed=5)
    _assert_kernel_matches(results, 1e-4 if dtype == torch.float32 else 1e-12)


@pytest.mark.parametrize("edited", ["v_th", "beta"])
def test_a_trained_constant_edited_in_place_before_the_backward_acts_as_in_eager(edited):
    """An optimiser step between forward and backward: the eager graph computes the gradients
    with the forward's values, and so does the kernel (it keeps copies). (The leak's own
    gradient then fails in both, at the clamp that saved beta.)"""
    outcomes = []
    for kernel in (False, True):
        torch.manual_seed(0)  # the same U(0, 1) leaks and thresholds for both
        layer = LIF(reset="soft_detached", threshold="learn", leak="clip", init="uniform",
                    size=N, surrogate=Surrogate("fast_sigmoid", 2.0))  # fmt: skip
        with torch.no_grad():
            layer.v_th.mul_(0.5).add_(0.2)
        currents = torch.randn(T, B, N, generator=torch.Generator().manual_seed(1)) + 0.3
        LIF.kernel = kernel
        try:
            spikes, _ = layer(currents.requires_grad_(), None)
        finally:
            LIF.kernel = True
        with torch.no_grad():
            getattr(layer, edited).mul_(0.5)
        outcomes.append(torch.autograd.grad(spikes.sum(), [currents, layer.v_th]))
    for got, want in zip(outcomes[1], outcomes[0], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_clif_and_dn_states_with_fields_the_kernel_cannot_take_run_eagerly():
    """A field that only broadcasts or has another dtype than the currents: the eager loop
    (which handles it) runs, with its results; a threshold tensor of a DN layer too."""
    currents = torch.randn(T, B, N, dtype=torch.float64) * 0.5 + 0.2
    for cls, state_type in ((CLIF, CLIFState), (DN, DNState)):
        fields = [torch.randn(B, N, dtype=torch.float64) * 0.3 for _ in state_type._fields]
        odd_states = [
            state_type(*fields[:-2], fields[-2][:1], fields[-1]),  # broadcasts a [1, N] field
            state_type(*fields[:-1], fields[-1].float()),  # a float32 field
        ]
        for state in odd_states:
            layer = cls(size=N).double()
            got = layer(currents, state)
            cls.kernel = False
            try:
                want = layer(currents, state)
            finally:
                cls.kernel = True
            assert torch.equal(got[0], want[0])
    layer = DN(size=N).double()
    layer.v_th = torch.full((N,), 0.5, dtype=torch.float64)
    assert torch.equal(layer(currents)[0], DN(size=N).double()(currents)[0])


@pytest.mark.parametrize("cls", [LIF, CLIF])
@pytest.mark.parametrize("carried", [False, True])
def test_under_vmap_the_kernel_runs_the_batch_as_rows(cls, carried, monkeypatch):
    """The stacked seeds' ``torch.func.vmap``: a batch of layers with shared constants runs in
    one kernel call (the eager loop is never entered), with the spikes, states and gradients of
    the layers run one by one."""
    gen = torch.Generator().manual_seed(7)
    currents = (torch.randn(3, T, B, N, generator=gen, dtype=torch.float64) + 0.3).requires_grad_()
    fields = [torch.randn(3, B, N, generator=gen, dtype=torch.float64) for _ in range(2)]
    spikes0 = (torch.rand(3, B, N, generator=gen, dtype=torch.float64) > 0.5).double()
    fields = [fields[0].requires_grad_(), spikes0, fields[1]]
    layer = cls(size=N, surrogate=Surrogate("sigmoid", 3.0)).double()

    def run(j, v, s, i):
        state = None if not carried else (LIFState(v, s) if cls is LIF else CLIFState(i, v, s))
        spikes, final = layer(j, state)
        return spikes, final.v

    one_by_one = [run(currents[k], *(f[k] for f in fields)) for k in range(3)]
    monkeypatch.setattr(SpikingNeuron, "_tick_loop", lambda *a: pytest.fail("eager loop"))
    batched = torch.func.vmap(run)(currents, *fields)
    weights = torch.randn(batched[0].shape, generator=gen, dtype=torch.float64)
    grads = []
    for spikes, v in (batched, [torch.stack(x) for x in zip(*one_by_one, strict=True)]):
        assert torch.equal(spikes, batched[0]) and torch.equal(v, batched[1])
        loss = (weights * spikes).sum() + v.sum()
        grads.append(torch.autograd.grad(loss, [currents, fields[0]], allow_unused=True))
    (got_currents, got_v0), (want_currents, want_v0) = grads
    torch.testing.assert_close(got_currents, want_currents, rtol=1e-12, atol=1e-12)
    if carried:
        torch.testing.assert_close(got_v0, want_v0, rtol=1e-12, atol=1e-12)
    else:  # a zero state: no initial membrane to differentiate
        assert got_v0 is None and want_v0 is None


def test_a_vmap_inside_a_vmap_runs_every_layer_of_both_axes(monkeypatch):
    """Nested transforms: the inner vmap's groups and the outer one's are one axis of layers."""
    gen = torch.Generator().manual_seed(8)
    currents = torch.randn(2, 3, T, B, N, generator=gen, dtype=torch.float64) + 0.3
    v0 = torch.randn(2, 3, B, N, generator=gen, dtype=torch.float64)
    s0 = (torch.rand(2, 3, B, N, generator=gen, dtype=torch.float64) > 0.5).double()
    layer = LIF(size=N, reset="soft", surrogate=Surrogate("sigmoid", 3.0)).double()

    def run(j, v, s):
        spikes, final = layer(j, LIFState(v, s))
        return spikes, final.v

    one_by_one = [[run(currents[a, b], v0[a, b], s0[a, b]) for b in range(3)] for a in range(2)]
    monkeypatch.setattr(SpikingNeuron, "_tick_loop", lambda *a: pytest.fail("eager loop"))
    spikes, v = torch.func.vmap(torch.func.vmap(run))(currents, v0, s0)
    for a in range(2):
        for b in range(3):
            assert torch.equal(spikes[a, b], one_by_one[a][b][0])
            assert torch.equal(v[a, b], one_by_one[a][b][1])


def test_where_the_kernel_does_not_apply_it_says_so():
    spike_fn, currents = Surrogate(), torch.randn(T, B, N)
    learnt = torch.full((N,), 0.7, requires_grad=True)
    assert lif_sequence(currents, None, spike_fn, learnt, 0.5, "hard") is not None  # trained
    assert lif_sequence(currents.bfloat16(), None, spike_fn, 0.75, 0.5, "hard") is None
    assert lif_sequence(currents, None, spike_fn, torch.rand(B, N), 0.5, "hard") is None
    square = torch.randn(T, N, N)  # B == N: a [N, 1] leak is one value per row, not per neuron
    assert lif_sequence(square, None, spike_fn, torch.rand(N, 1), 0.5, "hard") is None
    assert lif_sequence(square, None, spike_fn, torch.rand(1, N), 0.5, "hard") is not None
    seen = []

    def run(j, leak):
        seen.append(lif_sequence(j, None, spike_fn, leak, 0.5, "hard"))
        return j

    torch.func.vmap(run, in_dims=(0, 0))(torch.randn(3, T, B, N), torch.rand(3, N))
    assert seen == [None]  # per-seed leaks (the seed stack's PLIF): the eager loop
    with pytest.raises(StateShapeError, match="does not match"):
        lif_sequence(currents, LIFState(torch.zeros(3, N), torch.zeros(3, N)), spike_fn)


def _actor_grads(kernel, neuron):
    torch.manual_seed(0)
    actor = SpikingActor(5, 2, neuron=neuron, hidden=[32, 24], timesteps=5)
    with torch.no_grad():
        for linear in actor.linears:
            linear.weight.mul_(3.0)
    LIF.kernel = CLIF.kernel = DN.kernel = kernel
    try:
        obs = torch.randn(16, 5, generator=torch.Generator().manual_seed(4))
        action = actor(obs)
        action.pow(2).sum().backward()
        with torch.no_grad():
            acted = actor(obs)
    finally:
        LIF.kernel = CLIF.kernel = DN.kernel = True
    return action.detach(), acted, [p.grad.clone() for p in actor.parameters()]


@pytest.mark.parametrize("neuron", ["lif", "plif", "clif", "dn"])
def test_a_spiking_actor_trains_the_same_with_and_without_the_kernel(neuron):
    """The proxy-target actor (population coding, LIF/PLIF/CLIF/DN layers): actions (training
    and acting) and every parameter gradient, PLIF's trained leaks included."""
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
