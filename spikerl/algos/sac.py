r"""Soft actor-critic (Haarnoja et al. 2018, with automatic entropy tuning).

One call of :meth:`SAC.update` is one iteration on a fresh minibatch:

- critic: :math:`y = r + \gamma\,\mathrm{nd}\,(\min_i Q_i'(s', a') - \alpha \log\pi(a'|s'))`,
  :math:`a' \sim \pi(\cdot|s')`;
- actor: :math:`\mathrm{mean}(\alpha \log\pi(\tilde a|s) - \min_i Q_i(s, \tilde a))`;
- temperature (``autotune``): :math:`-\log\alpha\,(\log\pi(\tilde a|s) + \bar{\mathcal H})` with
  target entropy :math:`\bar{\mathcal H} = -|A|`;
- Polyak update of the target critic every iteration.

The actor must offer ``sample(obs, generator) -> (actions, log_prob)`` and a deterministic
``forward`` (the mean path used for evaluation and deployment). Exploratory samples and the
update's samples come from two learner-owned torch generators (streams ``exploration`` and
``policy_sample``), never from the global generator.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
from torch import nn

from ..buffers import Batch, ReplayBuffer
from ..nets.policy import ActingPolicy
from ..seeding import SeedStreams
from .common import (
    ONE_RUN,
    CheckpointMixin,
    Generator,
    adam,
    critic_regression_step,
    frozen,
    soft_update,
)

__all__ = ["SAC"]


class _Temperature(nn.Module):
    def __init__(self, alpha: float) -> None:
        super().__init__()
        self.log_alpha = nn.Parameter(torch.tensor(math.log(max(alpha, 1e-8))))


class SAC(CheckpointMixin):
    """SAC learner; the (stochastic) actor and twin critic are passed in."""

    def __init__(
        self,
        actor: nn.Module,
        critic: nn.Module,
        cfg: Any,
        act_dim: int,
        seed: int = 0,
        device: str | torch.device = "cpu",
    ) -> None:
        self.cfg, self.device = cfg, torch.device(device)
        self.actor, self.critic = actor, critic
        self.critic_target = copy.deepcopy(critic).requires_grad_(False)
        self.temperature = _Temperature(cfg.sac.alpha).to(self.device)
        self.target_entropy = -float(act_dim)
        self.actor_opt = adam(actor.parameters(), cfg.lr_actor)
        self.critic_opt = adam(critic.parameters(), cfg.lr_critic)
        self.alpha_opt = adam(self.temperature.parameters(), cfg.sac.lr_alpha)
        streams = SeedStreams(seed)
        self.explore_gen = streams.torch("exploration", self.device)
        self.sample_gen = streams.torch("policy_sample", self.device)
        self.policy = ActingPolicy(actor, self.device)
        self.axis = ONE_RUN  # how losses reduce over the batch (stacked seeds: per seed)
        self.iterations = 0
        self.metric_names = ("loss/critic", "loss/actor", "q/mean", "alpha", "entropy")

    @property
    def log_alpha(self) -> torch.Tensor:
        return self.temperature.log_alpha

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.exp().detach()

    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        """The mean action, or (``explore``) a sample from the squashed Gaussian."""
        if not explore:
            return self._deterministic_action(obs).astype(np.float32)
        with torch.inference_mode():  # as ActingPolicy acts
            x = torch.as_tensor(obs, dtype=torch.float32, device=self.device).unsqueeze(-2)
            action = self._sample(x, "exploration")[0]
            return action.squeeze(-2).cpu().numpy().astype(np.float32)

    def _deterministic_action(self, obs: np.ndarray) -> np.ndarray:
        return self.policy(obs)

    def _sample(self, obs: torch.Tensor, stream: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Actions and log-probabilities with the noise of the learner's generator ``stream``
        (``exploration`` or ``policy_sample``)."""
        return self.actor.sample(obs, self.generators()[stream])

    def update(self, buffer: ReplayBuffer) -> dict[str, float]:
        """One iteration: critic step on the soft TD target, actor and temperature step, Polyak
        update of the target critics; returns the losses, alpha and the entropy."""
        self.iterations += 1
        batch = buffer.sample(self.cfg.batch_size)
        metrics = self._critic_step(batch)
        metrics.update(self._actor_and_alpha_step(batch))
        soft_update(self.critic_target, self.critic, self.cfg.tau)
        return metrics

    def _critic_step(self, batch: Batch) -> dict[str, float]:
        with torch.no_grad():
            next_actions, next_logp = self._sample(batch.next_obs, "policy_sample")
            q1_next, q2_next = self.critic_target(batch.next_obs, next_actions)
            soft_q = torch.min(q1_next, q2_next) - self.axis.per_run(self.alpha) * next_logp
            y = batch.rewards + self.cfg.gamma * batch.not_done * soft_q
        return critic_regression_step(self.critic, self.critic_opt, batch, y, self.axis)

    def _actor_and_alpha_step(self, batch: Batch) -> dict[str, Any]:
        axis = self.axis
        mean = axis.reduce(torch.mean)
        with frozen(self.critic):
            actions, logp = self._sample(batch.obs, "policy_sample")
            q = torch.min(*self.critic(batch.obs, actions))
            loss = mean(axis.per_run(self.alpha) * logp - q)
            self.actor_opt.zero_grad(set_to_none=True)
            axis.backward(loss)
        self.actor_opt.step()
        if self.cfg.sac.autotune:
            entropy_gap = logp.detach() + self.target_entropy
            alpha_loss = mean(-(axis.per_run(self.log_alpha) * entropy_gap))
            self.alpha_opt.zero_grad(set_to_none=True)
            axis.backward(alpha_loss)
            self.alpha_opt.step()
        return {
            "loss/actor": axis.value(loss),
            "alpha": axis.value(self.alpha),
            "entropy": axis.value(-mean(logp)),
        }

    def parts(self) -> dict[str, Any]:
        return {
            "actor": self.actor,
            "critic": self.critic,
            "critic_target": self.critic_target,
            "temperature": self.temperature,
            "actor_opt": self.actor_opt,
            "critic_opt": self.critic_opt,
            "alpha_opt": self.alpha_opt,
        }

    def generators(self) -> dict[str, Generator]:
        return {"exploration": self.explore_gen, "policy_sample": self.sample_gen}
