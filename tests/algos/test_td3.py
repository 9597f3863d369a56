import copy

import numpy as np
import pytest
import torch

from spikerl.algos import SAC, TD3, build_learner
from spikerl.buffers import ReplayBuffer


def filled_buffer(obs_dim=3, act_dim=1, n=300, seed=0):
    rng = np.random.default_rng(seed)
    buf = ReplayBuffer(obs_dim, act_dim, 1000, seed=seed)
    for _ in range(n):
        buf.add(
            rng.normal(size=obs_dim),
            rng.uniform(-1, 1, act_dim),
            rng.normal(),
            rng.normal(size=obs_dim),
            terminated=bool(rng.random() < 0.05),
        )
    return buf


def params(module):
    return [p.detach().clone() for p in module.parameters()]


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("keep_last", [False, True])
@pytest.mark.parametrize("kind", ["ann", "lif"])
def test_proxy_step_leaves_actor_grad_untouched(tiny_config, kind, keep_last):
    torch.manual_seed(0)
    learner = build_learner(tiny_config(f"actor.kind={kind}", "algo.target=proxy"), 3, 1, "cpu")
    buf = filled_buffer()
    for p in learner.actor.parameters():
        p.grad = None
    before = params(learner.actor)
    _, loss, actions = learner._proxy_steps(buf, keep_last)
    assert (actions is not None and actions.requires_grad) == keep_last
    assert all(p.grad is None for p in learner.actor.parameters())
    assert same(before, params(learner.actor))
    assert loss >= 0


def test_proxy_regression_tracks_actor(tiny_config):
    torch.manual_seed(0)
    cfg = tiny_config(
        "actor.kind=lif", "algo.target=proxy", "algo.proxy.lr=3e-3", "algo.proxy.updates=1"
    )
    learner = build_learner(cfg, 3, 1, "cpu")
    buf = filled_buffer()
    first = learner._proxy_steps(buf)[1]
    for _ in range(150):
        last = learner._proxy_steps(buf)[1]
    assert last < 0.5 * first


def test_proxy_variant_has_no_target_actor_and_vanilla_does(tiny_config):
    pt = build_learner(tiny_config("actor.kind=lif", "algo.target=proxy"), 3, 1, "cpu")
    van = build_learner(tiny_config("actor.kind=lif", "algo.target=polyak"), 3, 1, "cpu")
    assert pt.actor_target is None and pt.proxy is not None
    assert van.proxy is None and van.actor_target is not None
    # the Polyak copy is the whole SNN, encoder included
    assert torch.equal(van.actor_target.encoder.mu, van.actor.encoder.mu)
    assert "loss/proxy" in pt.metric_names and "loss/proxy" not in van.metric_names


def test_policy_delay_and_polyak_update(tiny_config):
    torch.manual_seed(0)
    learner = build_learner(tiny_config("actor.kind=lif", "algo.policy_delay=2"), 3, 1, "cpu")
    buf = filled_buffer()
    actor0, target0 = params(learner.actor), params(learner.actor_target)
    m1 = learner.update(buf)
    assert "loss/actor" not in m1 and same(actor0, params(learner.actor))
    m2 = learner.update(buf)
    assert "loss/actor" in m2 and not same(actor0, params(learner.actor))
    tau = learner.cfg.tau
    for t0, a1, t1 in zip(
        target0, params(learner.actor), params(learner.actor_target), strict=True
    ):
        assert torch.allclose(t1, (1 - tau) * t0 + tau * a1, atol=1e-6)


def test_plif_leak_trains_in_own_group(tiny_config):
    learner = build_learner(tiny_config("actor.kind=plif", "actor.plif_lr=1e-4"), 3, 1, "cpu")
    groups = learner.actor_opt.param_groups
    assert len(groups) == 2 and groups[1]["lr"] == 1e-4 and len(groups[1]["params"]) == 3


@pytest.mark.parametrize(
    "overrides",
    [
        ("actor.kind=lif", "algo.target=proxy"),
        ("actor.kind=dn", "algo.target=polyak"),
        ("actor.kind=ann",),
        ("algo.name=sac",),
    ],
)
def test_save_load_round_trip_continues_identically(tiny_config, overrides):
    torch.manual_seed(0)
    cfg = tiny_config(*overrides)
    a = build_learner(cfg, 3, 1, "cpu")
    buf = filled_buffer()
    for _ in range(3):
        a.update(buf)
    state = copy.deepcopy(a.state_dict())
    buf_state = copy.deepcopy(buf.state_dict())
    torch_rng = torch.get_rng_state()
    for _ in range(4):
        a.update(buf)
    torch.manual_seed(123)
    b = build_learner(cfg, 3, 1, "cpu")
    b.load_state_dict(state)
    buf.load_state_dict(buf_state)
    torch.set_rng_state(torch_rng)
    for _ in range(4):
        b.update(buf)
    for name, part in a.parts().items():
        if isinstance(part, torch.nn.Module):
            assert same(params(part), params(b.parts()[name])), name
    assert a.iterations == b.iterations == 7
    obs = np.zeros(3, np.float32)
    rng = torch.get_rng_state()  # SAC explores with torch's global generator
    action_a = a.act(obs, explore=True)
    torch.set_rng_state(rng)
    assert np.array_equal(action_a, b.act(obs, explore=True))


def test_wrong_proxy_argument():
    from spikerl.experiments.config import AlgoConfig
    from spikerl.nets import DeterministicActor, TwinCritic

    actor, critic = DeterministicActor(3, 1), TwinCritic(3, 1)
    with pytest.raises(ValueError, match="proxy"):
        TD3(actor, critic, AlgoConfig(target="proxy"))


def test_sac_update_and_deterministic_mean_path(tiny_config):
    torch.manual_seed(0)
    learner = build_learner(tiny_config("algo.name=sac"), 3, 1, "cpu")
    assert isinstance(learner, SAC)
    buf = filled_buffer()
    alpha0 = learner.alpha.item()
    metrics = learner.update(buf)
    assert set(learner.metric_names) <= set(metrics)
    assert learner.alpha.item() != alpha0
    obs = np.ones(3, np.float32)
    assert np.array_equal(learner.act(obs, False), learner.act(obs, False))
    a, logp = learner.actor.sample(torch.ones(5, 3))
    assert a.abs().max() <= 1 and logp.shape == (5,)


@pytest.mark.parametrize("kind", ["lif", "plif", "ann"])
def test_shared_forward_of_the_last_proxy_batch_changes_nothing(tiny_config, kind, monkeypatch):
    """On actor iterations the last proxy batch's SNN forward serves both the proxy target and
    the actor step; the parameters equal the two-forward update's (up to the products'
    summation order: the no-grad pass covers 2 batches instead of 3)."""
    cfg = tiny_config(f"actor.kind={kind}", "algo.target=proxy", "algo.proxy.updates=3")
    torch.manual_seed(0)
    shared = build_learner(cfg, 3, 1, "cpu")
    reference, initial = copy.deepcopy(shared), params(shared.actor)
    monkeypatch.setattr(reference, "share_actor_forward", False)
    buffers = filled_buffer(), filled_buffer()
    for _ in range(6):  # policy delay 2: three actor steps
        shared.update(buffers[0])
        reference.update(buffers[1])
    for name in ("actor", "critic", "proxy", "critic_target"):
        a, b = params(getattr(shared, name)), params(getattr(reference, name))
        assert all(torch.allclose(x, y, rtol=1e-5, atol=1e-6) for x, y in zip(a, b, strict=True))
    assert not same(initial, params(shared.actor))  # the actor did train
