r"""TD3 with any actor, and a choice of target policy: Polyak copy or proxy network.

TD3 (Fujimoto et al. 2018) with the proxy-target extension of arXiv 2505.24161
(``proxy-target.md``). One call of :meth:`TD3.update` is one training iteration:

1. ``target = "proxy"``: K proxy steps, each an Adam step on
   :math:`L_\pi = \mathrm{mean}_{B, m} (\pi_\phi(s) - \mathrm{sg}[\mu_\theta(s)])^2` on a fresh
   minibatch. The SNN targets of the K minibatches come from one no-grad forward (they do not
   depend on the proxy), so the proxy steps build no graph through the SNN and leave the
   actor's ``.grad`` untouched. On an iteration with an actor step (3.), which trains on the
   last of these minibatches with the same, not yet updated actor, the last minibatch's SNN
   forward is run once, with its graph: its detached output is that minibatch's proxy target
   and the graph serves the actor step (the same values; one SNN forward fewer;
   ``TD3.share_actor_forward = False`` runs the two forwards, the reference of the test and of
   ``benchmarks/proxy_shared_forward.py``).
2. Critic step on the last proxy minibatch (``proxy``) or a fresh one (``polyak``):
   :math:`y = r + \gamma\,\mathrm{nd}\,\min_i Q_i'(s', \tilde a)`,
   :math:`\tilde a = \mathrm{clip}(\pi'(s') + \mathrm{clip}(\epsilon, -c, c), -1, 1)`,
   with :math:`\pi'` the proxy or the Polyak target actor.
3. Every ``policy_delay`` iterations: actor step :math:`-\mathrm{mean}\,Q_1(s, \mu_\theta(s))`
   through the surrogate gradients, then Polyak updates of the target critic (and, for
   ``polyak``, of the target actor). The proxy has no soft update.

All noise scales are fractions of ``max_action`` (1 after action rescaling). Exploration noise
and target-policy noise come from the learner's own generators (streams ``exploration`` and
``target_noise`` of :class:`~spikerl.seeding.SeedStreams`); the learner never draws from the
global torch or NumPy generators.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
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
    matmul_precision,
    soft_update,
)

__all__ = ["TD3"]


class TD3(CheckpointMixin):
    """TD3 learner. The actor, critic and (for ``target="proxy"``) the proxy are passed in.

    ``share_actor_forward`` (class attribute, default True): the proxy target's actor step
    reuses the last proxy minibatch's SNN forward (module docstring, 1.); False computes it
    twice, as before, with the same results.

    Args:
        actor: deterministic actor ``[B, n] -> [B, m]`` (ANN or spiking).
        critic: a :class:`~spikerl.nets.TwinCritic`.
        cfg: an :class:`~spikerl.experiments.config.AlgoConfig`.
        proxy: the proxy network when ``cfg.target == "proxy"``; must be None otherwise.
        seed: the run seed; exploration and target noise use its own streams.
        leak_lr: learning rate of learnable leaks (PLIF), in their own Adam group.
        precision: the actor's matrix products in the updates in ``float32`` or ``bfloat16``
            (autocast; :func:`~spikerl.algos.common.matmul_precision`). Critics, the proxy
            and acting stay float32, so TD targets and Q values are never rounded.
    """

    share_actor_forward = True

    def __init__(
        self,
        actor: nn.Module,
        critic: nn.Module,
        cfg: Any,
        proxy: nn.Module | None = None,
        seed: int = 0,
        leak_lr: float = 1e-4,
        max_action: float = 1.0,
        device: str | torch.device = "cpu",
        precision: str = "float32",
    ) -> None:
        if (cfg.target == "proxy") != (proxy is not None):
            raise ValueError("pass a proxy network exactly when cfg.target == 'proxy'")
        self.cfg, self.device, self.max_action = cfg, torch.device(device), max_action
        self.precision = matmul_precision(device, precision)
        self.actor, self.critic, self.proxy = actor, critic, proxy
        self.critic_target = copy.deepcopy(critic).requires_grad_(False)
        self.actor_target = None
        if proxy is None:
            self.actor_target = copy.deepcopy(actor).requires_grad_(False)
        leaks = [p for n, p in actor.named_parameters() if "leak_logit" in n]
        others = [p for n, p in actor.named_parameters() if "leak_logit" not in n]
        groups = [{"params": others}] + ([{"params": leaks, "lr": leak_lr}] if leaks else [])
        self.actor_opt = adam(groups, cfg.lr_actor)
        self.critic_opt = adam(critic.parameters(), cfg.lr_critic)
        self.proxy_opt = adam(proxy.parameters(), cfg.proxy.lr) if proxy is not None else None
        streams = SeedStreams(seed)
        self.rng = streams.numpy("exploration")
        self.target_gen = streams.torch("target_noise", self.device)
        self.policy = ActingPolicy(actor, self.device)
        self.axis = ONE_RUN  # how losses reduce over the batch (stacked seeds: per seed)
        self.iterations = 0
        self.metric_names = ("loss/critic", "loss/actor", "q/mean") + (
            ("loss/proxy",) if proxy is not None else ()
        )

    # --- acting ------------------------------------------------------------------------------
    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        """Action for one observation; with ``explore`` adds N(0, (expl_noise * max_a)^2)."""
        action = self._deterministic_action(obs)
        if explore:
            noise = self._exploration_noise(self.cfg.expl_noise * self.max_action, action.shape)
            action = np.clip(action + noise, -self.max_action, self.max_action)
        return action.astype(np.float32)

    def _deterministic_action(self, obs: np.ndarray) -> np.ndarray:
        return self.policy(obs)

    def _exploration_noise(self, scale: float, shape: tuple[int, ...]) -> np.ndarray:
        """N(0, scale^2) of ``shape`` from the exploration stream."""
        return self.rng.normal(0.0, scale, shape)

    def _target_noise(self, like: torch.Tensor) -> torch.Tensor:
        """Standard normal noise shaped like ``like`` from the target-noise stream."""
        return torch.randn(
            like.shape, generator=self.target_gen, dtype=like.dtype, device=like.device
        )

    # --- learning ----------------------------------------------------------------------------
    def update(self, buffer: ReplayBuffer) -> dict[str, Any]:
        """One training iteration (see module docstring); returns scalar metrics (one per
        seed for stacked seeds)."""
        self.iterations += 1
        actor_turn = self.iterations % self.cfg.policy_delay == 0
        metrics: dict[str, float] = {}
        actions = None  # the actor's actions on the batch, with their graph, where computed
        if self.proxy is not None:
            share = actor_turn and self.share_actor_forward
            batch, metrics["loss/proxy"], actions = self._proxy_steps(buffer, share)
        else:
            batch = buffer.sample(self.cfg.batch_size)
        metrics.update(self._critic_step(batch))
        if actor_turn:
            metrics["loss/actor"] = self._actor_step(batch, actions)
            soft_update(self.critic_target, self.critic, self.cfg.tau)
            if self.actor_target is not None:
                soft_update(self.actor_target, self.actor, self.cfg.tau)
        return metrics

    def _proxy_steps(
        self, buffer: ReplayBuffer, keep_last: bool = False
    ) -> tuple[Batch, Any, torch.Tensor | None]:
        """K Adam steps of the proxy towards the detached actor; returns the last batch, the
        loss and (``keep_last``) the actor's actions on the last batch with their graph, for
        the actor step. (Batches are concatenated and split on dim -2, the batch axis with or
        without a leading seed axis.)"""
        k, size = self.cfg.proxy.updates, self.cfg.batch_size
        batches = [buffer.sample(size) for _ in range(k)]
        no_graph = batches[:-1] if keep_last else batches
        targets: list[torch.Tensor] = []
        if no_graph:
            with torch.no_grad(), self.precision():  # one SNN pass for these batches, no graph
                joined = torch.cat([b.obs for b in no_graph], dim=-2)
                targets += self.actor(joined).float().split(size, dim=-2)
        actions = None
        if keep_last:
            with self.precision():
                actions = self.actor(batches[-1].obs).float()
            targets.append(actions.detach())
        mse = self.axis.reduce(F.mse_loss)
        for batch, target in zip(batches, targets, strict=True):
            loss = mse(self.proxy(batch.obs), target)
            self.proxy_opt.zero_grad(set_to_none=True)
            self.axis.backward(loss)
            self.proxy_opt.step()
        return batches[-1], self.axis.value(loss), actions

    def _target_policy(self, next_obs: torch.Tensor) -> torch.Tensor:
        """The proxy's actions (float32), or the target actor's (its products in
        ``precision``)."""
        if self.proxy is not None:
            return self.proxy(next_obs)
        with self.precision():
            return self.actor_target(next_obs).float()

    def _critic_step(self, batch: Batch) -> dict[str, Any]:
        cfg, max_a = self.cfg, self.max_action
        with torch.no_grad():
            next_actions = self._target_policy(batch.next_obs)
            eps = self._target_noise(next_actions)
            noise = (eps * cfg.target_noise * max_a).clamp(
                -cfg.noise_clip * max_a, cfg.noise_clip * max_a
            )
            next_actions = (next_actions + noise).clamp(-max_a, max_a)
            q1_next, q2_next = self.critic_target(batch.next_obs, next_actions)
            y = batch.rewards + cfg.gamma * batch.not_done * torch.min(q1_next, q2_next)
        return critic_regression_step(self.critic, self.critic_opt, batch, y, self.axis)

    def _actor_step(self, batch: Batch, actions: torch.Tensor | None = None) -> Any:
        """``actions``: the actor's actions on ``batch`` with their graph, if already computed."""
        with frozen(self.critic):
            if actions is None:
                with self.precision():
                    actions = self.actor(batch.obs).float()
            loss = -self.axis.reduce(torch.mean)(self._q1(batch.obs, actions))
            self.actor_opt.zero_grad(set_to_none=True)
            self.axis.backward(loss)
        self.actor_opt.step()
        return self.axis.value(loss)

    def _q1(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.critic.q1_value(obs, actions)

    # --- persistence -------------------------------------------------------------------------
    def parts(self) -> dict[str, Any]:
        """Networks and optimisers saved in checkpoints (None where the variant has none)."""
        return {
            "actor": self.actor,
            "critic": self.critic,
            "critic_target": self.critic_target,
            "proxy": self.proxy,
            "actor_target": self.actor_target,
            "actor_opt": self.actor_opt,
            "critic_opt": self.critic_opt,
            "proxy_opt": self.proxy_opt,
        }

    def generators(self) -> dict[str, Generator]:
        return {"exploration": self.rng, "target_noise": self.target_gen}
