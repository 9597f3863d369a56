"""Sequence TD3+BC on replayed windows (arXiv 2510.24461 Sec. 6): each test would fail on one
of the reference code's faults (spec Sec. 12)."""

from __future__ import annotations

import copy

import pytest
import torch

from spikerl.algos.common import frozen
from spikerl.algos.sequence import SequenceTD3BC, masked_mean
from spikerl.buffers.sequence import SequenceBatch
from spikerl.nets import TwinCritic
from spikerl.nets.spiking import direct_lif_network

B, L, W, OBS, ACT, ACTOR_OBS = 4, 12, 5, 10, 2, 6


def _batch(seed: int = 0, valid_to: int | None = None) -> SequenceBatch:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(B, L, dtype=torch.bool)
    if valid_to is not None:
        mask[:, valid_to:] = False
    return SequenceBatch(
        obs=2.0 * torch.randn(B, L, OBS, generator=g),
        actions=torch.rand(B, L, ACT, generator=g) * 2 - 1,
        rewards=torch.rand(B, L, generator=g),
        mask=mask,
        who=torch.zeros(B, L, dtype=torch.bool),
        nstep_return=torch.rand(B, L, generator=g),
        bootstrap_obs=torch.randn(B, L, OBS, generator=g),
        bootstrap_action=torch.rand(B, L, ACT, generator=g) * 2 - 1,
        bootstrap_discount=torch.full((B, L), 0.98) * mask,
        bootstrap_index=(torch.arange(L) + 2).expand(B, L) * mask,  # n' = 2
    )


def _learner(q_term: str = "normalized", **kw) -> SequenceTD3BC:
    torch.manual_seed(0)
    actor = direct_lif_network(OBS, ACT, (16, 8), stateful=True, slope=5.0, inputs=ACTOR_OBS)
    with torch.no_grad():
        for lin in actor.linears:
            lin.weight.mul_(3.0)  # enough spikes for gradients to flow
    critic = TwinCritic(OBS, ACT, (32, 32))
    return SequenceTD3BC(actor, critic, burn_in=W, q_term=q_term, **kw)


def _actor_grads(learner: SequenceTD3BC, batch: SequenceBatch, bc_weight: float) -> dict:
    learner.actor.zero_grad(set_to_none=True)
    with frozen(learner.critic):
        loss, _ = learner.actor_loss(batch, bc_weight)
        loss.backward()
    return {n: p.grad for n, p in learner.actor.named_parameters()}


def test_the_q_term_alone_moves_the_actor_and_reaches_leaks_and_thresholds():
    learner = _learner()
    grads = _actor_grads(learner, _batch(), bc_weight=0.0)  # lambda = 0: Q term only
    assert all(g is not None and g.abs().sum() > 0 for g in grads.values()), [
        n for n, g in grads.items() if g is None or g.abs().sum() == 0
    ]
    assert any("beta" in n for n in grads) and any("v_th" in n for n in grads)
    critic = [p.detach().clone() for p in learner.critic.parameters()]
    learner._actor_step(_batch(), bc_weight=0.0)
    assert all(p.grad is None for p in learner.critic.parameters())  # no gradient, no step
    assert all(torch.equal(a, p) for a, p in zip(critic, learner.critic.parameters(), strict=True))


def test_the_q_term_is_evaluated_at_the_policy_actions_not_the_buffer_actions():
    learner = _learner("plain")
    batch = _batch()
    pi, _ = learner.actor.unroll(batch.obs)
    learn = torch.arange(L) >= W
    expected = -learner.critic.q1_value(batch.obs, pi)[:, learn].mean()
    loss, _ = learner.actor_loss(batch, bc_weight=0.0)
    torch.testing.assert_close(loss, expected)


def test_the_td3bc_normaliser_uses_policy_q_and_is_detached():
    learner = _learner("normalized", alpha=2.5)
    batch = _batch()
    loss, parts = learner.actor_loss(batch, bc_weight=0.0)
    pi, _ = learner.actor.unroll(batch.obs)
    q = learner.critic.q1_value(batch.obs, pi)[:, W:]
    torch.testing.assert_close(loss, -2.5 * q.mean() / q.abs().mean())
    # detached: the gradient is that of -(2.5 / const) * mean Q, not of -2.5 * sign(mean Q)
    grads = _actor_grads(learner, batch, 0.0)
    learner.actor.zero_grad(set_to_none=True)
    (-q.mean() * 2.5 / q.abs().mean().item()).backward()
    for name, p in learner.actor.named_parameters():
        torch.testing.assert_close(grads[name], p.grad)


def test_the_loss_on_steps_past_the_burn_in_equals_the_masked_loss_on_the_whole_window():
    # the critic sees only i >= W; the reference evaluates it on all L steps and masks
    learner = _learner("normalized", alpha=2.5)
    batch = _batch(valid_to=L - 3)
    pi, _ = learner.actor.unroll(batch.obs)
    learn = (batch.mask & (torch.arange(L) >= W)).float()
    q = learner.critic.q1_value(batch.obs, pi)
    bc = masked_mean((pi - batch.actions) ** 2, learn)
    expected = 0.2 * bc - 2.5 / masked_mean(q.abs(), learn) * masked_mean(q, learn)
    loss, parts = learner.actor_loss(batch, bc_weight=0.2)
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(parts["loss/bc"], bc.item())


def test_burn_in_and_padded_steps_give_no_actor_gradient():
    learner = _learner()
    batch = _batch(valid_to=L - 3)
    base = _actor_grads(learner, batch, bc_weight=0.2)
    # changing actions and observations of steps the loss masks out changes nothing
    changed = batch._replace(
        actions=torch.cat([batch.actions[:, :W] + 0.7, batch.actions[:, W:]], dim=1),
    )
    padded = changed.obs.clone()
    padded[:, L - 3 :] = 9.0  # padded steps come after every valid one: cannot affect them
    changed = changed._replace(obs=padded)
    other = _actor_grads(learner, changed, bc_weight=0.2)
    for name in base:
        torch.testing.assert_close(base[name], other[name])


def test_no_step_past_the_burn_in_is_no_actor_step():
    learner = _learner()
    before = [p.detach().clone() for p in learner.actor.parameters()]
    metrics = learner.update(_batch(valid_to=W), bc_weight=0.2)  # nothing at i >= W is valid
    assert metrics["loss/actor"] == 0.0
    assert all(torch.equal(a, p) for a, p in zip(before, learner.actor.parameters(), strict=True))


def test_the_state_is_reset_per_window_and_batch_changes_raise():
    learner = _learner()
    batch = _batch()
    first, _ = learner.actor.unroll(batch.obs)
    again, _ = learner.actor.unroll(batch.obs)
    torch.testing.assert_close(first, again)  # no state leaks from one unroll to the next
    _, state = learner.actor.unroll(batch.obs)
    with pytest.raises(Exception, match="expected"):
        learner.actor.unroll(batch.obs[:2], state)  # B=2 with a B=4 state


def test_bc_only_needs_no_critic_and_matches_elementwise_mse():
    learner = _learner("none")
    batch = _batch()
    loss, parts = learner.actor_loss(batch, bc_weight=1.0)
    pi, _ = learner.actor.unroll(batch.obs)
    torch.testing.assert_close(loss, ((pi - batch.actions)[:, W:] ** 2).mean())
    critic_before = [p.detach().clone() for p in learner.critic.parameters()]
    metrics = learner.update(batch, bc_weight=1.0)
    assert "loss/critic" not in metrics
    assert all(
        torch.equal(a, p) for a, p in zip(critic_before, learner.critic.parameters(), strict=True)
    )


def test_critic_targets_follow_the_buffer_bootstrap():
    learner = _learner(target_noise=0.0)
    batch = _batch(valid_to=L - 2)
    with torch.no_grad():
        q1n, q2n = learner.critic_target(batch.bootstrap_obs, batch.bootstrap_action)
        y = batch.nstep_return + batch.bootstrap_discount * torch.min(q1n, q2n)
        q1, q2 = learner.critic(batch.obs, batch.actions)
        valid = batch.mask
        expected = ((q1 - y)[valid] ** 2).mean() + ((q2 - y)[valid] ** 2).mean()
    metrics = learner._critic_step(batch)
    assert metrics["loss/critic"] == pytest.approx(expected.item(), rel=1e-6)


def test_a_crash_gives_no_bootstrap_in_the_target():
    crash = _batch()._replace(bootstrap_discount=torch.zeros(B, L))
    far = crash._replace(bootstrap_obs=crash.bootstrap_obs + 100.0)  # never looked at
    losses = [_learner(target_noise=0.0)._critic_step(b)["loss/critic"] for b in (crash, far)]
    assert losses[0] == losses[1]


def test_masked_mean():
    values = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    weights = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    assert masked_mean(values, weights).item() == pytest.approx(8.0 / 3.0)
    assert masked_mean(values, torch.zeros(2, 2)).item() == 0.0
    assert masked_mean(values.unsqueeze(-1).expand(2, 2, 3), weights).item() == pytest.approx(8 / 3)


def test_resume_from_state_dict_continues_identically():
    first, second = _learner(), _learner()
    for _ in range(2):
        first.update(_batch(seed=3), bc_weight=0.2)
    # a deep copy, as a checkpoint file gives (torch's Optimizer.load_state_dict keeps the
    # state tensors it is handed, which would otherwise be shared between the two learners)
    second.load_state_dict(copy.deepcopy(first.state_dict()))
    a = first.update(_batch(seed=4), bc_weight=0.2)
    b = second.update(_batch(seed=4), bc_weight=0.2)
    assert a == b
    for p, q in zip(first.actor.parameters(), second.actor.parameters(), strict=True):
        assert torch.equal(p, q)


def _critic_loss_with(learner: SequenceTD3BC, batch: SequenceBatch, next_actions) -> float:
    """The critic loss of ``batch`` with the target actions ``next_actions`` (no noise)."""
    with torch.no_grad():
        q1n, q2n = learner.critic_target(batch.bootstrap_obs, next_actions)
        y = batch.nstep_return + batch.bootstrap_discount * torch.min(q1n, q2n)
        q1, q2 = learner.critic(batch.obs, batch.actions)
        valid = batch.mask
        return (((q1 - y)[valid] ** 2).mean() + ((q2 - y)[valid] ** 2).mean()).item()


def test_policy_target_actions_are_the_unrolled_actor_past_the_burn_in_else_the_buffers():
    """target_action=policy (spec Sec. 6): a~ at i + n' is the actor's no-grad output from
    the same unroll where W <= i + n' < L and that step exists; the stored action elsewhere."""
    learner = _learner(target_noise=0.0, target_action="policy")
    batch = _batch(valid_to=L - 1)  # the last step is padding: i = L - 3 bootstraps past it
    with torch.no_grad():
        pi, _ = learner.actor.unroll(batch.obs)
    expected = batch.bootstrap_action.clone()
    for i in range(L):
        j = i + 2
        if W <= j < L - 1:
            expected[:, i] = pi[:, j]
    assert not torch.equal(expected, batch.bootstrap_action)
    assert torch.equal(learner._policy_target_actions(batch), expected)
    loss = learner._critic_step(batch)["loss/critic"]
    assert loss == pytest.approx(_critic_loss_with(_learner(), batch, expected), rel=1e-6)
    with pytest.raises(ValueError, match="target_action='actor'"):
        _learner(target_action="actor")


def test_target_actions_get_clipped_noise_from_the_learners_own_generator():
    learner = _learner(target_noise=1.0, noise_clip=0.3)  # the clip binds often
    batch = _batch()
    twin = torch.Generator().set_state(learner.target_gen.get_state())
    eps = torch.randn(batch.bootstrap_action.shape, generator=twin)
    expected = (batch.bootstrap_action + eps.clamp(-0.3, 0.3)).clamp(-1.0, 1.0)
    loss = learner._critic_step(batch)["loss/critic"]
    assert loss == pytest.approx(_critic_loss_with(_learner(), batch, expected), rel=1e-6)


def test_the_target_critics_follow_by_polyak_averaging():
    learner = _learner(tau=0.1)
    before = [p.detach().clone() for p in learner.critic_target.parameters()]
    learner.update(_batch(), bc_weight=0.2)
    for old, new, target in zip(
        before, learner.critic.parameters(), learner.critic_target.parameters(), strict=True
    ):
        torch.testing.assert_close(target, 0.1 * new.detach() + 0.9 * old)


def test_with_policy_delay_2_the_actor_steps_every_second_update():
    learner = _learner(policy_delay=2)
    moved = []
    for k in range(4):
        before = [p.detach().clone() for p in learner.actor.parameters()]
        metrics = learner.update(_batch(seed=k), bc_weight=0.2)
        after = learner.actor.parameters()
        changed = any(not torch.equal(a, p) for a, p in zip(before, after, strict=True))
        moved.append((changed, "loss/actor" in metrics))
    assert moved == [(False, False), (True, True), (False, False), (True, True)]
