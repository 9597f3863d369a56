r"""Population-coded spiking actor (PopSAN; proxy-target spec Sec. 2).

One decision is one forward call of ``T`` ticks:

``tanh(s) -> PopulationEncoder (n*P spikes/tick) -> [Linear + neuron] x (hidden..., m*P)
-> rates -> PopulationDecoder -> max_action * tanh``.

Execution is multi-step: each layer's input current is computed for all ``T`` ticks at once
(``Linear`` on ``[T, B, N_in]``) and its neurons run all ``T`` ticks before the next layer. With
no synaptic delay this equals the tick-by-tick loop (:meth:`SpikingActor.forward_stepwise`).

Only the SNN sees ``tanh(s)``; critics and the proxy network get the raw observation (parity with
the reference code). All neuron state starts at zero in every call of ``forward``; ``step``
carries it across calls for stateful controllers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from ..snn.coding import PopulationDecoder, PopulationEncoder
from ..snn.layers import SpikingNeuron, make_neuron
from ..snn.surrogate import Surrogate
from .ann import SynapticLayer

__all__ = ["SpikingActor", "StepwiseTrace", "diagnostic_names", "spiking_diagnostics"]


class StepwiseTrace(NamedTuple):
    """Per-layer spikes and membrane potentials ``[T, B, N]`` from the tick-by-tick path."""

    action: torch.Tensor
    spikes: list[torch.Tensor]
    membranes: list[torch.Tensor]


class SpikingActor(nn.Module):
    """Population-coded spiking actor for TD3.

    Args:
        obs_dim, act_dim: n and m.
        neuron: ``lif``, ``clif``, ``dn`` or ``plif`` (paper constants; :mod:`spikerl.snn.layers`).
        hidden: hidden layer sizes (256, 256).
        timesteps: T ticks per decision (5).
        pop_in, pop_out: encoder and output population sizes per dimension (10, 10).
        surrogate, slope: surrogate gradient of every spiking layer (each layer owns a copy).
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        neuron: str = "lif",
        hidden: Sequence[int] = (256, 256),
        timesteps: int = 5,
        pop_in: int = 10,
        pop_out: int = 10,
        surrogate: str = "rectangular",
        slope: float = 1.0,
        max_action: float = 1.0,
    ) -> None:
        super().__init__()
        self.neuron_kind, self.timesteps, self.max_action = neuron, timesteps, max_action
        self.encoder = PopulationEncoder(obs_dim, pop_in, timesteps)
        sizes = [self.encoder.out_features, *hidden, act_dim * pop_out]
        self.linears = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        )
        self.neurons = nn.ModuleList(
            make_neuron(neuron, Surrogate(surrogate, slope)) for _ in self.linears
        )
        self.decoder = PopulationDecoder(act_dim, pop_out)

    # --- execution -----------------------------------------------------------------------------
    def step(self, obs: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, list[Any]]:
        """One decision of ``T`` ticks starting from ``state`` (None: all zeros).

        Returns the action ``[B, m]`` and the per-layer neuron states after the last tick. The
        encoder is stateless across decisions (it restarts at zero).
        """
        states = list(state) if state is not None else [None] * len(self.neurons)
        x = self.encoder(torch.tanh(obs))
        for i, (linear, neuron) in enumerate(zip(self.linears, self.neurons, strict=True)):
            x, states[i] = neuron(linear(x), states[i])
        return self.max_action * torch.tanh(self.decoder(x)), states

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Action ``[B, m]`` for observations ``[B, n]``; every call starts from zero state."""
        return self.step(obs)[0]

    def forward_stepwise(self, obs: torch.Tensor) -> StepwiseTrace:
        """Reference tick-by-tick execution that also records spikes and membranes per layer.

        Slower than :meth:`forward` and numerically equal to it up to float summation order;
        used by diagnostics and by the multi-step equivalence test.
        """
        enc = self.encoder(torch.tanh(obs))
        states: list[Any] = [None] * len(self.neurons)
        spikes: list[list[torch.Tensor]] = [[] for _ in self.neurons]
        membranes: list[list[torch.Tensor]] = [[] for _ in self.neurons]
        for t in range(self.timesteps):
            x = enc[t]
            for i, (linear, neuron) in enumerate(zip(self.linears, self.neurons, strict=True)):
                x, states[i] = neuron.step(linear(x), states[i])
                spikes[i].append(x)
                membranes[i].append(states[i].v)
        out = torch.stack(spikes[-1])
        action = self.max_action * torch.tanh(self.decoder(out))
        return StepwiseTrace(
            action, [torch.stack(s) for s in spikes], [torch.stack(v) for v in membranes]
        )

    # --- introspection -------------------------------------------------------------------------
    @property
    def layer_names(self) -> list[str]:
        """Names of the spiking layers after the encoder: ``h0, h1, ..., output``."""
        return [f"h{i}" for i in range(len(self.neurons) - 1)] + ["output"]

    @property
    def surrogates(self) -> list[Surrogate]:
        """The surrogate of each spiking layer; assign ``.slope`` to schedule it."""
        return [n.surrogate for n in self.neurons if isinstance(n, SpikingNeuron)]

    def set_surrogate_slope(self, slope: float) -> None:
        for surrogate in self.surrogates:
            surrogate.slope = slope

    def leak_parameters(self) -> list[nn.Parameter]:
        """Learnable leak parameters (PLIF), which train in their own optimiser group."""
        return [p for name, p in self.named_parameters() if "leak_logit" in name]

    def energy_layers(self) -> list[SynapticLayer]:
        """Synaptic layers in order; all are spike-driven (the encoder emits spikes)."""
        names = [f"fc{i}" for i in range(len(self.linears) - 1)] + ["out"]
        layers = [SynapticLayer(n, m, "spike") for n, m in zip(names, self.linears, strict=True)]
        return [*layers, SynapticLayer("readout", self.decoder, "spike")]

    def populations(self) -> dict[str, nn.Module]:
        """Spiking populations by name (encoder, hidden..., output) for firing-rate accounting."""
        names = ["encoder", *self.layer_names]
        return dict(zip(names, [self.encoder, *self.neurons], strict=True))


@torch.no_grad()
def spiking_diagnostics(actor: SpikingActor, obs: torch.Tensor) -> dict[str, float]:
    """Health of a spiking actor on observations ``[B, n]`` (proxy-target spec Sec. 8-9).

    Per spiking layer (hidden ``h0..``, ``output``): the firing rate, the fraction of membrane
    values inside the rectangular surrogate window ``|V - v_th| < 0.5 / slope`` (where gradients
    flow), and the fractions of silent (never firing) and saturated (firing every tick) neurons.
    A collapse shows as a falling in-window fraction while neurons keep firing.
    """
    trace = actor.forward_stepwise(obs)
    out: dict[str, float] = {}
    for name, spikes, v, neuron in zip(
        actor.layer_names, trace.spikes, trace.membranes, actor.neurons, strict=True
    ):
        rate = spikes.mean(dim=0)  # [B, N]
        half_width = 0.5 / neuron.surrogate.slope
        out[f"snn/rate_{name}"] = float(spikes.mean())
        out[f"snn/in_window_{name}"] = float(((v - neuron.v_th).abs() < half_width).float().mean())
        out[f"snn/silent_{name}"] = float((rate.sum(0) == 0).float().mean())
        out[f"snn/saturated_{name}"] = float((rate.min(0).values == 1).float().mean())
    return out


def diagnostic_names(actor: nn.Module) -> tuple[str, ...]:
    """The keys :func:`spiking_diagnostics` returns for ``actor`` (empty for analog actors)."""
    if not isinstance(actor, SpikingActor):
        return ()
    kinds = ("rate", "in_window", "silent", "saturated")
    return tuple(f"snn/{k}_{n}" for n in actor.layer_names for k in kinds)
