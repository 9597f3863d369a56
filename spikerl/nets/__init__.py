"""Actors and critics: analog (``ann``) and population-coded spiking (``spiking``)."""

from __future__ import annotations

from torch import nn

from .ann import DeterministicActor, GaussianActor, SynapticLayer, TwinCritic, mlp
from .spiking import SpikingActor, StepwiseTrace, diagnostic_names, spiking_diagnostics

__all__ = [
    "DeterministicActor",
    "GaussianActor",
    "SpikingActor",
    "StepwiseTrace",
    "SynapticLayer",
    "TwinCritic",
    "build_actor",
    "diagnostic_names",
    "spiking_diagnostics",
    "mlp",
]


def build_actor(actor_cfg, algo_name: str, obs_dim: int, act_dim: int) -> nn.Module:
    """The actor described by an :class:`~spikerl.experiments.config.ActorConfig`."""
    if actor_cfg.kind == "ann":
        cls = GaussianActor if algo_name == "sac" else DeterministicActor
        return cls(obs_dim, act_dim, actor_cfg.hidden)
    return SpikingActor(
        obs_dim,
        act_dim,
        neuron=actor_cfg.kind,
        hidden=actor_cfg.hidden,
        timesteps=actor_cfg.timesteps,
        pop_in=actor_cfg.pop_in,
        pop_out=actor_cfg.pop_out,
        surrogate=actor_cfg.surrogate,
        slope=actor_cfg.slope,
    )
