"""The parts both sequence-training benchmarks time (``spikerl bench --sections sequence`` and
``benchmarks/sequence_training.py``): the networks of ``configs/quadrotor/guided_td3bc.yaml``
and a replay buffer of guide-flown episodes."""

from __future__ import annotations

import torch
from torch import nn

from ..algos.guided import guided_rollouts
from ..algos.sequence import SequenceTD3BC
from ..buffers.sequence import EpisodeSequenceBuffer
from ..envs.quadrotor.vector import QuadrotorVectorEnv
from ..nets import TwinCritic
from ..nets.spiking import direct_lif_network

__all__ = ["OBS_DIM", "ACT_DIM", "guide_flown_buffer", "quadrotor_controller", "sequence_learner"]

OBS_DIM, ACT_DIM = 146, 4  # the privileged observation; the SNN reads its first 18 entries


def quadrotor_controller() -> nn.Module:
    """The stateful LIF controller 18-256-128-4, one tick per control step, surrogate slope 2."""
    return direct_lif_network(OBS_DIM, ACT_DIM, (256, 128), stateful=True, slope=2.0, inputs=18)


def guide_flown_buffer(
    guide: nn.Module,
    window: int,
    store_steps: int,
    capacity: int,
    stride: int,
    seed: int,
    device: str | torch.device = "cpu",
) -> EpisodeSequenceBuffer:
    """``store_steps`` steps of episodes flown by ``guide`` on 20 drones (the SNN stepped
    silently beside it, as a run's seed data), episodes of at least ``window`` steps."""
    env = QuadrotorVectorEnv(20, autoreset_mode="SameStep")
    result = guided_rollouts(env, quadrotor_controller(), guide, 2**31, store_steps=store_steps,
                             min_len=window, seed=seed)  # fmt: skip
    buffer = EpisodeSequenceBuffer(OBS_DIM, ACT_DIM, capacity, window=window, stride=stride,
                                   min_len=window, seed=seed, device=device)  # fmt: skip
    for episode in result.episodes:
        buffer.add_episode(**episode)
    return buffer


def sequence_learner(burn_in: int, seed: int, device: str | torch.device = "cpu") -> SequenceTD3BC:
    """A fresh :class:`SequenceTD3BC` on the controller and twin critics 256-128 (torch seeded
    with ``seed`` first)."""
    torch.manual_seed(seed)
    critic = TwinCritic(OBS_DIM, ACT_DIM, (256, 128)).to(device)
    return SequenceTD3BC(quadrotor_controller().to(device), critic, burn_in=burn_in, device=device)
