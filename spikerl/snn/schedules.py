r"""Surrogate-slope settings: fixed, stepped and return-adaptive (arXiv 2510.24461, Sec. 3).

A schedule holds the slope ``k`` of every spiking layer's surrogate
(:meth:`~spikerl.nets.spiking.SpikingNetwork.set_surrogate_slope`; the forward pass is the
same for every ``k``). The run loop calls :meth:`update` after every evaluation ``e`` (epoch
``e`` = the ``e``-th evaluation, 0 for the one before training) with its mean return, and
applies :meth:`value` until the next one.

- ``fixed``: :math:`k` constant.
- ``stepped``: a staircase of ``n`` equal stages over the run's ``E`` epochs,
  :math:`k_e = k_0 + (k_1 - k_0) \min(\lfloor e / S \rfloor, n - 1) / (n - 1)`,
  :math:`S = E / n`.
- ``adaptive`` (the paper's equation with returns normalised; spikerl's reconstruction, as the
  paper gives no scaling): :math:`s_t = \mathrm{clip}(R_t / R_\mathrm{ref}, 0, 1)`,
  :math:`\Delta s_t = s_t - s_{t-1}` (:math:`\Delta s_0 = 0`),
  :math:`m_t = \frac{1}{n_t} \sum_{i<n_t} (w_p s_{t-i} + w_d \Delta s_{t-i})` with
  :math:`n_t = \min(M, t + 1)`, and
  :math:`k_t = \mathrm{clip}(k_\mathrm{init} + G\,\mathrm{sign}(m_t) |m_t|^p, k_\min, k_\max)`,
  :math:`G = k_\max / w_p^p`. A flat return reduces to :math:`k = k_\mathrm{init} + k_\max s^3`;
  a rising return steepens ``k``, a falling one lowers it towards :math:`k_\mathrm{init}`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AdaptiveSlope", "FixedSlope", "SlopeSchedule", "SteppedSlope"]


class SlopeSchedule:
    """Interface: :meth:`value`, :meth:`update`, and a plain-data state for checkpoints."""

    def value(self) -> float:
        """The surrogate slope k to train with now."""
        raise NotImplementedError

    def update(self, epoch: int, eval_return: float | None = None) -> None:
        """Advance to epoch ``epoch`` having measured ``eval_return`` there."""

    def state_dict(self) -> dict[str, Any]:
        """What a resume needs to continue the schedule exactly (plain data)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""


@dataclass
class FixedSlope(SlopeSchedule):
    k: float

    def value(self) -> float:
        return self.k


@dataclass
class SteppedSlope(SlopeSchedule):
    """``start`` to ``end`` in ``stages`` equal steps over ``total_epochs`` epochs."""

    start: float
    end: float
    stages: int
    total_epochs: int
    epoch: int = 0

    def value(self) -> float:
        if self.stages == 1:
            return self.start
        stage_length = self.total_epochs / self.stages
        stage = min(math.floor(self.epoch / stage_length), self.stages - 1)
        return self.start + (self.end - self.start) * stage / (self.stages - 1)

    def update(self, epoch: int, eval_return: float | None = None) -> None:
        self.epoch = epoch

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])


@dataclass
class AdaptiveSlope(SlopeSchedule):
    """The return-adaptive slope (module docstring); ``history`` holds the normalised returns."""

    init: float = 2.0
    k_min: float = 1.0
    k_max: float = 100.0
    window: int = 10
    order: float = 3.0
    return_ref: float = 400.0
    weight_p: float = 0.5
    weight_d: float = 0.5
    history: list[float] = field(default_factory=list)
    k: float | None = None

    def value(self) -> float:
        return self.init if self.k is None else self.k

    def update(self, epoch: int, eval_return: float | None = None) -> None:
        if eval_return is None or not math.isfinite(eval_return):
            return
        self.history.append(min(max(eval_return / self.return_ref, 0.0), 1.0))
        self.history = self.history[-(self.window + 1) :]  # the window and one step before it
        s = self.history
        deltas = [0.0] + [b - a for a, b in zip(s[:-1], s[1:], strict=True)]
        if len(s) > self.window:  # the oldest entry only supplies the first difference
            s, deltas = s[1:], deltas[1:]
        terms = [self.weight_p * si + self.weight_d * di for si, di in zip(s, deltas, strict=True)]
        m = sum(terms) / len(terms)
        gain = self.k_max / self.weight_p**self.order
        k = self.init + gain * math.copysign(abs(m) ** self.order, m)
        self.k = min(max(k, self.k_min), self.k_max)

    def state_dict(self) -> dict[str, Any]:
        return {"history": list(self.history), "k": self.k}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = [float(x) for x in state["history"]]
        self.k = None if state["k"] is None else float(state["k"])
