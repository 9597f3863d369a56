"""Compiled neuron loops (``run.compile``) compute what the eager loops compute."""

import copy

import pytest
import torch

from spikerl.experiments.config import ConfigError, load_config
from spikerl.snn.layers import CLIF, DN, LIF, PLIF, compile_neuron_loops
from spikerl.snn.surrogate import Surrogate

NEURONS = {
    "lif": lambda: LIF(surrogate=Surrogate("rectangular", 1.0)),
    "plif": lambda: PLIF(surrogate=Surrogate("fast_sigmoid", 2.0)),
    "clif": lambda: CLIF(),
    "dn": lambda: DN(),
}


def _run(neuron, currents):
    currents = currents.clone().requires_grad_(True)
    out, state = neuron(currents)
    (out * torch.linspace(-1, 1, out.shape[-1])).sum().backward()
    params = [p.grad.clone() for p in neuron.parameters()]
    return out.detach(), [s.detach() for s in state], currents.grad, params


@pytest.mark.parametrize("kind", list(NEURONS))
def test_compiled_loop_equals_eager_forward_and_backward(kind):
    torch.manual_seed(0)
    currents = torch.randn(4, 3, 5)
    eager = NEURONS[kind]()
    compiled = copy.deepcopy(eager)
    assert compile_neuron_loops(compiled) == 1
    expected, got = _run(eager, currents), _run(compiled, currents)
    torch.testing.assert_close(got[0], expected[0], rtol=0, atol=0)  # spikes
    for g, e in zip(got[1] + [got[2]] + got[3], expected[1] + [expected[2]] + expected[3],
                    strict=True):  # fmt: skip
        torch.testing.assert_close(g, e, rtol=1e-6, atol=1e-6)


def test_the_setting_survives_copies_and_leaves_the_state_dict_alone():
    layer = LIF()
    keys = list(layer.state_dict())
    compile_neuron_loops(layer)
    target = copy.deepcopy(layer)
    assert target.compiled and list(target.state_dict()) == keys
    compile_neuron_loops(target, enabled=False)
    assert not target.compiled and layer.compiled


def test_build_learner_compiles_the_actor_and_its_target(tiny_config):
    from spikerl.algos import build_learner

    learner = build_learner(tiny_config("actor.kind=lif", "run.compile=true"), 3, 1, "cpu")
    for actor in (learner.actor, learner.actor_target):
        neurons = [m for m in actor.modules() if hasattr(m, "compiled") and m.compiled]
        assert neurons


def test_compile_without_a_compiler_is_one_config_error(monkeypatch, tiny_config):
    from spikerl.algos import build_learner

    monkeypatch.setattr("spikerl.algos.cxx_compiler", lambda: None)
    cfg = load_config(None, ["run.compile=true"])  # a saved config still loads anywhere
    assert cfg.run.compile
    with pytest.raises(ConfigError, match="run.compile: torch.compile needs a C"):
        build_learner(tiny_config("actor.kind=lif", "run.compile=true"), 3, 1, "cpu")


def test_compiled_modules_are_freed():
    import gc
    import weakref

    layer = LIF()
    compile_neuron_loops(layer)
    layer(torch.randn(2, 1, 3))
    ref = weakref.ref(layer)
    del layer
    gc.collect()
    assert ref() is None
