r"""Composable spiking networks with explicit whole-network state.

A :class:`SpikingNetwork` is assembled from parts:

- an **input stage** (``encoder``): :class:`~spikerl.snn.coding.PopulationEncoder` (Gaussian
  receptive fields + deterministic spike generator), :class:`~spikerl.snn.coding.DirectEncoder`
  (the analog observation as a constant current), or ``None`` (the caller passes a ``[T, B, n]``
  sequence of currents or spikes); optionally after ``tanh`` squashing of the observation;
- a list of **synaptic layers** (``linears``: ``nn.Linear`` now; any module mapping
  ``[T, B, ...] -> [T, B, N]``, e.g. a time-distributed Conv2d, fits), each followed by its own
  **neuron** layer (``neurons``: :mod:`spikerl.snn.layers`, each with its own kind, leak,
  threshold, reset and surrogate);
- a **readout** (``decoder``): the population decoder, or a non-spiking
  :class:`~spikerl.snn.coding.LinearReadout` on spikes, rate or membrane; then ``tanh`` (or
  nothing) and ``max_action``.

One decision is ``T`` ticks, executed multi-step: each layer's input current is computed for all
``T`` ticks at once and its neurons run all ``T`` ticks before the next layer. With no synaptic
delay this equals the tick-by-tick loop (:meth:`SpikingNetwork.forward_stepwise`).

**State.** The network state is a tuple with one neuron state (a NamedTuple of ``[B, N]``
tensors) per layer. ``step(obs, state) -> (action, state)`` runs one decision from ``state``
(``None``: zeros); :meth:`SpikingNetwork.trace` also returns per-layer spike counts and, on
request, membranes, from the same forward pass. A ``stateful`` network (a controller stepped
once per control step) carries its state across decisions, reset at every episode start by
:class:`~spikerl.nets.policy.ActingPolicy`; a stateless one (the proxy-target actor) starts
every decision from zeros. The encoder keeps no state across decisions.

:class:`SpikingActor` is the population-coded actor of the proxy-target method (PopSAN; arXiv
2505.24161); :func:`direct_lif_network` the direct-input LIF network of arXiv 2510.24461 (Sec. 5
stateless, Sec. 6 :func:`stateful_controller`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from ..snn.coding import DirectEncoder, LinearReadout, PopulationDecoder, PopulationEncoder
from ..snn.functional import StateShapeError, reset_rows
from ..snn.layers import LIF, SpikingNeuron, make_neuron
from ..snn.surrogate import Surrogate
from .ann import SynapticLayer

__all__ = [
    "NetworkTrace",
    "SpikingActor",
    "SpikingNetwork",
    "StepwiseTrace",
    "diagnostic_names",
    "spiking_diagnostics",
    "direct_lif_network",
    "stateful_controller",
]

NetworkState = tuple[Any, ...]


class StepwiseTrace(NamedTuple):
    """Per-layer spikes and membrane potentials ``[T, B, N]`` from the tick-by-tick path."""

    action: torch.Tensor
    spikes: list[torch.Tensor]
    membranes: list[torch.Tensor]


class NetworkTrace(NamedTuple):
    """One decision: the action ``[B, m]``, the state after it, per-layer spike counts ``[B, N]``
    (non-zero outputs summed over the decision's ticks: a graded spike is one event) and, when
    asked, per-layer membranes after every tick ``[T, B, N]``."""

    action: torch.Tensor
    state: NetworkState
    spike_counts: tuple[torch.Tensor, ...]
    membranes: tuple[torch.Tensor, ...] | None


class SpikingNetwork(nn.Module):
    """A spiking network assembled from parts (module docstring).

    Args:
        encoder: input stage, or None for ``[T, B, n]`` inputs.
        linears: synaptic layers, one per neuron layer.
        neurons: neuron layers with ``size`` set (their state shapes).
        readout: maps ``(outputs [T, B, N], membrane [B, N])`` to the pre-activation ``[B, m]``.
        timesteps: T ticks per decision (the encoder's, when there is one).
        squash_obs: apply ``tanh`` to the observation before the encoder.
        activation: ``"tanh"`` or None, applied to the readout before ``max_action``.
        stateful: carry the state across decisions (acting and evaluation).
        input_kind: ``"spike"`` or ``"analog"`` inputs of the first synaptic layer when
            ``encoder`` is None (otherwise the encoder's ``output_kind``).
    """

    def __init__(
        self,
        encoder: nn.Module | None,
        linears: Sequence[nn.Module],
        neurons: Sequence[SpikingNeuron],
        readout: nn.Module,
        timesteps: int,
        squash_obs: bool = False,
        activation: str | None = "tanh",
        max_action: float = 1.0,
        stateful: bool = False,
        input_kind: str = "analog",
    ) -> None:
        super().__init__()
        if len(linears) != len(neurons) or not neurons:
            raise ValueError("give one synaptic layer per neuron layer (at least one)")
        if activation not in ("tanh", None):
            raise ValueError(f"activation={activation!r}; choose 'tanh' or None")
        if any(n.size is None for n in neurons):
            raise ValueError("every neuron layer needs its size (neurons=...) for its state")
        self.encoder = encoder
        self.linears = nn.ModuleList(linears)
        self.neurons = nn.ModuleList(neurons)
        self.decoder = readout
        self.timesteps, self.squash_obs, self.activation = timesteps, squash_obs, activation
        self.max_action, self.stateful = max_action, stateful
        self.input_kind = getattr(encoder, "output_kind", input_kind)

    # --- state ---------------------------------------------------------------------------------
    def init_state(
        self,
        batch: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> NetworkState:
        """The zero state of every layer for a batch of ``batch`` rows."""
        ref = next(iter(self.parameters()), None)
        device = device if device is not None else (ref.device if ref is not None else None)
        dtype = dtype if dtype is not None else (ref.dtype if ref is not None else None)
        return tuple(n.init_state(batch, device, dtype) for n in self.neurons)

    def reset_rows(self, state: NetworkState, mask: torch.Tensor) -> NetworkState:
        """``state`` with the rows where ``mask [B]`` is True back at zero (finished episodes)."""
        return reset_rows(state, mask)

    def check_state(self, state: NetworkState, batch: int) -> None:
        """Raise :class:`StateShapeError` naming the layer whose state does not fit ``batch``."""
        if not isinstance(state, tuple | list) or len(state) != len(self.neurons):
            count = len(state) if isinstance(state, tuple | list) else type(state).__name__
            raise StateShapeError(
                f"state has {count} layer states; this network has {len(self.neurons)} "
                f"({', '.join(self.layer_names)})"
            )
        for name, neuron, layer_state in zip(self.layer_names, self.neurons, state, strict=True):
            expected = (batch, neuron.size)
            for field, tensor in zip(neuron.state_type._fields, layer_state, strict=True):
                if tuple(tensor.shape) != expected:
                    raise StateShapeError(
                        f"layer {name}: state field {field!r} has shape {tuple(tensor.shape)}, "
                        f"expected {expected} for a batch of {batch}; the state is never "
                        f"broadcast: start it anew (init_state({batch}), or an ActingPolicy's "
                        "reset()) when the batch size changes"
                    )

    # --- execution -----------------------------------------------------------------------------
    def _encode(self, obs: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(obs) if self.squash_obs else obs
        return self.encoder(x) if self.encoder is not None else x

    def _act(self, outputs: torch.Tensor, membrane: torch.Tensor | None) -> torch.Tensor:
        """The action from the last layer's outputs ``[T, B, N]`` and membrane ``[B, N]``."""
        pre = self.decoder(outputs, membrane)
        return self.max_action * (torch.tanh(pre) if self.activation == "tanh" else pre)

    def _run(
        self, obs: torch.Tensor, state: NetworkState | None, counts: bool, membranes: bool
    ) -> NetworkTrace:
        x = self._encode(obs)
        if state is not None:
            self.check_state(state, x.shape[1])
        states = list(state) if state is not None else [None] * len(self.neurons)
        spike_counts, potentials = [], []
        for i, (linear, neuron) in enumerate(zip(self.linears, self.neurons, strict=True)):
            if membranes:
                x, states[i], v = neuron.forward_recording(linear(x), states[i])
                potentials.append(v)
            else:
                x, states[i] = neuron(linear(x), states[i])
            if counts:
                spike_counts.append((x != 0).sum(dim=0))
        action = self._act(x, self.neurons[-1].membrane(states[-1]))
        return NetworkTrace(
            action, tuple(states), tuple(spike_counts), tuple(potentials) if membranes else None
        )

    def step(
        self, obs: torch.Tensor, state: NetworkState | None = None
    ) -> tuple[torch.Tensor, NetworkState]:
        """One decision of ``T`` ticks from ``state`` (None: zeros): ``(action [B, m], state)``.

        Goes through the module call, so forward hooks (energy accounting) see every decision."""
        return self(obs, state, return_state=True)

    def trace(
        self, obs: torch.Tensor, state: NetworkState | None = None, membranes: bool = False
    ) -> NetworkTrace:
        """:meth:`step` plus per-layer spike counts (and membranes) from the same pass."""
        return self._run(obs, state, counts=True, membranes=membranes)

    def forward(
        self, obs: torch.Tensor, state: NetworkState | None = None, return_state: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, NetworkState]:
        """Action ``[B, m]`` for observations ``[B, n]`` from ``state`` (None: zeros, so a plain
        call starts from zero state); with ``return_state`` also the state after it."""
        result = self._run(obs, state, counts=False, membranes=False)
        return (result.action, result.state) if return_state else result.action

    def unroll(
        self, obs_seq: torch.Tensor, state: NetworkState | None = None
    ) -> tuple[torch.Tensor, NetworkState]:
        """Actions ``[B, L, m]`` for an observation sequence ``[B, L, n]``: :meth:`step` at
        every control step, the state carried from one to the next (from ``state``; None:
        zeros). Differentiable end to end, so a loss on the actions backpropagates through time
        into the weights, leaks and thresholds.

        A network of one tick per decision (the stateful controller) runs the sequence layer by
        layer, as a decision runs its T ticks: each synaptic layer maps all L steps at once and
        its neurons run the L ticks in one multi-step call (the C kernel where it applies), the
        readout reads every tick. With no synaptic delay this is the step-by-step loop up to
        the products' summation order (tested). The network steps instead where that would
        differ or be unseen: T > 1 ticks per decision, neurons whose update depends on the tick
        index (conversion neurons restart every decision), layers or readouts of more than one
        feature axis, and forward hooks on the network (energy accounting counts decisions)."""
        if not self._unrolls_by_layer(obs_seq):
            return self._unroll_by_steps(obs_seq, state)
        batch, length = obs_seq.shape[:2]
        if state is not None:
            self.check_state(state, batch)
        x = self._encode(obs_seq.transpose(0, 1).reshape(length * batch, -1))  # [1, L*B, n]
        x = x.reshape(length, batch, -1)  # the L control steps as the tick axis
        states = list(state) if state is not None else [None] * len(self.neurons)
        membranes = None
        for i, (linear, neuron) in enumerate(zip(self.linears, self.neurons, strict=True)):
            if i == len(self.neurons) - 1 and self.decoder.input_kind == "analog":
                x, states[i], membranes = neuron.forward_recording(linear(x), states[i])
            else:
                x, states[i] = neuron(linear(x), states[i])
        # every step's readout of its one tick, as L * B decisions of T = 1
        last_v = None if membranes is None else membranes.reshape(length * batch, -1)
        action = self._act(x.reshape(1, length * batch, -1), last_v)
        return action.reshape(length, batch, -1).transpose(0, 1), tuple(states)

    def _unrolls_by_layer(self, obs_seq: torch.Tensor) -> bool:
        """Whether :meth:`unroll` may run the L steps as L ticks of each layer (its docstring)."""
        return (
            self.timesteps == 1
            and obs_seq.dim() == 3
            and all(n.tick_independent for n in self.neurons)
            and all(isinstance(m, nn.Linear) for m in self.linears)
            and isinstance(self.decoder, LinearReadout | PopulationDecoder)
            and not (self._forward_hooks or self._forward_pre_hooks)
        )

    def _unroll_by_steps(
        self, obs_seq: torch.Tensor, state: NetworkState | None
    ) -> tuple[torch.Tensor, NetworkState]:
        """:meth:`unroll` as :meth:`step` at every control step (the reference)."""
        actions = []
        for i in range(obs_seq.shape[1]):
            action, state = self.step(obs_seq[:, i], state)
            actions.append(action)
        return torch.stack(actions, dim=1), state

    def forward_stepwise(
        self, obs: torch.Tensor, state: NetworkState | None = None
    ) -> StepwiseTrace:
        """Reference tick-by-tick execution that also records spikes and membranes per layer.

        Slower than :meth:`forward` and numerically equal to it up to float summation order;
        used by diagnostics and by the multi-step equivalence test.
        """
        enc = self._encode(obs)
        states: list[Any] = list(state) if state is not None else [None] * len(self.neurons)
        spikes: list[list[torch.Tensor]] = [[] for _ in self.neurons]
        membranes: list[list[torch.Tensor]] = [[] for _ in self.neurons]
        for t in range(enc.shape[0]):
            x = enc[t]
            for i, (linear, neuron) in enumerate(zip(self.linears, self.neurons, strict=True)):
                x, states[i] = neuron.step(linear(x), states[i], t)
                spikes[i].append(x)
                membranes[i].append(neuron.membrane(states[i]))
        action = self._act(torch.stack(spikes[-1]), self.neurons[-1].membrane(states[-1]))
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
        return [n.surrogate for n in self.neurons]

    def set_surrogate_slope(self, slope: float) -> None:
        """Set the surrogate slope k of every spiking layer (a slope schedule's value)."""
        for surrogate in self.surrogates:
            surrogate.slope = slope

    def leak_parameters(self) -> list[nn.Parameter]:
        """Learnable sigmoid leaks (PLIF), which train in their own optimiser group."""
        return [p for name, p in self.named_parameters() if "leak_logit" in name]

    def neuron_parameters(self) -> list[dict[str, Any]]:
        """Per spiking layer: its name, size and constants (for exporters and importers)."""
        return [
            {"layer": name, "size": n.size, **n.neuron_parameters()}
            for name, n in zip(self.layer_names, self.neurons, strict=True)
        ]

    def energy_layers(self) -> list[SynapticLayer]:
        """Synaptic layers in order, each with the kind of input it receives."""
        names = [f"fc{i}" for i in range(len(self.linears) - 1)] + ["out"]
        kinds = [self.input_kind] + ["spike"] * (len(self.linears) - 1)
        layers = [
            SynapticLayer(n, m, k) for n, m, k in zip(names, self.linears, kinds, strict=True)
        ]
        readout = self.decoder.linear if isinstance(self.decoder, LinearReadout) else self.decoder
        return [*layers, SynapticLayer("readout", readout, self.decoder.input_kind)]

    def populations(self) -> dict[str, nn.Module]:
        """Spiking populations that feed spike-driven layers, by name, in order."""
        sources = ([("encoder", self.encoder)] if self.input_kind == "spike" else []) + list(
            zip(self.layer_names, self.neurons, strict=True)
        )
        if self.decoder.input_kind != "spike":
            sources = sources[:-1]
        return dict(sources)


class SpikingActor(SpikingNetwork):
    """Population-coded spiking actor for TD3 (PopSAN; proxy-target spec Sec. 2).

    ``tanh(s) -> PopulationEncoder (n*P spikes/tick) -> [Linear + neuron] x (hidden..., m*P)
    -> rates -> PopulationDecoder -> max_action * tanh``, stateless (zero state every decision).
    Only the SNN sees ``tanh(s)``; critics and the proxy network get the raw observation
    (parity with the reference code).

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
        encoder = PopulationEncoder(obs_dim, pop_in, timesteps)
        sizes = [encoder.out_features, *hidden, act_dim * pop_out]
        linears = [nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
        neurons = [make_neuron(neuron, size, Surrogate(surrogate, slope)) for size in sizes[1:]]
        super().__init__(
            encoder,
            linears,
            neurons,
            PopulationDecoder(act_dim, pop_out),
            timesteps,
            squash_obs=True,
            max_action=max_action,
        )
        self.neuron_kind = neuron


def direct_lif_network(
    obs_dim: int,
    act_dim: int,
    hidden: Sequence[int] = (256, 128),
    timesteps: int = 1,
    stateful: bool = False,
    surrogate: str = "fast_sigmoid",
    slope: float = 1.0,
    max_action: float = 1.0,
    inputs: int | None = None,
) -> SpikingNetwork:
    """The direct-input LIF network of arXiv 2510.24461 (spec Secs. 1, 5 and 6).

    ``o -> [Linear -> LIF] x len(hidden) -> Linear readout -> tanh``: the analog observation is
    the input current of every tick, each LIF has a learnable per-neuron leak ``clip(beta, 0, 1)``
    and threshold (both U(0, 1) at init) and the detached soft reset of Sec. 1, and the readout
    is linear in the output spikes, summed over the decision's ``timesteps`` ticks (the bias
    counted once; with one tick this is the spikes just emitted). ``stateful=False`` (Sec. 5, the
    slope study on single transitions) starts every decision from zeros; ``stateful=True``
    (Sec. 6) carries the membranes across decisions, reset at every episode start. ``inputs``
    reads only the first entries of the observation (the controller's 18-d state of the 146-d
    privileged observation); None reads all of it.
    """
    encoder = DirectEncoder(obs_dim, timesteps=timesteps, inputs=inputs)
    sizes = [encoder.out_features, *hidden]
    linears = [nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    neurons = [
        LIF(
            reset="soft_detached",
            leak="clip",
            threshold="learn",
            init="uniform",
            size=size,
            surrogate=Surrogate(surrogate, slope),
        )
        for size in hidden
    ]
    return SpikingNetwork(
        encoder,
        linears,
        neurons,
        LinearReadout(hidden[-1], act_dim, source="spikes" if timesteps == 1 else "count"),
        timesteps=timesteps,
        max_action=max_action,
        stateful=stateful,
    )


def stateful_controller(
    obs_dim: int = 18,
    act_dim: int = 4,
    hidden: Sequence[int] = (256, 128),
    surrogate: str = "fast_sigmoid",
    slope: float = 1.0,
    max_action: float = 1.0,
) -> SpikingNetwork:
    """The stateful LIF controller of arXiv 2510.24461 Sec. 6 (39,044 parameters by default):
    :func:`direct_lif_network` with one tick per control step, state carried through the
    episode."""
    return direct_lif_network(
        obs_dim, act_dim, hidden, timesteps=1, stateful=True, surrogate=surrogate, slope=slope,
        max_action=max_action,
    )  # fmt: skip


@torch.no_grad()
def spiking_diagnostics(actor: SpikingNetwork, obs: torch.Tensor) -> dict[str, float]:
    """Health of a spiking network on observations ``[B, n]`` (proxy-target spec Sec. 8-9).

    Per spiking layer (hidden ``h0..``, ``output``): the firing rate, the fraction of membrane
    values inside the rectangular surrogate window ``|V - v_th| < 0.5 / slope`` (where gradients
    flow), and the fractions of silent (never firing) and saturated (firing every tick) neurons.
    A collapse shows as a falling in-window fraction while neurons keep firing. Measured over
    one decision from the zero state.
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
    if not isinstance(actor, SpikingNetwork):
        return ()
    kinds = ("rate", "in_window", "silent", "saturated")
    return tuple(f"snn/{k}_{n}" for n in actor.layer_names for k in kinds)
