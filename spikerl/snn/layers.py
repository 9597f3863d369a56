"""Thin ``nn.Module`` wrappers over the neuron steps of :mod:`spikerl.snn.functional`.

A module holds only parameters and buffers (leaks, thresholds) and its
:class:`~spikerl.snn.surrogate.Surrogate`; it never stores membrane state.

- ``step(current, state=None, tick=0)`` runs one tick; ``tick`` is the index of the tick within
  the decision, for neurons whose rule depends on it (the conversion neurons).
- ``forward(currents, state=None)`` runs a ``[T, B, N]`` sequence and returns
  ``(outputs [T, B, N], state)``; passing the returned state back in carries it across calls,
  passing ``None`` starts from zeros.
- ``forward_recording`` also returns the membrane potential after every tick ``[T, B, N]``.
- ``init_state(batch)`` is the zero state of a layer of ``size`` neurons, and
  ``neuron_parameters()`` the per-layer constants an exporter or importer needs to rebuild it.

Outputs need not be binary: a step may emit graded or signed values (multi-threshold and signed
conversion neurons); callers count events as non-zero outputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import nn

from .functional import (
    DN_CONSTANTS,
    RESET_MODES,
    CLIFState,
    DNState,
    LIFState,
    ResetMode,
    StateShapeError,
    _state_or_zeros,
    clif_current,
    clif_step,
    dn_step,
    lif_step,
    unroll,
    unroll_recording,
)
from .kernel import dn_sequence, kernel_applies, lif_sequence
from .surrogate import Surrogate

__all__ = [
    "CLIF",
    "DN",
    "IF",
    "LEAK_MODES",
    "LIF",
    "NEURON_KINDS",
    "PLIF",
    "THRESHOLD_MODES",
    "SpikingNeuron",
    "compile_neuron_loops",
    "cxx_compiler",
    "make_neuron",
]

LeakMode = Literal["fixed", "layer", "neuron", "clip"]
ThresholdMode = Literal["fixed", "buffer", "learn"]
InitMode = Literal["constant", "uniform"]
LEAK_MODES: tuple[str, ...] = ("fixed", "layer", "neuron", "clip")
THRESHOLD_MODES: tuple[str, ...] = ("fixed", "buffer", "learn")
TickFn = Callable[[torch.Tensor, Any, int], tuple[torch.Tensor, Any]]


def _full_precision(current: torch.Tensor) -> torch.Tensor:
    """Half-precision input currents (a bfloat16-autocast matmul's output) as float32: neuron
    states integrate in float32 even when the synapses multiply in bfloat16 (``run.precision``);
    the 0/1 spikes the neuron emits are exact in either."""
    if current.dtype in (torch.bfloat16, torch.float16):
        return current.float()
    return current


class SpikingNeuron(nn.Module):
    """Base class: ``step``, multi-step ``forward`` and ``init_state`` over :meth:`tick_fn`.

    Subclasses set ``state_type`` (the NamedTuple of their state) and implement
    :meth:`tick_fn`, which returns ``(current, state, tick) -> (output, state)`` with the layer's
    parameters bound once (so a learnable leak is computed once for all T ticks). Currents in
    bfloat16 or float16 are integrated in float32.
    """

    state_type: type = LIFState
    kind: str = ""
    #: Run :meth:`forward`'s tick loop through ``torch.compile`` (:func:`compile_neuron_loops`).
    compiled: bool = False
    #: Whether the update ignores the tick index (False where tick 0 starts a decision, as the
    #: conversion neurons'), so consecutive one-tick decisions may run as one multi-tick call.
    tick_independent: bool = True

    def __init__(self, surrogate: Surrogate | None = None, size: int | None = None) -> None:
        super().__init__()
        self.surrogate = surrogate if surrogate is not None else Surrogate()
        self.size = size

    def tick_fn(self) -> TickFn:
        """The pure neuron step ``(current, state, tick) -> (output, state)`` with this
        module's parameters bound (:mod:`spikerl.snn.functional`)."""
        raise NotImplementedError

    def step(
        self, current: torch.Tensor, state: Any = None, tick: int = 0
    ) -> tuple[torch.Tensor, Any]:
        """One tick; ``state=None`` is the zero state."""
        self._check_width(current)
        return self.tick_fn()(_full_precision(current), state, tick)

    def forward(self, currents: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """Run all ``T`` ticks of ``currents [T, B, N]``; returns ``(outputs [T, B, N], state)``."""
        self._check_width(currents)
        currents = _full_precision(currents)
        if self.compiled:
            return _compiled_loop(self)(currents, state)
        return self._tick_loop(currents, state)

    def _check_width(self, current: torch.Tensor) -> None:
        """A layer of ``size`` neurons takes ``size`` input currents (scalar constants would
        otherwise broadcast over any width without a word)."""
        if self.size is not None and current.shape[-1] != self.size:
            raise StateShapeError(
                f"{type(self).__name__} of {self.size} neurons got currents of shape "
                f"{tuple(current.shape)}; the last dimension must be {self.size}"
            )

    def _tick_loop(self, currents: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        return unroll(self.tick_fn(), currents, state, with_tick=True)

    def forward_recording(
        self, currents: torch.Tensor, state: Any = None
    ) -> tuple[torch.Tensor, Any, torch.Tensor]:
        """:meth:`forward` plus the membrane potential after every tick ``[T, B, N]``."""
        currents = _full_precision(currents)
        return unroll_recording(self.tick_fn(), currents, state, self.membrane, with_tick=True)

    @staticmethod
    def membrane(state: Any) -> torch.Tensor:
        """The membrane potential of a state."""
        return state.v

    def init_state(
        self,
        batch: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Any:
        """The zero state ``[batch, size]`` (every field) of this layer."""
        if self.size is None:
            raise ValueError(f"{type(self).__name__} needs size=<neurons> for init_state")
        zeros = torch.zeros(batch, self.size, device=device, dtype=dtype)
        return self.state_type(*(zeros.clone() for _ in self.state_type._fields))

    def neuron_parameters(self) -> dict[str, Any]:
        """The constants of this layer as plain values (floats, strings, detached tensors)."""
        raise NotImplementedError


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _plain(value: torch.Tensor | float) -> torch.Tensor | float:
    return value.detach().clone() if isinstance(value, torch.Tensor) else float(value)


_COMPILED_TICK_LOOP: Callable[..., Any] | None = None


def _compiled_loop(neuron: SpikingNeuron) -> Callable[..., Any]:
    """The compiled tick loop bound to ``neuron``: one ``torch.compile`` of the unbound method
    for the process (dynamo keeps one guarded graph per module, shape and grad mode), so no
    compiled object holds on to a module."""
    global _COMPILED_TICK_LOOP
    if _COMPILED_TICK_LOOP is None:
        _COMPILED_TICK_LOOP = torch.compile(SpikingNeuron._tick_loop, dynamic=False)
    return lambda currents, state: _COMPILED_TICK_LOOP(neuron, currents, state)


def cxx_compiler() -> str | None:
    """The C++ compiler torch.compile's CPU backend would use, if one is installed."""
    import os
    import shutil

    candidates = [os.environ.get("CXX", ""), "g++", "c++", "clang++"]
    return next((path for c in candidates if c and (path := shutil.which(c))), None)


def compile_neuron_loops(module: nn.Module, enabled: bool = True) -> int:
    """Run the T-tick loop of every spiking layer in ``module`` through ``torch.compile``
    (``enabled=False`` returns them to eager); returns the number of layers changed.

    Inductor fuses each tick's element-wise chain (leak, reset, integrate, threshold) and its
    backward into single loops. The compiled loops compute what the eager ones do, the same
    operations (tested: spikes equal, states and gradients within 1e-6); each new module, input
    shape, grad mode or surrogate slope compiles once more (seconds each, at the first call),
    and past ``torch._dynamo.config.cache_size_limit`` variants the loop falls back to eager.
    Needs a C++ compiler on CPU (:func:`cxx_compiler`). Copies of the module
    (``copy.deepcopy``, e.g. a target actor) keep the setting and compile their own loops.
    """
    neurons = [m for m in module.modules() if isinstance(m, SpikingNeuron)]
    for neuron in neurons:
        neuron.compiled = enabled
    return len(neurons)


class LIF(SpikingNeuron):
    r"""Leaky integrate-and-fire neuron; see :func:`~spikerl.snn.functional.lif_step`.

    Args:
        decay: membrane leak factor per tick :math:`\beta`; 0.75 in the proxy-target actor.
        v_th: firing threshold :math:`\vartheta`; 0.5 in the proxy-target actor.
        reset: ``hard`` (to 0), ``soft`` (subtract :math:`\vartheta`, leaked) or
            ``soft_detached`` (subtract :math:`\vartheta\,\mathrm{sg}(S)` after the leak,
            arXiv 2510.24461 Sec. 1).
        leak: ``fixed`` (the float ``decay``); ``layer`` (one learnable ``sigmoid(w)``, PLIF);
            ``neuron`` (one ``sigmoid(w_i)`` per neuron); or ``clip`` (one ``clip(beta_i, 0, 1)``
            per neuron, arXiv 2510.24461 Sec. 1).
        threshold: ``fixed`` (the float ``v_th``); ``buffer`` (a per-neuron registered buffer,
            e.g. calibrated by conversion; saved and moved by ``.to()``); or ``learn`` (a
            per-neuron parameter, not clamped).
        init: initial value of per-neuron ``clip`` leaks and ``learn`` thresholds: ``constant``
            (``decay`` and ``v_th``) or ``uniform`` (U(0, 1), as arXiv 2510.24461).
        size: number of neurons (needed by per-neuron modes and :meth:`init_state`).
    """

    state_type = LIFState
    kind = "lif"
    #: Run :meth:`forward` in the C kernel of :mod:`spikerl.snn.kernel` where it applies
    #: (``False``: always the eager tick loop, the reference it is tested against).
    kernel: bool = True

    def __init__(
        self,
        decay: float = 0.75,
        v_th: float = 0.5,
        reset: ResetMode = "hard",
        leak: LeakMode = "fixed",
        threshold: ThresholdMode = "fixed",
        init: InitMode = "constant",
        size: int | None = None,
        surrogate: Surrogate | None = None,
    ) -> None:
        super().__init__(surrogate, size)
        _check_choice("reset", reset, RESET_MODES)
        _check_choice("leak", leak, LEAK_MODES)
        _check_choice("threshold", threshold, THRESHOLD_MODES)
        _check_choice("init", init, ("constant", "uniform"))
        if (leak in ("neuron", "clip") or threshold != "fixed") and size is None:
            raise ValueError(f"leak={leak!r}, threshold={threshold!r} need size=<neurons>")
        if leak in ("layer", "neuron") and not 0.0 < decay < 1.0:
            raise ValueError(f"a sigmoid leak needs decay in (0, 1), got {decay}")
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"decay must be in [0, 1], got {decay}")
        self.reset, self.leak = reset, leak
        self._init_leak(leak, decay, init, size)
        self._init_threshold(threshold, v_th, init, size)

    def _init_leak(self, leak: str, decay: float, init: str, size: int | None) -> None:
        if leak == "fixed":
            self.decay_value = decay
        elif leak == "clip":
            start = torch.rand(size) if init == "uniform" else torch.full((size,), float(decay))
            self.beta = nn.Parameter(start)
        else:
            shape = (size,) if leak == "neuron" else ()
            self.leak_logit = nn.Parameter(torch.full(shape, _logit(decay)))

    def _init_threshold(self, threshold: str, v_th: float, init: str, size: int | None) -> None:
        self.threshold_mode = threshold
        if threshold == "fixed":
            self.v_th = v_th
            return
        start = torch.full((size,), float(v_th))
        if threshold == "buffer":
            self.register_buffer("v_th", start)
        else:
            self.v_th = nn.Parameter(torch.rand(size) if init == "uniform" else start)

    @property
    def decay(self) -> torch.Tensor | float:
        """The leak factor: fixed, ``sigmoid(leak_logit)`` or ``clip(beta, 0, 1)``."""
        if self.leak == "fixed":
            return self.decay_value
        if self.leak == "clip":
            return self.beta.clamp(0.0, 1.0)
        return torch.sigmoid(self.leak_logit)

    def tick_fn(self) -> TickFn:
        decay, v_th, reset, spike_fn = self.decay, self.v_th, self.reset, self.surrogate

        def tick(current: torch.Tensor, state: Any, t: int) -> tuple[torch.Tensor, Any]:
            return lif_step(current, state, spike_fn, decay, v_th, reset)

        return tick

    def forward(self, currents: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """All T ticks; in the C kernel of :mod:`spikerl.snn.kernel` where it applies (the
        eager loop's spikes and states bit for bit, its gradients up to summation order),
        unless :attr:`kernel` is off or the layer is :attr:`compiled`."""
        self._check_width(currents)
        if self.kernel and not self.compiled:
            out = lif_sequence(_full_precision(currents), state, self.surrogate, self.decay,
                               self.v_th, self.reset)  # fmt: skip
            if out is not None:
                return out
        return super().forward(currents, state)

    def neuron_parameters(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "decay": _plain(self.decay),
            "v_th": _plain(self.v_th),
            "reset": self.reset,
        }


class IF(LIF):
    """Integrate-and-fire neuron: LIF without leak; soft reset by default (conversion use)."""

    kind = "if"

    def __init__(
        self,
        v_th: float = 1.0,
        reset: ResetMode = "soft",
        threshold: ThresholdMode = "fixed",
        size: int | None = None,
        surrogate: Surrogate | None = None,
    ) -> None:
        super().__init__(
            decay=1.0, v_th=v_th, reset=reset, threshold=threshold, size=size, surrogate=surrogate
        )


class PLIF(LIF):
    """Parametric LIF: one learnable leak ``sigmoid(w)`` per layer, ``w`` initialised at ln 3."""

    kind = "plif"

    def __init__(
        self,
        decay: float = 0.75,
        v_th: float = 0.5,
        size: int | None = None,
        surrogate: Surrogate | None = None,
    ) -> None:
        super().__init__(decay=decay, v_th=v_th, leak="layer", size=size, surrogate=surrogate)


class CLIF(SpikingNeuron):
    """Current-leaking LIF (PopSAN): see :func:`~spikerl.snn.functional.clif_step`."""

    state_type = CLIFState
    kind = "clif"
    #: Run :meth:`forward` as the current filter then the LIF kernel where it applies
    #: (``False``: always the eager tick loop).
    kernel: bool = True

    def __init__(
        self,
        current_decay: float = 0.5,
        decay: float = 0.75,
        v_th: float = 0.5,
        size: int | None = None,
        surrogate: Surrogate | None = None,
    ) -> None:
        super().__init__(surrogate, size)
        self.current_decay, self.decay, self.v_th = current_decay, decay, v_th

    def tick_fn(self) -> TickFn:
        def tick(current: torch.Tensor, state: Any, t: int) -> tuple[torch.Tensor, Any]:
            return clif_step(
                current, state, self.surrogate, self.current_decay, self.decay, self.v_th
            )

        return tick

    def forward(self, currents: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """All T ticks. The synaptic current :math:`I_t` does not depend on the spikes, so it
        is computed first (:func:`~spikerl.snn.functional.clif_current`) and the membrane and
        spikes run as a hard-reset LIF layer on it in the C kernel of :mod:`spikerl.snn.kernel`
        where that applies: the eager loop's spikes and states bit for bit (``decay * v * (1 -
        s)`` is ``decay * (v * (1 - s))`` for a 0/1 spike), its gradients up to summation
        order. Otherwise, or with :attr:`kernel` off, the eager tick loop."""
        self._check_width(currents)
        currents = _full_precision(currents)
        args = (self.surrogate, self.decay, self.v_th, "hard")
        if self.kernel and not self.compiled and kernel_applies(currents, state, *args):
            lif_state = None if state is None else LIFState(state.v, state.s)
            filtered = clif_current(currents, None if state is None else state.i,
                                    self.current_decay)  # fmt: skip
            out = lif_sequence(filtered, lif_state, *args)
            if out is not None:
                return out[0], CLIFState(filtered[-1], *out[1])
        return super().forward(currents, state)

    def neuron_parameters(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "current_decay": self.current_decay,
            "decay": self.decay,
            "v_th": self.v_th,
            "reset": "hard",
        }


class DN(SpikingNeuron):
    """Second-order dynamic neuron (MDC-SAN): see :func:`~spikerl.snn.functional.dn_step`."""

    state_type = DNState
    kind = "dn"
    #: Run :meth:`forward` as the input filter then the DN kernel where it applies
    #: (``False``: always the eager tick loop).
    kernel: bool = True

    def __init__(
        self, v_th: float = 0.5, size: int | None = None, surrogate: Surrogate | None = None
    ) -> None:
        super().__init__(surrogate, size)
        self.v_th = v_th

    def tick_fn(self) -> TickFn:
        def tick(current: torch.Tensor, state: Any, t: int) -> tuple[torch.Tensor, Any]:
            return dn_step(current, state, self.surrogate, v_th=self.v_th)

        return tick

    def forward(self, currents: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """All T ticks. The input filter :math:`C_t = 0.5 C_{t-1} + J_t` does not depend on the
        spikes, so it is computed first (:func:`~spikerl.snn.functional.clif_current`) and the
        second-order recurrence runs in the C kernel of :mod:`spikerl.snn.kernel`
        (:func:`~spikerl.snn.kernel.dn_sequence`) where it applies: the eager loop's spikes and
        states bit for bit, its gradients up to rounding. Otherwise, or with :attr:`kernel`
        off, the eager tick loop."""
        self._check_width(currents)
        currents = _full_precision(currents)
        if not (
            self.kernel
            and not self.compiled
            and isinstance(self.v_th, int | float)  # the DN loop takes one plain threshold
            and kernel_applies(currents, state, self.surrogate, 1.0, self.v_th, batched=False)
        ):
            return super().forward(currents, state)
        full = _state_or_zeros(DNState, currents[0], state)
        filtered = clif_current(currents, full.c, DN_CONSTANTS["current_decay"])
        thetas = tuple(DN_CONSTANTS[k] for k in ("theta_v", "theta_u", "theta_r", "theta_s"))
        spikes, v, u = dn_sequence(filtered, (full.v, full.u, full.s), self.surrogate, self.v_th,
                                   thetas)  # fmt: skip
        return spikes, DNState(filtered[-1], v[-1].clone(), u[-1].clone(), spikes[-1].clone())

    def neuron_parameters(self) -> dict[str, Any]:
        return {"kind": self.kind, "v_th": self.v_th, "reset": "dn"}


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r}; choose one of {list(allowed)}")


NEURON_BUILDERS: dict[str, type[SpikingNeuron]] = {
    "lif": LIF,
    "clif": CLIF,
    "dn": DN,
    "plif": PLIF,
    "if": IF,
}
NEURON_KINDS: tuple[str, ...] = tuple(NEURON_BUILDERS)


def make_neuron(
    kind: str, size: int | None = None, surrogate: Surrogate | None = None, **options: Any
) -> SpikingNeuron:
    """A neuron layer of ``size`` units; ``options`` override the class defaults, which are the
    proxy-target paper's constants for ``lif``, ``clif``, ``dn`` and ``plif``."""
    _check_choice("neuron", kind, NEURON_KINDS)
    return NEURON_BUILDERS[kind](size=size, surrogate=surrogate, **options)
