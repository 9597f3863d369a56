r"""The matmul work of a piece of code and this machine's matmul rate for the same shapes.

:class:`MatmulRecorder` is a dispatch mode that records every matrix product torch runs inside
it (``mm``, ``addmm``, ``bmm``, ``baddbmm``; forward and backward alike), so the work counted
comes from the layer shapes, batch, T, K and policy delay that really ran, not from a second
model of the networks. A product of ``[m, k] @ [k, n]`` is :math:`2mkn` floating-point
operations (one multiply and one add per term); a batched one multiplies by its batch.
Element-wise work (neuron updates, activations, Adam) is not counted: it is memory-bound and
small in operations.

:func:`matmul_seconds` replays each distinct recorded product (shapes, strides, dtype) on
random operands and times it, so ``matmul_seconds(calls)`` is the time the same products take
back to back at this machine's measured rate. Its ratio to the measured time of the work is
the *roofline fraction*: 1 would mean the work ran at matmul speed with nothing else costing
time.
"""

from __future__ import annotations

import math
import time
from collections import Counter

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from .timing import sync

__all__ = ["MatmulCall", "MatmulRecorder", "matmul_seconds"]

_aten = torch.ops.aten
#: op -> index of its two matrix operands in the op's arguments.
_MATMULS = {
    _aten.mm.default: (0, 1),
    _aten.addmm.default: (1, 2),
    _aten.bmm.default: (0, 1),
    _aten.baddbmm.default: (1, 2),
}

#: One distinct product: op name, both operands' (shape, stride), dtype.
MatmulCall = tuple[str, tuple[tuple[int, ...], tuple[int, ...]], tuple[tuple[int, ...], ...], str]


def _flops(a_shape: tuple[int, ...], b_shape: tuple[int, ...]) -> int:
    """:math:`2 \\cdot batch \\cdot m k n` for ``[..., m, k] @ [..., k, n]``."""
    batch = math.prod(a_shape[:-2])
    return 2 * batch * a_shape[-2] * a_shape[-1] * b_shape[-1]


class MatmulRecorder(TorchDispatchMode):
    """Counts the matrix products run inside ``with MatmulRecorder() as rec:``.

    ``rec.calls`` counts each distinct product (:data:`MatmulCall`); ``rec.flops`` is their
    total floating-point work.
    """

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[MatmulCall] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        operands = _MATMULS.get(func)
        if operands is not None:
            a, b = (args[i] for i in operands)
            key = (
                func.__name__,
                (tuple(a.shape), tuple(a.stride())),
                (tuple(b.shape), tuple(b.stride())),
                str(a.dtype).removeprefix("torch."),
            )
            self.calls[key] += 1
        return func(*args, **(kwargs or {}))

    @property
    def flops(self) -> int:
        return sum(_flops(a[0], b[0]) * n for (_, a, b, _), n in self.calls.items())


def _operand(layout: tuple[tuple[int, ...], tuple[int, ...]], dtype, device) -> torch.Tensor:  # noqa: ANN001
    shape, stride = layout
    extent = 1 + sum((n - 1) * st for n, st in zip(shape, stride, strict=True) if n > 0)
    # random storage viewed with the recorded strides (stride 0 included: a broadcast grad)
    return torch.randn(extent, dtype=dtype, device=device).as_strided(shape, stride)


def matmul_seconds(
    calls: Counter[MatmulCall], device: str = "cpu", seconds_per_shape: float = 0.05
) -> float:
    """Seconds the recorded ``calls`` take back to back at this machine's rate for each
    distinct product (each timed alone on random operands of its shapes and strides for at
    least ``seconds_per_shape``)."""
    total = 0.0
    for (name, a_layout, b_layout, dtype_name), count in calls.items():
        dtype = getattr(torch, dtype_name)
        a, b = _operand(a_layout, dtype, device), _operand(b_layout, dtype, device)
        product = torch.bmm if name.startswith(("bmm", "baddbmm")) else torch.mm
        for _ in range(3):
            product(a, b)
        reps, started = 0, time.perf_counter()
        while True:
            product(a, b)
            reps += 1
            sync(device)
            elapsed = time.perf_counter() - started
            if elapsed >= seconds_per_shape and reps >= 5:
                break
        total += elapsed / reps * count
    return total
