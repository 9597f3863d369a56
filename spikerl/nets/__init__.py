"""Actors and critics: analog (``ann``) and population-coded spiking (``spiking``)."""

from __future__ import annotations

from torch import nn

from ..snn.schedules import AdaptiveSlope, FixedSlope, SlopeSchedule, SteppedSlope
from .ann import DeterministicActor, GaussianActor, SynapticLayer, TwinCritic, mlp
from .policy import ActingPolicy
from .spiking import (
    SpikingActor,
    SpikingNetwork,
    StepwiseTrace,
    diagnostic_names,
    direct_lif_network,
    spiking_diagnostics,
    stateful_controller,
)

__all__ = [
    "ActingPolicy",
    "DeterministicActor",
    "GaussianActor",
    "SpikingActor",
    "SpikingNetwork",
    "StepwiseTrace",
    "SynapticLayer",
    "TwinCritic",
    "build_actor",
    "build_slope_schedule",
    "diagnostic_names",
    "direct_lif_network",
    "mlp",
    "spiking_diagnostics",
    "stateful_controller",
]


def build_actor(actor_cfg, algo_name: str, obs_dim: int, act_dim: int) -> nn.Module:
    """The actor described by an :class:`~spikerl.experiments.config.ActorConfig` (a direct
    spiking actor is stateful under ``algo_name="sequence"``)."""
    if actor_cfg.kind == "ann":
        cls = GaussianActor if algo_name == "sac" else DeterministicActor
        return cls(obs_dim, act_dim, actor_cfg.hidden)
    if actor_cfg.network == "direct":  # stateful for sequence training, else per decision
        return direct_lif_network(
            obs_dim, act_dim, actor_cfg.hidden, actor_cfg.timesteps,
            stateful=algo_name == "sequence", surrogate=actor_cfg.surrogate,
            slope=actor_cfg.slope, inputs=actor_cfg.inputs or None,
        )  # fmt: skip
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


def build_slope_schedule(actor_cfg, total_epochs: int) -> SlopeSchedule | None:
    """The surrogate-slope schedule of a spiking actor (None for an ANN); ``actor.slope`` is
    its start (``k`` of ``fixed``, ``k_start`` of ``stepped``, ``k_init`` of ``adaptive``)."""
    if actor_cfg.kind == "ann":
        return None
    sch = actor_cfg.slope_schedule
    if sch.kind == "fixed":
        return FixedSlope(actor_cfg.slope)
    if sch.kind == "stepped":
        return SteppedSlope(actor_cfg.slope, sch.end, sch.stages, max(total_epochs, 1))
    return AdaptiveSlope(
        actor_cfg.slope, sch.min, sch.max, sch.window, sch.order, sch.return_ref,
        sch.weight_p, sch.weight_d,
    )  # fmt: skip
