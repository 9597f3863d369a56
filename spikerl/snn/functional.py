r"""Pure neuron step functions with explicit state.

Every neuron is a function ``step(current, state, ...) -> (spikes, new_state)`` that mutates
nothing; ``state=None`` means "fresh state" (zeros shaped like ``current``). States are
NamedTuples of tensors. Time is discrete: one call is one tick, currents are dimensionless
(the input current :math:`J_t = W x_t + b` of the layer, in units of the membrane potential).

The reset is written in the *delayed* form of the proxy-target reference code (arXiv
2505.24161, Sec. 2 of ``proxy-target.md``): the spike :math:`S_{t-1}` of the previous tick is
kept in the state and applied at the start of the next tick, which equals resetting at once and
lets gradients flow through the reset:

.. math::

    \text{LIF, hard:}\quad V_t &= \beta\, V_{t-1} (1 - S_{t-1}) + J_t \\
    \text{LIF, soft:}\quad V_t &= \beta\, (V_{t-1} - \vartheta S_{t-1}) + J_t \\
    S_t &= H(V_t - \vartheta)

with leak (decay) :math:`\beta \in (0, 1]` (IF: :math:`\beta = 1`) and threshold
:math:`\vartheta`. CLIF adds a leaky synaptic current, DN is the second-order dynamic neuron of
MDC-SAN (Zhang et al., AAAI 2022); see their functions.

:func:`unroll` runs one step function over a ``[T, ...]`` sequence of currents: the multi-step
mode in which a whole layer runs over all T ticks before the next layer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch

__all__ = [
    "CLIFState",
    "DNState",
    "LIFState",
    "clif_step",
    "detach_state",
    "dn_step",
    "if_step",
    "lif_step",
    "unroll",
]

SpikeFn = Callable[[torch.Tensor], torch.Tensor]
Tensorish = torch.Tensor | float


class LIFState(NamedTuple):
    """Membrane potential ``v`` and last spikes ``s``, each shaped like the input current."""

    v: torch.Tensor
    s: torch.Tensor


class CLIFState(NamedTuple):
    """Synaptic current ``i``, membrane potential ``v`` and last spikes ``s``."""

    i: torch.Tensor
    v: torch.Tensor
    s: torch.Tensor


class DNState(NamedTuple):
    """Filtered input ``c``, membrane ``v``, adaptation ``u`` and last spikes ``s``."""

    c: torch.Tensor
    v: torch.Tensor
    u: torch.Tensor
    s: torch.Tensor


def _zeros(cls: type, x: torch.Tensor) -> Any:
    return cls(*(torch.zeros_like(x) for _ in cls._fields))


def lif_step(
    current: torch.Tensor,
    state: LIFState | None,
    spike_fn: SpikeFn,
    decay: Tensorish = 0.75,
    v_th: Tensorish = 0.5,
    soft_reset: bool = False,
) -> tuple[torch.Tensor, LIFState]:
    r"""One tick of a leaky integrate-and-fire neuron.

    :math:`V_t = \beta\,\mathrm{reset}(V_{t-1}, S_{t-1}) + J_t`, :math:`S_t = H(V_t - \vartheta)`,
    with hard reset to 0 (``reset = V (1 - S)``) or soft reset by subtraction
    (``reset = V - \vartheta S``). ``decay`` and ``v_th`` may be floats or tensors that broadcast
    against ``current`` (per-layer or per-neuron learnable values).
    """
    if state is None:
        state = _zeros(LIFState, current)
    v_prev = state.v - v_th * state.s if soft_reset else state.v * (1.0 - state.s)
    v = decay * v_prev + current
    s = spike_fn(v - v_th)
    return s, LIFState(v, s)


def if_step(
    current: torch.Tensor,
    state: LIFState | None,
    spike_fn: SpikeFn,
    v_th: Tensorish = 1.0,
    soft_reset: bool = True,
) -> tuple[torch.Tensor, LIFState]:
    """One tick of an integrate-and-fire neuron: :func:`lif_step` without leak (decay 1)."""
    return lif_step(current, state, spike_fn, decay=1.0, v_th=v_th, soft_reset=soft_reset)


def clif_step(
    current: torch.Tensor,
    state: CLIFState | None,
    spike_fn: SpikeFn,
    current_decay: float = 0.5,
    decay: float = 0.75,
    v_th: float = 0.5,
) -> tuple[torch.Tensor, CLIFState]:
    r"""One tick of the current-leaking LIF neuron of PopSAN (arXiv 2010.09635).

    :math:`I_t = \gamma I_{t-1} + J_t`, :math:`V_t = \beta V_{t-1}(1 - S_{t-1}) + I_t`,
    :math:`S_t = H(V_t - \vartheta)`; defaults :math:`\gamma = 0.5`, :math:`\beta = 0.75`,
    :math:`\vartheta = 0.5`.
    """
    if state is None:
        state = _zeros(CLIFState, current)
    i = current_decay * state.i + current
    v = decay * state.v * (1.0 - state.s) + i
    s = spike_fn(v - v_th)
    return s, CLIFState(i, v, s)


def dn_step(
    current: torch.Tensor,
    state: DNState | None,
    spike_fn: SpikeFn,
    current_decay: float = 0.5,
    v_th: float = 0.5,
    theta_v: float = -0.172,
    theta_u: float = 0.529,
    theta_r: float = 0.021,
    theta_s: float = 0.132,
) -> tuple[torch.Tensor, DNState]:
    r"""One tick of the second-order dynamic neuron (DN) of MDC-SAN.

    Constants and order follow the proxy-target reference code (the paper's Eq. 20 has typos):

    .. math::

        C_t &= \gamma C_{t-1} + J_t \\
        V' &= V_{t-1}(1 - S_{t-1}) + \theta_r S_{t-1},\quad U' = U_{t-1} + \theta_s S_{t-1} \\
        V_t &= V' + (V'^2 - V' - U' + C_t),\quad U_t = U' + \theta_v V' + \theta_u U' \\
        S_t &= H(V_t - \vartheta)
    """
    if state is None:
        state = _zeros(DNState, current)
    c = current_decay * state.c + current
    v_reset = state.v * (1.0 - state.s) + theta_r * state.s
    u_reset = state.u + theta_s * state.s
    v = v_reset + (v_reset * v_reset - v_reset - u_reset + c)
    u = u_reset + (theta_v * v_reset + theta_u * u_reset)
    s = spike_fn(v - v_th)
    return s, DNState(c, v, u, s)


def unroll(
    step: Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]],
    currents: torch.Tensor,
    state: Any = None,
) -> tuple[torch.Tensor, Any]:
    """Run ``step`` over the leading time axis of ``currents`` ``[T, ...]``.

    Returns the spikes ``[T, ...]`` and the state after the last tick. The step body is the only
    place where neuron dynamics are written; this loop only threads the state.
    """
    outputs = []
    for current in currents:
        out, state = step(current, state)
        outputs.append(out)
    return torch.stack(outputs), state


def detach_state(state: Any) -> Any:
    """Cut the autograd history of a (nested) state: truncated backpropagation through time."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.detach()
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        return type(state)(*(detach_state(s) for s in state))
    if isinstance(state, tuple | list):
        return type(state)(detach_state(s) for s in state)
    raise TypeError(f"cannot detach state of type {type(state).__name__}")
