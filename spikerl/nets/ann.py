"""Analog (ReLU) networks: MLPs, the deterministic TD3 actor, the proxy actor, twin critics
and the tanh-Gaussian SAC actor.

All actors map raw observations ``[B, n]`` to actions ``[B, m]`` in ``[-max_action, max_action]``
and declare their synaptic layers for energy accounting (:meth:`energy_layers`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

__all__ = ["DeterministicActor", "GaussianActor", "SynapticLayer", "TwinCritic", "mlp"]


class SynapticLayer(NamedTuple):
    """A layer whose arithmetic is counted; input ``"analog"`` (MACs) or ``"spike"`` (SOPs)."""

    name: str
    module: nn.Module
    input_kind: str


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int) -> nn.Sequential:
    """``in -> hidden... -> out`` with ReLU between layers and none after the last.

    The ReLUs work in place: the Linear output a ReLU overwrites is saved by no backward (a
    Linear's backward needs its input and weight), so values and gradients are an out-of-place
    ReLU's (tested), without a fresh ``[B, hidden]`` tensor per layer
    (``benchmarks/ann_overhead.py``)."""
    layers: list[nn.Module] = []
    sizes = [in_dim, *hidden]
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(a, b), nn.ReLU(inplace=True)]
    layers.append(nn.Linear(sizes[-1], out_dim))
    return nn.Sequential(*layers)


def _linear_layers(net: nn.Sequential, prefix: str) -> list[SynapticLayer]:
    linears = [m for m in net if isinstance(m, nn.Linear)]
    return [SynapticLayer(f"{prefix}{i}", m, "analog") for i, m in enumerate(linears)]


class DeterministicActor(nn.Module):
    """``a = max_action * tanh(MLP(s))``: the TD3 actor (256-256) and the proxy network."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: Sequence[int] = (256, 256),
        max_action: float = 1.0,
    ) -> None:
        super().__init__()
        self.net = mlp(obs_dim, hidden, act_dim)
        self.max_action = max_action

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.max_action * torch.tanh(self.net(obs))

    def energy_layers(self) -> list[SynapticLayer]:
        return _linear_layers(self.net, "fc")


class TwinCritic(nn.Module):
    """Two independent Q networks ``concat(s, a) -> hidden -> 1`` (ReLU)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (256, 256)) -> None:
        super().__init__()
        self.q1 = mlp(obs_dim + act_dim, hidden, 1)
        self.q2 = mlp(obs_dim + act_dim, hidden, 1)

    def forward(
        self, obs: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(Q_1(s, a), Q_2(s, a))``, each ``[B]``."""
        x = torch.cat([obs, actions], dim=-1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)

    def q1_value(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``Q_1(s, a)`` alone ``[B]`` (the actor's loss needs only the first critic)."""
        return self.q1(torch.cat([obs, actions], dim=-1)).squeeze(-1)


class GaussianActor(nn.Module):
    """Tanh-squashed Gaussian policy for SAC.

    ``forward(s)`` is the deterministic mean path ``max_action * tanh(mu(s))`` (evaluation and
    deployment); :meth:`sample` draws ``a = max_action * tanh(mu + sigma * eps)`` with
    reparameterisation and returns its log-probability with the tanh change of variables.
    """

    LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: Sequence[int] = (256, 256),
        max_action: float = 1.0,
    ) -> None:
        super().__init__()
        self.trunk = mlp(obs_dim, hidden[:-1], hidden[-1])
        self.mean = nn.Linear(hidden[-1], act_dim)
        self.log_std = nn.Linear(hidden[-1], act_dim)
        self.max_action = max_action

    def _heads(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.relu_(self.trunk(obs))  # in place: as the ReLUs of mlp()
        log_std = torch.tanh(self.log_std(h))
        log_std = self.LOG_STD_MIN + 0.5 * (self.LOG_STD_MAX - self.LOG_STD_MIN) * (log_std + 1)
        return self.mean(h), log_std

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        mean, _ = self._heads(obs)
        return self.max_action * torch.tanh(mean)

    def sample(
        self, obs: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised action ``[B, m]`` and its log-probability ``[B]``; the noise is drawn
        from ``generator`` (the learner's own; None: torch's global generator)."""
        weight = self.mean.weight
        shape = (*obs.shape[:-1], weight.shape[0])
        eps = torch.randn(shape, generator=generator, dtype=weight.dtype, device=weight.device)
        return self.sample_from_noise(obs, eps)

    def sample_from_noise(
        self, obs: torch.Tensor, eps: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`sample` with its standard normal noise ``eps [B, m]`` given (stacked seeds
        draw it from each seed's own generator, outside ``vmap``)."""
        mean, log_std = self._heads(obs)
        std = log_std.exp()
        pre = mean + std * eps
        squashed = torch.tanh(pre)
        gauss_logp = -0.5 * ((pre - mean) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
        correction = torch.log(self.max_action * (1 - squashed.pow(2)) + 1e-6)
        return self.max_action * squashed, (gauss_logp - correction).sum(-1)

    def energy_layers(self) -> list[SynapticLayer]:
        return [*_linear_layers(self.trunk, "fc"), SynapticLayer("mean", self.mean, "analog")]
