r"""Input encoders and output decoders for spiking actors.

**Population encoder** (PopSAN, arXiv 2010.09635; proxy-target spec Sec. 2). Each observation
dimension :math:`i` drives :math:`P` neurons with learnable Gaussian receptive fields,

.. math:: A_{ij} = \exp\!\big(-(x_i - \mu_{ij})^2 / (2\sigma_{ij}^2)\big),

and a deterministic spike generator integrates :math:`A` for :math:`T` ticks: it is an IF neuron
with threshold 0.999 and subtractive reset (:func:`~spikerl.snn.functional.if_step`) whose
spike function passes gradients straight through, so :math:`\mu, \sigma` learn by backprop.

**Direct encoding** feeds the analog input as a constant current at every tick.

**Readouts** turn the last layer's outputs ``[T, B, N]`` (and its final membrane ``[B, N]``)
into values, the pre-activation of the action: the population decoder averages each action's
:math:`P` output neurons' rates with learnable weights,
:math:`a_k = \sum_j w_{kj} r_{kj} + b_k`; :class:`LinearReadout` is a non-spiking linear layer
on the spikes of the last tick, the rates, or the final membrane.

Every encoder declares ``output_kind`` (``"spike"`` or ``"analog"``) and every readout
``input_kind``, which energy accounting uses to count SOPs or MACs.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .functional import if_step, unroll
from .surrogate import Surrogate

__all__ = [
    "READOUT_SOURCES",
    "DirectEncoder",
    "LinearReadout",
    "PopulationDecoder",
    "PopulationEncoder",
    "rate_decode",
]

READOUT_SOURCES: tuple[str, ...] = ("spikes", "rate", "count", "weighted", "membrane")


class PopulationEncoder(nn.Module):
    """Gaussian receptive fields + deterministic spike generator: ``[B, n] -> [T, B, n*P]``.

    Args:
        obs_dim: n, observation dimensions.
        pop: P, neurons per dimension; centres evenly spaced on ``[mu_low, mu_high]``.
        timesteps: T ticks per decision.
        sigma: initial receptive-field width (std), ``sqrt(0.05)`` in PopSAN.
        v_th: spike-generator threshold (0.999).
    """

    output_kind = "spike"

    def __init__(
        self,
        obs_dim: int,
        pop: int = 10,
        timesteps: int = 5,
        sigma: float = math.sqrt(0.05),
        v_th: float = 0.999,
        mu_range: tuple[float, float] = (-1.0, 1.0),
    ) -> None:
        super().__init__()
        centres = torch.linspace(mu_range[0], mu_range[1], pop) if pop > 1 else torch.zeros(1)
        self.mu = nn.Parameter(centres.repeat(obs_dim, 1))
        self.sigma = nn.Parameter(torch.full((obs_dim, pop), float(sigma)))
        self.timesteps, self.v_th = timesteps, v_th
        self.surrogate = Surrogate("straight_through", 1.0)

    @property
    def out_features(self) -> int:
        return self.mu.numel()

    def receptive_fields(self, x: torch.Tensor) -> torch.Tensor:
        """Stimulation ``A [B, n*P]`` of each encoder neuron by ``x [B, n]``."""
        a = torch.exp(-((x.unsqueeze(-1) - self.mu) ** 2) / (2.0 * self.sigma**2))
        return a.flatten(-2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Spikes ``[T, B, n*P]`` for observations ``x [B, n]`` (already squashed)."""
        a = self.receptive_fields(x)
        currents = a.unsqueeze(0).expand(self.timesteps, *a.shape)
        spikes, _ = unroll(
            lambda j, st: if_step(j, st, self.surrogate, v_th=self.v_th, reset="soft"),
            currents,
        )
        return spikes


class DirectEncoder(nn.Module):
    """Direct (analog current) encoding: the input repeated as a constant current for T ticks.

    ``inputs``: read only the first ``inputs`` observation entries (the quadrotor controller's
    18-d state of its 146-d privileged observation); None reads all ``obs_dim``.
    """

    output_kind = "analog"

    def __init__(self, obs_dim: int, timesteps: int = 5, inputs: int | None = None) -> None:
        super().__init__()
        if inputs is not None and not 1 <= inputs <= obs_dim:
            raise ValueError(f"inputs={inputs} must be in [1, obs_dim={obs_dim}]")
        self.inputs, self.obs_dim = inputs, obs_dim
        self.out_features, self.timesteps = inputs or obs_dim, timesteps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[..., : self.inputs] if self.inputs is not None else x
        return x.unsqueeze(0).expand(self.timesteps, *x.shape)


def rate_decode(spikes: torch.Tensor) -> torch.Tensor:
    """Firing rate per neuron: the mean over the time axis of ``spikes [T, B, N] -> [B, N]``."""
    return spikes.mean(dim=0)


class PopulationDecoder(nn.Module):
    """Grouped linear readout of output-population rates: ``[T, B, m*P] -> [B, m]``.

    ``a_k = sum_j w_kj r_kj + b_k`` with P weights and one bias per action, initialised
    uniform(+-1/sqrt(P)). Returns the pre-activation; the actor applies ``tanh * max_action``.
    """

    input_kind = "spike"

    def __init__(self, act_dim: int, pop: int = 10) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(pop)
        self.weight = nn.Parameter(torch.empty(act_dim, pop).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(act_dim).uniform_(-bound, bound))
        self.act_dim, self.pop = act_dim, pop

    def forward(self, spikes: torch.Tensor, membrane: torch.Tensor | None = None) -> torch.Tensor:
        """Pre-activation ``[B, m]`` from output spikes ``[T, B, m*P]`` (membrane unused)."""
        rates = rate_decode(spikes).unflatten(-1, (self.act_dim, self.pop))
        return (rates * self.weight).sum(-1) + self.bias


class LinearReadout(nn.Module):
    r"""Non-spiking linear readout ``[T, B, N] -> [B, m]`` of the last spiking layer.

    ``source``:

    - ``spikes``: :math:`W o(T) + b`, the outputs of the decision's last tick (a stateful
      controller stepped once per control step reads the spikes it just emitted);
    - ``rate``: :math:`\frac{1}{T}\sum_t (W o(t) + b) = W \bar o + b` (computed per tick, so
      energy accounting sees the spike events);
    - ``count``: :math:`W \sum_t o(t) + b`, the summed output spikes (arXiv 2510.24461's
      readout; computed per tick as ``rate``, the bias counted once);
    - ``weighted``: :math:`W \sum_t w_t o(t) + b` with fixed ``tick_weights`` :math:`w_t`
      (differential coding's output estimate :math:`Y(T) = \sum_{t \ge 1} o(t)/t`; computed
      per tick as ``rate``, the bias counted once);
    - ``membrane``: :math:`W V(T) + b`, the final membrane potential (analog input: MACs).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        source: str = "spikes",
        tick_weights: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if source not in READOUT_SOURCES:
            raise ValueError(f"source={source!r}; choose one of {list(READOUT_SOURCES)}")
        if (source == "weighted") != (tick_weights is not None):
            raise ValueError("tick_weights go with source='weighted', and only with it")
        self.linear = nn.Linear(in_features, out_features)
        self.source = source
        if tick_weights is not None:
            self.register_buffer("tick_weights", tick_weights.detach().clone().float())

    @property
    def input_kind(self) -> str:
        return "analog" if self.source == "membrane" else "spike"

    def forward(self, spikes: torch.Tensor, membrane: torch.Tensor | None = None) -> torch.Tensor:
        if self.source == "spikes":
            return self.linear(spikes[-1])
        if self.source == "rate":
            return self.linear(spikes).mean(dim=0)
        if self.source in ("count", "weighted"):  # per tick (energy hooks see spikes), one bias
            if self.source == "weighted":
                if self.tick_weights.shape[0] != spikes.shape[0]:
                    raise ValueError(
                        f"{self.tick_weights.shape[0]} tick weights for {spikes.shape[0]} ticks"
                    )
                spikes = spikes * self.tick_weights.view(-1, *([1] * (spikes.dim() - 1)))
            out = self.linear(spikes).sum(dim=0)
            bias = self.linear.bias
            return out if bias is None else out - (spikes.shape[0] - 1) * bias
        if membrane is None:
            raise ValueError("a membrane readout needs the last layer's membrane potential")
        return self.linear(membrane)
