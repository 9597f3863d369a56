"""Learning algorithms: TD3 (Polyak or proxy target) and SAC, built from a run config."""

from __future__ import annotations

from typing import Any

import torch

from ..nets import DeterministicActor, TwinCritic, build_actor
from .common import CheckpointMixin, Learner, frozen, policy_action, soft_update
from .sac import SAC
from .td3 import TD3

__all__ = [
    "SAC",
    "TD3",
    "CheckpointMixin",
    "Learner",
    "build_learner",
    "frozen",
    "policy_action",
    "soft_update",
]


def build_learner(cfg: Any, obs_dim: int, act_dim: int, device: str | torch.device) -> Learner:
    """Actor, critic (and proxy) from ``cfg`` (a :class:`~spikerl.experiments.config.Config`).

    Networks are built in a fixed order (actor, critic, proxy) so a seed fixes all of them.
    """
    actor = build_actor(cfg.actor, cfg.algo.name, obs_dim, act_dim).to(device)
    critic = TwinCritic(obs_dim, act_dim, cfg.algo.critic_hidden).to(device)
    seed = cfg.run.seed
    if cfg.algo.name == "sac":
        return SAC(actor, critic, cfg.algo, act_dim, seed=seed, device=device)
    proxy = None
    if cfg.algo.target == "proxy":
        proxy = DeterministicActor(obs_dim, act_dim, cfg.algo.proxy.hidden).to(device)
    return TD3(
        actor, critic, cfg.algo, proxy=proxy, seed=seed, leak_lr=cfg.actor.plif_lr, device=device
    )
