"""The opt-in bfloat16 update path (``run.precision``): bfloat16 matmuls, float32 the rest."""

import contextlib

import pytest
import torch

from spikerl.algos import build_learner
from spikerl.algos.common import matmul_precision
from spikerl.experiments.config import ConfigError
from spikerl.snn.layers import LIF

from .test_td3 import filled_buffer


def test_float32_is_no_context_and_unknown_precisions_are_refused():
    assert matmul_precision("cpu", "float32") is contextlib.nullcontext
    with pytest.raises(ValueError, match="choose one of"):
        matmul_precision("cpu", "float16")


def test_autocast_products_run_in_bfloat16():
    layer = torch.nn.Linear(4, 3)
    with matmul_precision("cpu", "bfloat16")():
        out = layer(torch.randn(2, 4))
    assert out.dtype == torch.bfloat16


def test_neurons_integrate_bfloat16_currents_in_float32():
    currents = torch.randn(5, 2, 8).bfloat16()
    spikes, state = LIF()(currents)
    assert spikes.dtype == state.v.dtype == torch.float32
    reference, _ = LIF()(currents.float())
    assert torch.equal(spikes, reference)  # the currents' values are the same, only wider


@pytest.mark.parametrize(
    "overrides",
    [("actor.kind=ann",), ("actor.kind=lif",), ("actor.kind=lif", "algo.target=proxy")],
)
def test_bfloat16_td3_update_keeps_parameters_grads_and_adam_in_float32(tiny_config, overrides):
    torch.manual_seed(0)
    learner = build_learner(tiny_config(*overrides, "run.precision=bfloat16"), 3, 1, "cpu")
    buf = filled_buffer()
    for _ in range(4):
        metrics = learner.update(buf)
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
    for part in (learner.actor, learner.critic):
        for p in part.parameters():
            assert p.dtype == torch.float32
            assert p.grad is None or p.grad.dtype == torch.float32
    states = [s for opt in (learner.actor_opt, learner.critic_opt) for s in opt.state.values()]
    assert states and all(s["exp_avg"].dtype == torch.float32 for s in states)


def test_bfloat16_losses_stay_close_to_float32(tiny_config):
    losses, weights = {}, {}
    for precision in ("float32", "bfloat16"):
        torch.manual_seed(0)
        cfg = tiny_config("actor.kind=lif", "algo.policy_delay=1", f"run.precision={precision}")
        learner = build_learner(cfg, 3, 1, "cpu")
        buf = filled_buffer()
        losses[precision] = [learner.update(buf)["loss/actor"] for _ in range(3)]
        weights[precision] = torch.cat([p.detach().flatten() for p in learner.actor.parameters()])
    for full, half in zip(losses["float32"], losses["bfloat16"], strict=True):
        assert half == pytest.approx(full, rel=0.05, abs=1e-3)
    assert not torch.equal(weights["float32"], weights["bfloat16"])  # the products changed


@pytest.mark.parametrize("target", ["polyak", "proxy"])
def test_critics_and_proxy_stay_out_of_bfloat16(tiny_config, target):
    torch.manual_seed(0)
    cfg = tiny_config("actor.kind=lif", f"algo.target={target}", "run.precision=bfloat16")
    learner = build_learner(cfg, 3, 1, "cpu")
    seen = []
    ann_parts = [learner.critic, *([learner.proxy] if learner.proxy is not None else [])]
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
             for part in ann_parts for m in part.modules()
             if isinstance(m, torch.nn.Linear)]  # fmt: skip
    learner.update(filled_buffer())
    learner.update(filled_buffer())
    for hook in hooks:
        hook.remove()
    assert seen and set(seen) == {torch.float32}


def test_sac_refuses_bfloat16(tiny_config):
    with pytest.raises(ConfigError, match="run.precision: SAC runs in float32 only"):
        tiny_config("algo.name=sac", "run.precision=bfloat16")


def test_unknown_precision_names_the_key(tiny_config):
    with pytest.raises(ConfigError, match="run.precision"):
        tiny_config("run.precision=half")
