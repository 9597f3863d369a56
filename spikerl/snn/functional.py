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
    \text{LIF, soft\_detached:}\quad V_t &= \beta\, V_{t-1} + J_t
        - \vartheta\,\mathrm{sg}(S_{t-1}) \\
    S_t &= H(V_t - \vartheta)

with leak (decay) :math:`\beta \in [0, 1]` (IF: :math:`\beta = 1`) and threshold
:math:`\vartheta`. ``soft`` equals subtracting the threshold at once (the subtraction leaks
with the membrane); ``soft_detached`` is the form of arXiv 2510.24461 Sec. 1 (the threshold is
subtracted after the leak and the reset indicator carries no gradient; ``sg`` = stop-gradient,
while :math:`\vartheta` still gets one). With :math:`\beta = 1` (IF) ``soft`` and
``soft_detached`` have the same forward pass. CLIF adds a leaky synaptic current, DN is the
second-order dynamic neuron of MDC-SAN (Zhang et al., AAAI 2022); see their functions.

A state passed in must have the shape of the current; a mismatch raises
:class:`StateShapeError` (it is never broadcast or silently re-created).

:func:`unroll` runs one step function over a ``[T, ...]`` sequence of currents: the multi-step
mode in which a whole layer runs over all T ticks before the next layer.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import torch

from ..errors import UsageError

__all__ = [
    "RESET_MODES",
    "CLIFState",
    "DNState",
    "DN_CONSTANTS",
    "LIFState",
    "StateShapeError",
    "clif_current",
    "clif_step",
    "detach_state",
    "dn_step",
    "if_step",
    "lif_step",
    "map_state",
    "reset_rows",
    "unroll",
    "unroll_recording",
]

SpikeFn = Callable[[torch.Tensor], torch.Tensor]
Tensorish = torch.Tensor | float
ResetMode = Literal["hard", "soft", "soft_detached"]
RESET_MODES: tuple[str, ...] = typing.get_args(ResetMode)


class StateShapeError(UsageError):
    """A neuron state does not have the shape of the input it is stepped with."""


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


def _state_or_zeros(cls: type, current: torch.Tensor, state: Any) -> Any:
    """``state``, or a fresh zero state for ``None``; a shape mismatch raises."""
    if state is None:
        return _zeros(cls, current)
    if not isinstance(state, cls):  # a plain tuple of the fields, in their order
        if len(state) != len(cls._fields):
            raise StateShapeError(
                f"a {cls.__name__} has {len(cls._fields)} fields {cls._fields}, got {len(state)}"
            )
        state = cls(*state)
    if state[0].shape != current.shape:
        raise StateShapeError(
            f"{cls.__name__} of shape {tuple(state[0].shape)} does not match the input of shape "
            f"{tuple(current.shape)}; reset the state (None or init_state) for a new batch size"
        )
    return state


def lif_step(
    current: torch.Tensor,
    state: LIFState | None,
    spike_fn: SpikeFn,
    decay: Tensorish = 0.75,
    v_th: Tensorish = 0.5,
    reset: ResetMode = "hard",
) -> tuple[torch.Tensor, LIFState]:
    r"""One tick of a leaky integrate-and-fire neuron (module docstring for the three resets).

    ``hard``: :math:`V_t = \beta V_{t-1}(1 - S_{t-1}) + J_t`; ``soft``:
    :math:`V_t = \beta (V_{t-1} - \vartheta S_{t-1}) + J_t`; ``soft_detached``:
    :math:`V_t = \beta V_{t-1} + J_t - \vartheta\,\mathrm{sg}(S_{t-1})`; then
    :math:`S_t = H(V_t - \vartheta)`. ``decay`` and ``v_th`` may be floats or tensors that
    broadcast against ``current`` (per-layer or per-neuron, fixed, calibrated or learnable).
    """
    state = _state_or_zeros(LIFState, current, state)
    if reset == "hard":
        v = decay * (state.v * (1.0 - state.s)) + current
    elif reset == "soft":
        v = decay * (state.v - v_th * state.s) + current
    elif reset == "soft_detached":
        v = decay * state.v + current - v_th * state.s.detach()
    else:
        raise ValueError(f"reset={reset!r}; choose one of {list(RESET_MODES)}")
    s = spike_fn(v - v_th)
    return s, LIFState(v, s)


def if_step(
    current: torch.Tensor,
    state: LIFState | None,
    spike_fn: SpikeFn,
    v_th: Tensorish = 1.0,
    reset: ResetMode = "soft",
) -> tuple[torch.Tensor, LIFState]:
    """One tick of an integrate-and-fire neuron: :func:`lif_step` without leak (decay 1)."""
    return lif_step(current, state, spike_fn, decay=1.0, v_th=v_th, reset=reset)


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
    state = _state_or_zeros(CLIFState, current, state)
    i = current_decay * state.i + current
    v = decay * state.v * (1.0 - state.s) + i
    s = spike_fn(v - v_th)
    return s, CLIFState(i, v, s)


def clif_current(
    currents: torch.Tensor, i0: torch.Tensor | None, current_decay: float = 0.5
) -> torch.Tensor:
    r"""The synaptic currents of a CLIF layer over T ticks, ``[T, B, N]``:
    :math:`I_t = \gamma I_{t-1} + J_t` from :math:`I_{-1}` = ``i0`` (None: zeros), the first line
    of :func:`clif_step` with the same operations. It does not depend on the spikes, so a CLIF
    layer is this filter followed by a hard-reset LIF layer driven by :math:`I_t`."""
    i = torch.zeros_like(currents[0]) if i0 is None else i0
    filtered = []
    for current in currents:
        i = current_decay * i + current
        filtered.append(i)
    return torch.stack(filtered)


#: The DN constants of :func:`dn_step` (the proxy-target reference code's).
DN_CONSTANTS = {"current_decay": 0.5, "theta_v": -0.172, "theta_u": 0.529, "theta_r": 0.021,
                "theta_s": 0.132}  # fmt: skip


def dn_step(
    current: torch.Tensor,
    state: DNState | None,
    spike_fn: SpikeFn,
    current_decay: float = DN_CONSTANTS["current_decay"],
    v_th: float = 0.5,
    theta_v: float = DN_CONSTANTS["theta_v"],
    theta_u: float = DN_CONSTANTS["theta_u"],
    theta_r: float = DN_CONSTANTS["theta_r"],
    theta_s: float = DN_CONSTANTS["theta_s"],
) -> tuple[torch.Tensor, DNState]:
    r"""One tick of the second-order dynamic neuron (DN) of MDC-SAN.

    Constants and order follow the proxy-target reference code (the paper's Eq. 20 has typos):

    .. math::

        C_t &= \gamma C_{t-1} + J_t \\
        V' &= V_{t-1}(1 - S_{t-1}) + \theta_r S_{t-1},\quad U' = U_{t-1} + \theta_s S_{t-1} \\
        V_t &= V' + (V'^2 - V' - U' + C_t),\quad U_t = U' + \theta_v V' + \theta_u U' \\
        S_t &= H(V_t - \vartheta)
    """
    state = _state_or_zeros(DNState, current, state)
    c = current_decay * state.c + current
    v_reset = state.v * (1.0 - state.s) + theta_r * state.s
    u_reset = state.u + theta_s * state.s
    v = v_reset + (v_reset * v_reset - v_reset - u_reset + c)
    u = u_reset + (theta_v * v_reset + theta_u * u_reset)
    s = spike_fn(v - v_th)
    return s, DNState(c, v, u, s)


def _loop(
    step: Callable[..., tuple[torch.Tensor, Any]],
    currents: torch.Tensor,
    state: Any,
    with_tick: bool,
    record: Callable[[Any], torch.Tensor] | None,
) -> tuple[torch.Tensor, Any, list[torch.Tensor]]:
    outputs, recorded = [], []
    for t, current in enumerate(currents):
        out, state = step(current, state, t) if with_tick else step(current, state)
        outputs.append(out)
        if record is not None:
            recorded.append(record(state))
    return torch.stack(outputs), state, recorded


def unroll(
    step: Callable[..., tuple[torch.Tensor, Any]],
    currents: torch.Tensor,
    state: Any = None,
    with_tick: bool = False,
) -> tuple[torch.Tensor, Any]:
    """Run ``step`` over the leading time axis of ``currents`` ``[T, ...]``.

    Returns the outputs ``[T, ...]`` and the state after the last tick. With ``with_tick`` the
    step is called as ``step(current, state, t)`` with the tick index ``t = 0..T-1`` of the
    decision. The step body is the only place where neuron dynamics are written; this loop only
    threads the state.
    """
    outputs, state, _ = _loop(step, currents, state, with_tick, None)
    return outputs, state


def unroll_recording(
    step: Callable[..., tuple[torch.Tensor, Any]],
    currents: torch.Tensor,
    state: Any,
    record: Callable[[Any], torch.Tensor],
    with_tick: bool = False,
) -> tuple[torch.Tensor, Any, torch.Tensor]:
    """:func:`unroll` that also returns ``record(state)`` after every tick, stacked ``[T, ...]``
    (e.g. the membrane potentials, for diagnostics and CRPI)."""
    outputs, state, recorded = _loop(step, currents, state, with_tick, record)
    return outputs, state, torch.stack(recorded)


def map_state(fn: Callable[[torch.Tensor], torch.Tensor], state: Any) -> Any:
    """Apply ``fn`` to every tensor of a (nested) state of NamedTuples, tuples and lists."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return fn(state)
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        return type(state)(*(map_state(fn, s) for s in state))
    if isinstance(state, tuple | list):
        return type(state)(map_state(fn, s) for s in state)
    raise TypeError(f"cannot map over a state of type {type(state).__name__}")


def detach_state(state: Any) -> Any:
    """Cut the autograd history of a (nested) state: truncated backpropagation through time."""
    return map_state(torch.Tensor.detach, state)


def reset_rows(state: Any, mask: torch.Tensor) -> Any:
    """A copy of ``state`` whose batch rows (axis 0) where ``mask [B]`` is True are zero.

    Used when some episodes of a batch end: their rows restart from the zero state while the
    others keep theirs. ``mask`` must be a boolean vector as long as the batch.
    """
    if mask.dtype != torch.bool or mask.dim() != 1:
        raise ValueError(f"mask must be a 1-d boolean tensor, got {mask.dtype} {tuple(mask.shape)}")

    def reset(x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != mask.shape[0]:
            raise StateShapeError(
                f"mask of {mask.shape[0]} rows does not match a state of batch {x.shape[0]}"
            )
        keep = ~mask.to(x.device).view(-1, *([1] * (x.dim() - 1)))
        return torch.where(keep, x, torch.zeros((), dtype=x.dtype, device=x.device))

    return map_state(reset, state)
