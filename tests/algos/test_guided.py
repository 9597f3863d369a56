"""Guided rollouts (arXiv 2510.24461 Sec. 7): the actor is stepped silently while the guide
flies, its state is per drone and reset with its drone, the executed action is recorded with who
acted, and time-limit episodes carry the bootstrap action of whoever would act next."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from spikerl.algos.guided import guided_rollouts
from spikerl.buffers.sequence import EpisodeSequenceBuffer
from spikerl.envs.quadrotor.vector import QuadrotorVectorEnv
from spikerl.nets.spiking import direct_lif_network

HOVER = 0.334


class HoverGuide(nn.Module):
    """Hover command plus a small state feedback, so guided drones fly steadily."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        correction = -0.3 * x[:, 2:3] - 0.2 * x[:, 14:15]  # height and vertical speed
        return (HOVER + correction).clamp(-1, 1).expand(-1, 4).contiguous()


def _actor() -> nn.Module:
    torch.manual_seed(0)
    net = direct_lif_network(146, 4, (16, 8), stateful=True, slope=5.0, inputs=18)
    with torch.no_grad():
        for lin in net.linears:
            lin.weight.mul_(2.0)
    return net


def _env(n: int = 3, **kw) -> QuadrotorVectorEnv:
    return QuadrotorVectorEnv(n, autoreset_mode="SameStep", **kw)


def _unrolled(actor: nn.Module, obs: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        x = torch.as_tensor(obs[None], dtype=torch.float32)  # the actor reads obs[:18]
        return actor.unroll(x)[0][0].numpy()


def test_the_actor_is_stepped_silently_while_the_guide_flies_and_takes_over_warm():
    actor, guide_steps = _actor(), 6
    result = guided_rollouts(
        _env(init="rest", max_steps=15), actor, HoverGuide(), guide_steps, store_steps=60, seed=0
    )
    assert len(result.episodes) >= 3
    for ep in result.episodes:
        length = len(ep["rewards"])
        assert np.array_equal(ep["who"], np.arange(length) < guide_steps)
        actor_actions = _unrolled(actor, ep["obs"])  # the actor alone on the same observations
        np.testing.assert_allclose(
            ep["actions"][guide_steps:], actor_actions[guide_steps:length], atol=1e-5
        )
        guide_actions = HoverGuide()(torch.as_tensor(ep["obs"][:guide_steps])).numpy()
        np.testing.assert_allclose(ep["actions"][:guide_steps], guide_actions, atol=1e-6)
        # the observed action history holds the executed actions, whoever acted
        np.testing.assert_allclose(ep["obs"][1:, -4:], ep["actions"], atol=1e-6)
        if ep["truncated"]:  # the actor would act at T: its next step from its own state
            np.testing.assert_allclose(ep["bootstrap_action"], actor_actions[length], atol=1e-5)


def test_a_guide_still_flying_at_the_time_limit_gives_the_bootstrap_action():
    result = guided_rollouts(
        _env(init="rest", max_steps=10), _actor(), HoverGuide(), 50, store_steps=30, seed=1
    )
    for ep in result.episodes:
        assert ep["truncated"] and ep["who"].all()
        expected = HoverGuide()(torch.as_tensor(ep["obs"][-1:]))[0].numpy()
        np.testing.assert_allclose(ep["bootstrap_action"], expected, atol=1e-6)


def test_state_rows_are_reset_with_their_drone_across_many_episodes():
    actor = _actor()
    result = guided_rollouts(_env(4), actor, None, 0, store_steps=400, seed=2)
    assert len(result.episodes) > 8  # random starts: drones crash and restart at other times
    for ep in result.episodes:  # each episode is the actor from zero state on its observations
        np.testing.assert_allclose(
            ep["actions"], _unrolled(actor, ep["obs"])[: len(ep["rewards"])], atol=1e-5
        )
        assert not ep["who"].any()


def test_collection_stores_only_long_episodes_and_feeds_the_buffer():
    result = guided_rollouts(
        _env(4, init="rest", max_steps=30), _actor(), HoverGuide(), 20, store_steps=200,
        min_len=25, seed=3,
    )  # fmt: skip
    assert result.stored_steps >= 200 or sum(result.lengths) >= 600
    assert all(len(ep["rewards"]) >= 25 for ep in result.episodes)
    assert len(result.returns) >= len(result.episodes)  # short episodes are counted, not kept
    buffer = EpisodeSequenceBuffer(
        146, 4, capacity=10_000, window=20, lookahead=2, stride=5, min_len=20
    )
    assert all(buffer.add_episode(**ep) for ep in result.episodes)
    batch = buffer.sample(8, gamma=0.99)
    assert batch.obs.shape == (8, 20, 146)


def test_evaluation_flies_one_episode_per_drone_and_reports_the_spec_metrics():
    result = guided_rollouts(_env(5, max_steps=12), _actor(), HoverGuide(), 4, episodes=5, seed=4)
    assert len(result.returns) == 5 and result.episodes == []
    metrics = result.metrics("eval")
    assert set(metrics) == {
        "eval/return_mean",
        "eval/length_mean",
        "eval/position_error",
        "eval/crashed",
    }
    assert 0 <= metrics["eval/crashed"] <= 1 and metrics["eval/length_mean"] <= 12
    again = guided_rollouts(_env(5, max_steps=12), _actor(), HoverGuide(), 4, episodes=5, seed=4)
    assert again.returns == result.returns  # seeded: the same episodes


def test_exploration_noise_is_seeded_and_bad_arguments_are_refused():
    runs = [
        guided_rollouts(
            _env(2),
            _actor(),
            None,
            0,
            store_steps=50,
            explore_std=0.1,
            rng=np.random.default_rng(7),
            seed=5,
        )  # fmt: skip
        for _ in range(2)
    ]
    assert runs[0].returns == runs[1].returns
    with pytest.raises(ValueError, match="SAME_STEP"):
        guided_rollouts(QuadrotorVectorEnv(2), _actor(), None, 0, episodes=2)
    with pytest.raises(ValueError, match="exactly one"):
        guided_rollouts(_env(2), _actor(), None, 0)
    with pytest.raises(ValueError, match="needs a guide"):
        guided_rollouts(_env(2), _actor(), None, 10, episodes=2)
    with pytest.raises(ValueError, match="rng"):
        guided_rollouts(_env(2), _actor(), None, 0, episodes=2, explore_std=0.1)
