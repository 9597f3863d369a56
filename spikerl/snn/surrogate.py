r"""Surrogate spike functions.

Forward is the Heaviside step :math:`S = H(x)` with ``H(x) = 1 if x > 0 else 0`` (``x`` is the
membrane potential minus the threshold). Backward replaces the Dirac delta :math:`H'(x)` by the
derivative :math:`g_\alpha(x) = f_\alpha'(x)` of a smooth step :math:`f_\alpha` that rises from
0 to 1, so these surrogates integrate to 1; the exception is ``fast_sigmoid``, which follows the
SuperSpike form of arXiv 2510.24461 (Sec. 2 of its spec): peak 1 at the threshold for every slope.
:math:`\alpha` is the slope (steepness): larger values concentrate the gradient near the
threshold.

- ``rectangular``: :math:`f = \mathrm{clip}(\alpha x + 1/2, 0, 1)`,
  :math:`g = \alpha` if :math:`|x| < 1/(2\alpha)` else 0
- ``sigmoid``: :math:`f = \sigma(\alpha x)`, :math:`g = \alpha\sigma(\alpha x)(1-\sigma(\alpha x))`
- ``fast_sigmoid``: :math:`f = x/(1+\alpha|x|)` (from :math:`-1/\alpha` to :math:`1/\alpha`),
  :math:`g = 1 / (1+\alpha|x|)^2`: peak 1 at the threshold for every slope, area :math:`2/\alpha`
- ``fast_sigmoid_normalized``: :math:`f = (1 + \alpha x/(1+\alpha|x|))/2`,
  :math:`g = \alpha / (2(1+\alpha|x|)^2)`: the same shape scaled to unit area (peak
  :math:`\alpha/2`); spikerl's ``fast_sigmoid`` before version 0.2
- ``arctan``: :math:`f = 1/2 + \arctan(\pi\alpha x/2)/\pi`,
  :math:`g = (\alpha/2) / (1 + (\pi\alpha x/2)^2)`
- ``triangle``: :math:`f` piecewise quadratic, :math:`g = \alpha\max(0, 1-\alpha|x|)`
- ``straight_through``: :math:`f = \alpha x` (unbounded), :math:`g = \alpha`

``rectangular`` with :math:`\alpha = 1` is the proxy-target paper's window (half-width 0.5,
height 1; arXiv 2505.24161, Sec. 5). ``straight_through`` is the population encoder's
pass-through gradient.

The slope is read at every call from :class:`Surrogate`, a small mutable object each layer owns,
so a schedule changes the slope during training by assigning ``surrogate.slope``; the forward
pass never depends on it.

The spike function is an :class:`torch.autograd.Function` with ``setup_context`` and a generated
vmap rule, so ``torch.func.grad``, ``vmap`` and ``functional_call`` see the surrogate gradient.
Its only fast path (a plain comparison) is taken when gradients are disabled, where there is no
gradient to lose.
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass
from typing import Any, Literal

import torch

__all__ = [
    "SURROGATE_KINDS",
    "UNIT_PEAK_KINDS",
    "Surrogate",
    "smooth_step",
    "spike",
    "surrogate_grad",
]

SurrogateKind = Literal[
    "rectangular",
    "sigmoid",
    "fast_sigmoid",
    "fast_sigmoid_normalized",
    "arctan",
    "triangle",
    "straight_through",
]
SURROGATE_KINDS: tuple[str, ...] = typing.get_args(SurrogateKind)
UNIT_PEAK_KINDS: tuple[str, ...] = ("fast_sigmoid",)
"""Surrogates whose peak (not area) is 1 for every slope."""


def surrogate_grad(x: torch.Tensor, kind: str, slope: float) -> torch.Tensor:
    """The surrogate derivative :math:`g_\\alpha(x)` (elementwise, same shape as ``x``)."""
    a = slope
    if kind == "rectangular":
        return (x.abs() < 0.5 / a).to(x.dtype) * a
    if kind == "sigmoid":
        s = torch.sigmoid(a * x)
        return a * s * (1.0 - s)
    if kind == "fast_sigmoid":
        return 1.0 / (1.0 + a * x.abs()) ** 2
    if kind == "fast_sigmoid_normalized":
        return a / (2.0 * (1.0 + a * x.abs()) ** 2)
    if kind == "arctan":
        return (a / 2.0) / (1.0 + (math.pi / 2.0 * a * x) ** 2)
    if kind == "triangle":
        return a * torch.clamp(1.0 - a * x.abs(), min=0.0)
    if kind == "straight_through":
        return torch.full_like(x, a)
    raise ValueError(f"unknown surrogate {kind!r}; choose one of {list(SURROGATE_KINDS)}")


def smooth_step(x: torch.Tensor, kind: str, slope: float) -> torch.Tensor:
    """The smooth step :math:`f_\\alpha(x)` whose derivative is the surrogate (for tests/plots)."""
    a = slope
    if kind == "rectangular":
        return torch.clamp(a * x + 0.5, 0.0, 1.0)
    if kind == "sigmoid":
        return torch.sigmoid(a * x)
    if kind == "fast_sigmoid":
        return x / (1.0 + a * x.abs())
    if kind == "fast_sigmoid_normalized":
        return 0.5 * (1.0 + a * x / (1.0 + a * x.abs()))
    if kind == "arctan":
        return 0.5 + torch.atan(math.pi / 2.0 * a * x) / math.pi
    if kind == "triangle":
        ax = torch.clamp(a * x, -1.0, 1.0)
        return torch.where(ax < 0, 0.5 * (1.0 + ax) ** 2, 1.0 - 0.5 * (1.0 - ax) ** 2)
    if kind == "straight_through":
        return a * x
    raise ValueError(f"unknown surrogate {kind!r}; choose one of {list(SURROGATE_KINDS)}")


class _SpikeFn(torch.autograd.Function):
    """Heaviside forward, surrogate backward; ``kind`` and ``slope`` are plain (non-tensor) args."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor, kind: str, slope: float) -> torch.Tensor:  # type: ignore[override]
        return (x > 0).to(x.dtype)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        x, kind, slope = inputs
        ctx.save_for_backward(x)
        ctx.kind, ctx.slope = kind, slope

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad_out * surrogate_grad(x, ctx.kind, ctx.slope), None, None


def spike(x: torch.Tensor, kind: str = "rectangular", slope: float = 1.0) -> torch.Tensor:
    """Heaviside step of ``x`` with the surrogate gradient ``kind`` of steepness ``slope``.

    The plain comparison is used only when gradients are disabled: under ``torch.func``
    transforms ``x.requires_grad`` does not tell whether a gradient will be taken.
    """
    if not torch.is_grad_enabled():
        return (x > 0).to(x.dtype)
    return _SpikeFn.apply(x, kind, slope)


@dataclass
class Surrogate:
    """A surrogate choice whose ``slope`` may be changed between calls (schedules).

    Each layer owns its own instance; nothing is shared between layers unless passed on purpose.
    """

    kind: SurrogateKind = "rectangular"
    slope: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in SURROGATE_KINDS:
            raise ValueError(
                f"unknown surrogate {self.kind!r}; choose one of {list(SURROGATE_KINDS)}"
            )
        if not self.slope > 0:
            raise ValueError(f"surrogate slope must be > 0, got {self.slope}")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return spike(x, self.kind, self.slope)
