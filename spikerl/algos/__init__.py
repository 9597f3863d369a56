"""Learning algorithms: TD3 (Polyak or proxy target) and SAC, built from a run config, and
sequence TD3+BC for stateful spiking actors (:mod:`~spikerl.algos.sequence`)."""

from __future__ import annotations

from typing import Any

import torch

from ..nets import DeterministicActor, TwinCritic, build_actor
from ..seeding import SeedStreams
from ..snn.layers import compile_neuron_loops, cxx_compiler
from .common import CheckpointMixin, Learner, frozen, soft_update
from .sac import SAC
from .sequence import SequenceTD3BC
from .td3 import TD3

__all__ = [
    "SAC",
    "TD3",
    "CheckpointMixin",
    "SequenceTD3BC",
    "Learner",
    "build_learner",
    "frozen",
    "soft_update",
]


def build_learner(cfg: Any, obs_dim: int, act_dim: int, device: str | torch.device) -> Learner:
    """Actor, critic (and proxy) from ``cfg`` (a :class:`~spikerl.experiments.config.Config`).

    Networks are built in a fixed order (actor, critic, proxy) from the seed's ``init`` stream,
    without touching torch's global generator. ``run.compile`` compiles the actor's neuron
    loops (:func:`~spikerl.snn.layers.compile_neuron_loops`).
    """
    seed = cfg.run.seed
    if cfg.run.compile and cxx_compiler() is None:
        from ..experiments.config import ConfigError

        raise ConfigError(
            "run.compile: torch.compile needs a C++ compiler (g++, clang++ or $CXX) and none "
            "is on PATH; install one or leave run.compile false"
        )
    with SeedStreams(seed).torch_init():
        actor = build_actor(cfg.actor, cfg.algo.name, obs_dim, act_dim).to(device)
        compile_neuron_loops(actor, cfg.run.compile)  # copies (the target actor) keep it
        critic = TwinCritic(obs_dim, act_dim, cfg.algo.critic_hidden).to(device)
        proxy = None
        if cfg.algo.name == "td3" and cfg.algo.target == "proxy":
            proxy = DeterministicActor(obs_dim, act_dim, cfg.algo.proxy.hidden).to(device)
    if cfg.algo.name == "sac":
        return SAC(actor, critic, cfg.algo, act_dim, seed=seed, device=device)
    return TD3(actor, critic, cfg.algo, proxy=proxy, seed=seed, leak_lr=cfg.actor.plif_lr,
               device=device, precision=cfg.run.precision)  # fmt: skip
