"""Thin ``nn.Module`` wrappers over the neuron steps of :mod:`spikerl.snn.functional`.

A module holds only parameters (leaks, thresholds) and its
:class:`~spikerl.snn.surrogate.Surrogate`; it never stores membrane state.
``step(current, state)`` runs one tick; ``forward(currents, state=None)`` runs a ``[T, B, N]``
sequence and returns ``(spikes [T, B, N], state)``. Passing the returned state back in carries
it across calls; passing ``None`` resets it.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Literal

import torch
from torch import nn

from .functional import clif_step, dn_step, lif_step, unroll
from .surrogate import Surrogate

__all__ = ["CLIF", "DN", "IF", "LIF", "PLIF", "SpikingNeuron", "make_neuron"]

LeakMode = Literal["fixed", "layer", "neuron"]


class SpikingNeuron(nn.Module):
    """Base class: multi-step ``forward`` over the single-tick ``step`` of a subclass."""

    def __init__(self, surrogate: Surrogate | None = None) -> None:
        super().__init__()
        self.surrogate = surrogate if surrogate is not None else Surrogate()

    def step(self, current: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        raise NotImplementedError

    def forward(self, currents: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """Run all ``T`` ticks of ``currents [T, B, N]``; returns ``(spikes [T, B, N], state)``."""
        return unroll(self.step, currents, state)


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


class LIF(SpikingNeuron):
    """Leaky integrate-and-fire neuron (hard or soft reset), optional learnable leak/threshold.

    Args:
        decay: membrane leak factor per tick, in (0, 1]; 0.75 in the proxy-target actor.
        v_th: firing threshold; 0.5 in the proxy-target actor.
        soft_reset: subtract the threshold on a spike instead of resetting to 0.
        learn_leak: ``"fixed"``; ``"layer"`` (one learnable leak ``sigmoid(w)`` for the layer,
            i.e. PLIF); or ``"neuron"`` (one per neuron, needs ``size``).
        learn_threshold: one learnable threshold per neuron (needs ``size``).
        size: number of neurons, for per-neuron parameters.
    """

    def __init__(
        self,
        decay: float = 0.75,
        v_th: float = 0.5,
        soft_reset: bool = False,
        learn_leak: LeakMode = "fixed",
        learn_threshold: bool = False,
        size: int | None = None,
        surrogate: Surrogate | None = None,
    ) -> None:
        super().__init__(surrogate)
        if learn_leak not in ("fixed", "layer", "neuron"):
            raise ValueError(f"learn_leak={learn_leak!r}; choose 'fixed', 'layer' or 'neuron'")
        if (learn_leak == "neuron" or learn_threshold) and size is None:
            raise ValueError("per-neuron learnable leak or threshold needs size=<neurons>")
        if not 0.0 < decay <= 1.0 or (learn_leak != "fixed" and decay >= 1.0):
            raise ValueError(f"decay must be in (0, 1] (below 1 when learnable), got {decay}")
        self.soft_reset = soft_reset
        self.learn_leak = learn_leak
        shape = (size,) if learn_leak == "neuron" else ()
        if learn_leak == "fixed":
            self.decay_value = decay
        else:
            self.leak_logit = nn.Parameter(torch.full(shape, _logit(decay)))
        if learn_threshold:
            self.v_th = nn.Parameter(torch.full((size,), float(v_th)))
        else:
            self.v_th = v_th

    @property
    def decay(self) -> torch.Tensor | float:
        """The leak factor: fixed, or ``sigmoid(leak_logit)``."""
        return self.decay_value if self.learn_leak == "fixed" else torch.sigmoid(self.leak_logit)

    def _tick(self, decay: torch.Tensor | float) -> Any:
        """The single-tick step with this layer's parameters and the given leak."""
        return functools.partial(
            lif_step,
            spike_fn=self.surrogate,
            decay=decay,
            v_th=self.v_th,
            soft_reset=self.soft_reset,
        )

    def step(self, current: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        return self._tick(self.decay)(current, state)

    def forward(self, currents: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        return unroll(self._tick(self.decay), currents, state)  # leak computed once for all T


class IF(LIF):
    """Integrate-and-fire neuron: LIF without leak; soft reset by default (conversion use)."""

    def __init__(
        self, v_th: float = 1.0, soft_reset: bool = True, surrogate: Surrogate | None = None
    ) -> None:
        super().__init__(decay=1.0, v_th=v_th, soft_reset=soft_reset, surrogate=surrogate)


class PLIF(LIF):
    """Parametric LIF: one learnable leak ``sigmoid(w)`` per layer, ``w`` initialised at ln 3."""

    def __init__(
        self, decay: float = 0.75, v_th: float = 0.5, surrogate: Surrogate | None = None
    ) -> None:
        super().__init__(decay=decay, v_th=v_th, learn_leak="layer", surrogate=surrogate)


class CLIF(SpikingNeuron):
    """Current-leaking LIF (PopSAN): see :func:`~spikerl.snn.functional.clif_step`."""

    def __init__(
        self,
        current_decay: float = 0.5,
        decay: float = 0.75,
        v_th: float = 0.5,
        surrogate: Surrogate | None = None,
    ) -> None:
        super().__init__(surrogate)
        self.current_decay, self.decay, self.v_th = current_decay, decay, v_th

    def step(self, current: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        return clif_step(current, state, self.surrogate, self.current_decay, self.decay, self.v_th)


class DN(SpikingNeuron):
    """Second-order dynamic neuron (MDC-SAN): see :func:`~spikerl.snn.functional.dn_step`."""

    def __init__(self, v_th: float = 0.5, surrogate: Surrogate | None = None) -> None:
        super().__init__(surrogate)
        self.v_th = v_th

    def step(self, current: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        return dn_step(current, state, self.surrogate, v_th=self.v_th)


def make_neuron(kind: str, surrogate: Surrogate | None = None) -> SpikingNeuron:
    """A neuron with the proxy-target paper's constants: ``lif``, ``clif``, ``dn`` or ``plif``."""
    builders = {"lif": LIF, "clif": CLIF, "dn": DN, "plif": PLIF}
    if kind not in builders:
        raise ValueError(f"unknown neuron {kind!r}; choose one of {sorted(builders)}")
    return builders[kind](surrogate=surrogate)
