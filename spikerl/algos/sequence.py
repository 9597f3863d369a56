r"""Off-policy sequence training of a stateful spiking actor: TD3, TD3+BC and BC on replayed
episode windows (arXiv 2510.24461 Secs. 6 and 8; spec ``surrogate-sequence.md``).

The actor is a stateful network (:func:`~spikerl.nets.spiking.direct_lif_network` with
``stateful=True``) stepped once per control step; its encoder reads the first entries of the
privileged observation :math:`x_t` (the 18-d state), the twin critics read all of it (146-d:
state and 32-step action history), so they need no warm-up. One call of
:meth:`SequenceTD3BC.update` on a :class:`~spikerl.buffers.SequenceBatch` of B windows of L steps:

1. **Critic** (``q_term`` other than ``"none"``): both critics on every valid window step,
   n-step targets from the buffer (which never bootstraps across an episode end),

   .. math::

       y_t = \sum_{j<n'} \gamma^j r_{t+j} + d_t \min_k Q'_k(x_{t+n'}, \tilde a_{t+n'}),\quad
       \tilde a = \mathrm{clip}(a^{buf} + \mathrm{clip}(\epsilon, -c, c), -1, 1),\
       \epsilon \sim N(0, \sigma^2),

   with :math:`d_t = \gamma^{n'}(1 - c_t)`, zero after a crash, and :math:`a^{buf}` the stored
   action (``target_action="buffer"``, the spec's default: recomputing it would need a warm
   SNN, and the BC term keeps the actor close to the data). ``target_action="policy"`` (the
   spec's option) puts the actor's own output at :math:`x_{t+n'}` there instead, from an
   unroll of the window without gradient, where that step is a window step past the burn-in
   (:math:`W \le i + n' < L`, warm state); elsewhere the stored action stays.
2. **Actor**, every ``policy_delay`` updates: zero state at the window start, unrolled over all
   L steps (backprop through time), losses only on valid steps :math:`i \ge W` (burn-in):

   .. math::

       L_\pi = -\frac{\mathrm{mean}_{b, i \ge W}\, Q_1(x_i, \pi_i)}{\nu}
               + \lambda\, \mathrm{mean}_{b, i \ge W, j} (\pi_{i,j} - a^{buf}_{i,j})^2,

   where :math:`\pi_i = \pi_\theta(o_0, \dots, o_i)`. ``q_term``: ``"normalized"`` (TD3+BC,
   :math:`\nu = \mathrm{mean}|Q_1(x_i, \pi_i)| / \alpha`, detached), ``"plain"`` (TD3,
   :math:`\nu = 1`), ``"none"`` (behaviour cloning: no Q term and no critic). The Q gradient
   flows through :math:`\pi_i` into the actor's weights, leaks and thresholds; the critic's
   parameters are frozen in this step. :math:`\lambda` is passed per update (the trainer decays
   it).
3. Polyak update of the target critics (:math:`\tau`).

Target noise comes from the learner's own torch generator; nothing draws from global RNGs.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import torch
from torch import nn

from ..nets.policy import ActingPolicy
from ..seeding import SeedStreams
from .common import CheckpointMixin, Generator, adam, frozen, matmul_precision, soft_update

__all__ = ["QTerm", "SequenceTD3BC", "masked_mean"]

QTerm = Literal["normalized", "plain", "none"]
Q_TERMS = ("normalized", "plain", "none")
TARGET_ACTIONS = ("buffer", "policy")


def masked_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum(values * weights) / sum(weights)`` over leading dims ``weights`` covers (extra
    trailing dims of ``values`` are averaged too); 0 when no weight is set."""
    while weights.dim() < values.dim():
        weights = weights.unsqueeze(-1)
    weights = weights.expand_as(values)
    return (values * weights).sum() / weights.sum().clamp_min(1.0)


class SequenceTD3BC(CheckpointMixin):
    """Sequence learner for a stateful actor (module docstring).

    Args:
        actor: stateful spiking network with ``unroll`` (``[B, L, n] -> [B, L, m]``).
        critic: :class:`~spikerl.nets.TwinCritic` on the privileged observation.
        burn_in: W, window steps that only warm the actor's state (50).
        q_term: ``normalized``, ``plain`` or ``none`` (see above).
        alpha: TD3+BC's alpha (2.5).
        target_action: ``buffer`` or ``policy``, the base of the critic's target action.
        lr_actor, lr_critic, gamma, tau: Adam rates, discount, Polyak factor.
        target_noise, noise_clip: sigma and c of the target action noise (0.2, 0.5).
        policy_delay: critic updates per actor update (1).
        seed: the run seed (target noise uses its ``target_noise`` stream).
        precision: the actor's matrix products in ``float32`` or ``bfloat16``
            (:func:`~spikerl.algos.common.matmul_precision`); critics stay float32.
    """

    metric_names = ("loss/critic", "q/mean", "loss/actor", "loss/bc")

    def __init__(
        self,
        actor: nn.Module,
        critic: nn.Module,
        *,
        burn_in: int = 50,
        q_term: QTerm = "normalized",
        alpha: float = 2.5,
        target_action: Literal["buffer", "policy"] = "buffer",
        lr_actor: float = 1e-3,
        lr_critic: float = 1e-3,
        gamma: float = 0.99,
        tau: float = 0.005,
        target_noise: float = 0.2,
        noise_clip: float = 0.5,
        policy_delay: int = 1,
        seed: int = 0,
        device: str | torch.device = "cpu",
        precision: str = "float32",
    ) -> None:
        if q_term not in Q_TERMS:
            raise ValueError(f"q_term={q_term!r}; choose one of {list(Q_TERMS)}")
        if target_action not in TARGET_ACTIONS:
            raise ValueError(
                f"target_action={target_action!r}; choose one of {list(TARGET_ACTIONS)}"
            )
        if not getattr(actor, "stateful", False):
            raise ValueError("sequence training needs a stateful actor (actor.stateful)")
        self.actor, self.critic = actor, critic
        self.critic_target = copy.deepcopy(critic).requires_grad_(False)
        self.actor_opt = adam(actor.parameters(), lr_actor)
        self.critic_opt = adam(critic.parameters(), lr_critic)
        self.burn_in, self.q_term, self.alpha = burn_in, q_term, alpha
        self.target_action = target_action
        self.gamma, self.tau, self.policy_delay = gamma, tau, policy_delay
        self.target_noise, self.noise_clip = target_noise, noise_clip
        self.device = torch.device(device)
        self.precision = matmul_precision(device, precision)
        self.target_gen = SeedStreams(seed).torch("target_noise", self.device)
        self.policy = ActingPolicy(actor, device)
        self.iterations = 0

    # --- learning ----------------------------------------------------------------------------
    def update(self, batch: Any, bc_weight: float) -> dict[str, float]:
        """One update on a :class:`~spikerl.buffers.SequenceBatch` with BC weight lambda."""
        self.iterations += 1
        metrics: dict[str, float] = {}
        if self.q_term != "none":
            metrics.update(self._critic_step(batch))
        if self.iterations % self.policy_delay == 0:
            metrics.update(self._actor_step(batch, bc_weight))
        if self.q_term != "none":
            soft_update(self.critic_target, self.critic, self.tau)
        return metrics

    def _critic_step(self, batch: Any) -> dict[str, float]:
        valid = batch.mask.float()
        with torch.no_grad():
            base = batch.bootstrap_action
            if self.target_action == "policy":
                base = self._policy_target_actions(batch)
            eps = torch.randn(
                base.shape, generator=self.target_gen, dtype=base.dtype, device=base.device
            )
            noise = (eps * self.target_noise).clamp(-self.noise_clip, self.noise_clip)
            next_actions = (base + noise).clamp(-1.0, 1.0)
            q1_next, q2_next = self.critic_target(batch.bootstrap_obs, next_actions)
            y = batch.nstep_return + batch.bootstrap_discount * torch.min(q1_next, q2_next)
        q1, q2 = self.critic(batch.obs, batch.actions)
        loss = masked_mean((q1 - y) ** 2, valid) + masked_mean((q2 - y) ** 2, valid)
        self.critic_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_opt.step()
        return {"loss/critic": loss.item(), "q/mean": masked_mean(q1.detach(), valid).item()}

    def _policy_target_actions(self, batch: Any) -> torch.Tensor:
        """``[B, L, m]``: the actor's output at window position ``i + n'`` (this window's unroll
        from zero state, no gradient) where that is an existing step in ``[W, L)``; the stored
        ``a^buf_{t+n'}`` elsewhere (in the burn-in, past the window or the episode end)."""
        with self.precision():
            pi, _ = self.actor.unroll(batch.obs)
        index, length = batch.bootstrap_index, batch.mask.shape[1]
        at = index.clamp(max=length - 1)
        own = (index >= self.burn_in) & (index < length) & batch.mask.gather(1, at)
        pi_at = pi.float().gather(1, at.unsqueeze(-1).expand(-1, -1, pi.shape[-1]))
        return torch.where(own.unsqueeze(-1), pi_at, batch.bootstrap_action)

    def _learn_mask(self, batch: Any) -> torch.Tensor:
        """``[B, L]``: the valid window steps past the burn-in, where the actor loss counts."""
        steps = torch.arange(batch.mask.shape[1], device=batch.mask.device)
        return batch.mask & (steps >= self.burn_in)

    def actor_loss(self, batch: Any, bc_weight: float) -> tuple[torch.Tensor, dict[str, float]]:
        """The masked actor loss of one batch (module docstring) and its parts."""
        with self.precision():
            pi, _ = self.actor.unroll(batch.obs)  # zero state at every window start
        # the losses see only the steps past the burn-in (the unroll above runs all L of them):
        # the critic evaluates L - W steps per window instead of L
        pi, obs, actions = (x[:, self.burn_in :] for x in (pi.float(), batch.obs, batch.actions))
        learn = self._learn_mask(batch)[:, self.burn_in :].float()
        bc = masked_mean((pi - actions) ** 2, learn)
        loss = bc_weight * bc
        if self.q_term != "none":
            q = self.critic.q1_value(obs, pi)
            q_mean = masked_mean(q, learn)
            scale = 1.0
            if self.q_term == "normalized":
                scale = self.alpha / masked_mean(q.abs(), learn).detach().clamp_min(1e-8)
            loss = loss - scale * q_mean
        return loss, {"loss/actor": loss.item(), "loss/bc": bc.item()}

    def _actor_step(self, batch: Any, bc_weight: float) -> dict[str, float]:
        if not self._learn_mask(batch).any():  # no valid step past the burn-in
            return {"loss/actor": 0.0, "loss/bc": 0.0}
        with frozen(self.critic):
            loss, metrics = self.actor_loss(batch, bc_weight)
            self.actor_opt.zero_grad(set_to_none=True)
            loss.backward()
        self.actor_opt.step()
        return metrics

    # --- persistence -------------------------------------------------------------------------
    def parts(self) -> dict[str, Any]:
        return {
            "actor": self.actor,
            "critic": self.critic,
            "critic_target": self.critic_target,
            "actor_opt": self.actor_opt,
            "critic_opt": self.critic_opt,
        }

    def generators(self) -> dict[str, Generator]:
        return {"target_noise": self.target_gen}
