r"""Neurons of ANN-to-SNN conversion, with CRPI (arXiv 2601.21778; spec ``conversion.md``).

A converted layer's unit has a calibrated threshold :math:`\theta \ge 0`, which is also its spike
amplitude (weights are used unchanged). One **decision** presents the same input for its ticks
and the layer's decision estimate :math:`\bar y` approximates the ANN's ``ReLU`` output. Every
quantity restarts at the decision's first tick (``tick == 0``) except the CRPI carry, which is
computed at that tick from the state the previous decision left behind, so the zero state (an
episode start, or a row reset with :func:`~spikerl.snn.functional.reset_rows`) carries nothing.

**Models** (spec Sec. 5; ``u`` the membrane after integrating, ``o`` the output, ``m`` the net
output emitted so far in the decision):

- ``if``: :math:`v(0) = \theta/2 + c`, :math:`o = \theta` if :math:`u > \theta`; soft reset
  :math:`v = u - o`; :math:`\bar y = m(T)/T`.
- ``snm`` (signed neuron with memory): ``if`` plus :math:`o = -\theta` when :math:`u < 0` and
  :math:`m \ge \theta`, so the decision's net output never goes negative.
- ``mt`` (multi-threshold): levels :math:`\lambda_j = \theta/2^j`, ``j = 0..n-1``,
  :math:`v(0) = c`, :math:`o = \lambda_{j^*}` for the smallest :math:`j^*` with
  :math:`u \ge 0.75\lambda_{j^*}` (a graded spike: one event). ``mt_signed`` adds
  :math:`-\lambda_{j^*}` for :math:`u \le -0.75\lambda_{j^*}` and :math:`m \ge \lambda_{j^*}`.
- ``dc`` and ``dc-mt`` (differential coding): a priming tick ``t = 0`` stores the input
  :math:`x(0)`, then for ``t = 1..T``
  :math:`u = v + (x(t) - x(0)) + X(t-1) - Y(t-1)`, the signed ``if`` (``dc``) or signed ``mt``
  (``dc-mt``) rule gated by :math:`t\,Y(t-1)`,
  :math:`X(t) = X(t-1) + (x(t) - x(0))/t`, :math:`Y(t) = Y(t-1) + o(t)/t`,
  :math:`\bar y = Y(T)`; invariant :math:`v(t) = v(0) + t\,(X(t) - Y(t))`.

**CRPI** (Sec. 6): with :math:`\alpha \in [0, 1]`, the residual of the finished decision
:math:`r = \max(v(T) - v(0), -T\bar y)` becomes the next decision's carry
:math:`c = \mathrm{clip}(\alpha r, -\lambda_{min}/2, \lambda_{min}/2)`, :math:`\lambda_{min}`
= :math:`\theta` for IF-type firing and :math:`\theta/2^{n-1}` for MT-type. For ``if`` this is the
reference code's rule; its extension to ``snm``, ``mt`` and ``dc`` is spikerl's [project] (the
paper's variants are not public): only the membrane residual is carried. ``alpha = 0`` is plain
conversion bit for bit.

**Threshold zero** (Sec. 5.5): a unit with :math:`\theta = 0` emits exactly 0 (its "spikes" have
amplitude 0 and are not events), gets carry 0, and nothing is ever divided by :math:`\theta`.

Firing compares strictly for IF-type rules (``u > theta``, as the reference IF) and with ``>=``
for MT-type rules (as DCGS); the references differ only at exact ties. These neurons have no
surrogate gradient: conversion never trains them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from .functional import _state_or_zeros
from .layers import SpikingNeuron, TickFn

__all__ = [
    "CONVERSION_MODELS",
    "ConversionNeuron",
    "MAX_LEVELS",
    "MAX_TIMESTEPS",
    "DCState",
    "RateState",
    "crpi_carry",
    "dc_step",
    "check_conversion_settings",
    "if_fire",
    "mt_fire",
    "mt_table",
    "rate_step",
]

CONVERSION_MODELS: tuple[str, ...] = ("if", "snm", "mt", "mt_signed", "dc", "dc-mt")
MT_LEVELS = 8
FireFn = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]


class RateState(NamedTuple):
    """Rate models: membrane ``v``, the decision's start potential ``v0`` and net output ``m``."""

    v: torch.Tensor
    v0: torch.Tensor
    m: torch.Tensor


class DCState(NamedTuple):
    """Differential coding: membrane ``v``, start ``v0``, priming input ``x0``, input estimate
    ``X`` and output estimate ``Y``."""

    v: torch.Tensor
    v0: torch.Tensor
    x0: torch.Tensor
    X: torch.Tensor
    Y: torch.Tensor


def if_fire(u: torch.Tensor, theta: torch.Tensor, gate: torch.Tensor | None) -> torch.Tensor:
    r"""IF rule: :math:`+\theta` if :math:`u > \theta`; with a ``gate`` (signed), :math:`-\theta`
    if :math:`u < 0` and :math:`\mathrm{gate} \ge \theta`; else 0 (masks times theta: no
    division, so theta = 0 units emit exactly 0)."""
    out = theta * (u > theta)
    if gate is None:
        return out
    return out - theta * ((u < 0) & (gate >= theta))


def mt_table(levels: int, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """``[0, 2^-(n-1), ..., 1/2, 1]``: 0, then the levels over theta, smallest first."""
    powers = torch.pow(2.0, -torch.arange(levels - 1, -1, -1, dtype=dtype, device=device))
    return torch.cat([torch.zeros(1, dtype=dtype, device=device), powers])


_FLOAT_BITS = {torch.float32: (torch.int32, 23, 127), torch.float64: (torch.int64, 52, 1023)}
EXPONENT_FORM_FROM = 4096  # elements; below, a table lookup (fewer, smaller ops) is faster


def _largest_level(x: torch.Tensor, table: torch.Tensor, scale: float) -> torch.Tensor:
    r"""The largest level :math:`2^{-j}` of ``table`` (:func:`mt_table`, :math:`j = 0..n-1`)
    with :math:`x \ge s \cdot 2^{-j}`, 0 where there is none, for :math:`s \in [0.5, 1]`;
    exact either way it is computed.

    Small tensors (and dtypes other than float32/float64): binary search of :math:`s \cdot`
    ``table`` and a gather. Large ones: with :math:`x = m \cdot 2^e` (``frexp``, :math:`0.5
    \le m < 1`) the largest power :math:`p` with :math:`x \ge s p` is :math:`2^e` if
    :math:`m \ge s`, else :math:`2^{e-1}` (which always qualifies); clamped to
    :math:`[2^{1-n}, 1]` and written straight into the float's exponent bits, it costs a few
    element-wise operations instead of a search (1.6x faster at 65k elements on this CPU)."""
    levels = table.numel() - 1
    if x.numel() < EXPONENT_FORM_FROM or x.dtype not in _FLOAT_BITS:
        return table[torch.bucketize(x, scale * table[1:], right=True)]
    mantissa, exponent = torch.frexp(x)
    power = (exponent - (mantissa < scale).to(exponent.dtype)).clamp_(1 - levels, 0)
    int_type, shift, bias = _FLOAT_BITS[x.dtype]
    value = ((power.to(int_type) + bias) << shift).view(x.dtype)
    return torch.where(x >= scale * 2.0 ** (1 - levels), value, 0.0)


def mt_fire(
    u: torch.Tensor,
    theta: torch.Tensor,
    inv_theta: torch.Tensor,
    table: torch.Tensor,
    gate: torch.Tensor | None,
) -> torch.Tensor:
    r"""Multi-threshold rule, levels :math:`\lambda_j = \theta/2^j` (``table`` from
    :func:`mt_table`, ``inv_theta`` = :math:`1/\theta`, 0 where :math:`\theta = 0`): the
    largest level :math:`\lambda_{j^*}` with :math:`u \ge 0.75\lambda_{j^*}`; with a
    ``gate`` (signed) and no positive level firing, :math:`-\lambda_{j^*}` for the smallest
    :math:`j^*` with :math:`u \le -0.75\lambda_{j^*}` and :math:`\mathrm{gate} \ge
    \lambda_{j^*}`; else 0. Units with :math:`\theta = 0` emit 0.

    Closed form instead of a loop over levels: on :math:`r = u/\theta` the level comes from
    :func:`_largest_level`; the negative level is the smaller of the level :math:`-r` allows
    and the level the gate allows (both sets of levels are closed downwards). Scaling by
    :math:`1/\theta` can move a value lying exactly on a boundary by one rounding step, so
    results can differ from the comparison form only at such exact ties (where the reference
    implementations differ too, spec Sec. 5)."""
    ratio = u * inv_theta
    fired = _largest_level(ratio, table, 0.75)
    if gate is None:
        return theta * fired
    below = _largest_level(-ratio, table, 0.75)
    allowed = _largest_level(gate * inv_theta, table, 1.0)
    return theta * torch.where(fired > 0, fired, -torch.minimum(below, allowed))


def crpi_carry(
    residual: torch.Tensor, alpha: float | torch.Tensor, half_level: torch.Tensor
) -> torch.Tensor:
    r"""CRPI carry :math:`c = \mathrm{clip}(\alpha r, -\lambda_{min}/2, +\lambda_{min}/2)`."""
    return torch.clamp(alpha * residual, -half_level, half_level)


def rate_step(
    current: torch.Tensor,
    state: RateState | None,
    tick: int,
    fire: FireFn,
    v_init: torch.Tensor,
    alpha: float | torch.Tensor,
    half_level: torch.Tensor,
) -> tuple[torch.Tensor, RateState]:
    r"""One tick of a rate-coded conversion neuron (``if``, ``snm``, ``mt``).

    At ``tick == 0`` the decision starts: :math:`v(0) = v_{init} + c` with the CRPI carry of the
    previous decision's residual :math:`r = \max(v - v_0, -m)` and :math:`m = 0`. Then
    :math:`u = v + I`, :math:`o = \mathrm{fire}(u, m)`, :math:`v = u - o`, :math:`m = m + o`.
    """
    state = _state_or_zeros(RateState, current, state)
    v, v0, m = state
    if tick == 0:
        carry = crpi_carry(torch.maximum(v - v0, -m), alpha, half_level)
        v = v_init + carry
        v0, m = v, torch.zeros_like(m)
    u = v + current
    out = fire(u, m)
    return out, RateState(u - out, v0, m + out)


def dc_step(
    current: torch.Tensor,
    state: DCState | None,
    tick: int,
    fire: FireFn,
    v_init: torch.Tensor,
    alpha: float | torch.Tensor,
    half_level: torch.Tensor,
    timesteps: int,
) -> tuple[torch.Tensor, DCState]:
    r"""One tick of a differential-coding neuron (``dc``, ``dc-mt``); ``tick == 0`` is the
    priming step (``timesteps`` T ticks follow it).

    Priming: carry from :math:`r = \max(v(T) - v(0), -T\,Y(T))`, :math:`v(0) = v_{init} + c`,
    :math:`X(0) = x(0)`, :math:`Y(0) = 0`, emit 0. Tick ``t >= 1``: module docstring."""
    state = _state_or_zeros(DCState, current, state)
    v, v0, x0, X, Y = state
    if tick == 0:
        carry = crpi_carry(torch.maximum(v - v0, -timesteps * Y), alpha, half_level)
        v = v_init + carry
        return torch.zeros_like(current), DCState(v, v, current, current, torch.zeros_like(Y))
    delta = current - x0
    u = v + delta + X - Y
    out = fire(u, tick * Y)
    return out, DCState(u - out, v0, x0, X + delta / tick, Y + out / tick)


#: The most ticks per decision a converted layer takes (a decision of T ticks costs T forward
#: passes; beyond this a conversion or an evaluation would run for hours).
MAX_TIMESTEPS = 4096
#: The most MT levels: the smallest level is theta / 2**(n-1), and beyond 2**-31 it is below
#: what float32 membranes resolve.
MAX_LEVELS = 32


def check_conversion_settings(
    model: str, timesteps: int, crpi: float | torch.Tensor, levels: int
) -> None:
    """Raise ValueError naming the first setting outside its allowed values."""
    if model not in CONVERSION_MODELS:
        raise ValueError(f"neuron={model!r}; choose one of {list(CONVERSION_MODELS)}")
    if not 1 <= timesteps <= MAX_TIMESTEPS:
        raise ValueError(f"timesteps must be in [1, {MAX_TIMESTEPS}], got {timesteps}")
    alphas = torch.as_tensor(crpi)
    if not bool(((alphas >= 0) & (alphas <= 1)).all()):
        raise ValueError(f"crpi alpha must be in [0, 1], got {crpi}")
    if not 1 <= levels <= MAX_LEVELS:
        raise ValueError(f"levels must be in [1, {MAX_LEVELS}], got {levels}")


class ConversionNeuron(SpikingNeuron):
    """A layer of converted units (module docstring): per-unit thresholds ``theta`` are a
    registered buffer (saved, moved by ``.to()``, overwritten by calibration).

    Args:
        model: one of :data:`CONVERSION_MODELS`.
        size: units in the layer.
        timesteps: T ticks per decision after the priming tick of the DC models.
        crpi: CRPI's alpha in [0, 1] (0: plain conversion); or a ``[B, 1]`` tensor giving each
            row of a batch its own alpha (a grid evaluates several alphas in one batch).
        levels: n, MT levels per unit (8).
        theta: initial thresholds ``[size]`` (default ones; calibration replaces them).
    """

    kind = "conversion"
    tick_independent = False  # tick 0 starts a decision (and applies the CRPI carry)

    def __init__(
        self,
        model: str,
        size: int,
        timesteps: int,
        crpi: float | torch.Tensor = 0.0,
        levels: int = MT_LEVELS,
        theta: torch.Tensor | None = None,
    ) -> None:
        super().__init__(None, size)
        check_conversion_settings(model, timesteps, crpi, levels)
        self.model, self.timesteps, self.crpi, self.levels = model, timesteps, crpi, levels
        self.state_type = DCState if model.startswith("dc") else RateState
        start = torch.ones(size) if theta is None else theta.detach().clone().float()
        if start.shape != (size,) or bool((start < 0).any()) or not bool(start.isfinite().all()):
            raise ValueError(f"theta must be {size} finite values >= 0")
        self.register_buffer("theta", start)

    @property
    def multi_threshold(self) -> bool:
        return self.model in ("mt", "mt_signed", "dc-mt")

    @property
    def signed(self) -> bool:
        return self.model in ("snm", "mt_signed", "dc", "dc-mt")

    @property
    def ticks(self) -> int:
        """Ticks one decision takes: T, plus the priming tick of the DC models."""
        return self.timesteps + int(self.model.startswith("dc"))

    def level_values(self) -> torch.Tensor:
        """MT levels ``[n, size]``: ``theta / 2**j``, largest first."""
        table = mt_table(self.levels, self.theta.dtype, self.theta.device)
        return table[1:].flip(0)[:, None] * self.theta

    def tick_fn(self) -> TickFn:
        theta, signed = self.theta, self.signed
        if self.multi_threshold:
            table = mt_table(self.levels, theta.dtype, theta.device)
            inv_theta = torch.where(theta > 0, 1.0 / theta.clamp_min(1e-30), 0.0)
            v_init, half = torch.zeros_like(theta), theta * table[1] / 2

            def fire(u: torch.Tensor, gate: torch.Tensor | None) -> torch.Tensor:
                return mt_fire(u, theta, inv_theta, table, gate if signed else None)
        else:
            v_init, half = theta / 2, theta / 2

            def fire(u: torch.Tensor, gate: torch.Tensor | None) -> torch.Tensor:
                return if_fire(u, theta, gate if signed else None)

        alpha, timesteps = self.crpi, self.timesteps
        if self.state_type is DCState:

            def tick(current: torch.Tensor, state: Any, t: int) -> tuple[torch.Tensor, Any]:
                return dc_step(current, state, t, fire, v_init, alpha, half, timesteps)
        else:

            def tick(current: torch.Tensor, state: Any, t: int) -> tuple[torch.Tensor, Any]:
                return rate_step(current, state, t, fire, v_init, alpha, half)

        return tick

    def decision_estimate(self, outputs: torch.Tensor, state: Any) -> torch.Tensor:
        r""":math:`\bar y` of the decision just run from its outputs ``[ticks, B, N]``: the mean
        output (rate models) or :math:`Y(T)` (DC)."""
        return state.Y if self.state_type is DCState else outputs.mean(dim=0)

    def neuron_parameters(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "model": self.model,
            "timesteps": self.timesteps,
            "crpi": self.crpi.tolist() if isinstance(self.crpi, torch.Tensor) else float(self.crpi),
            "levels": self.levels,
            "theta": self.theta.detach().clone(),
        }
