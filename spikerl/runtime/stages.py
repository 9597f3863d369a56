r"""Convolutional synaptic stages of converted image policies, in NumPy.

A stage (:class:`spikerl.convert.build.StageSynapse` in torch) views each row of a layer's
input ``[R, N_in]`` as an image ``in_shape = (C, H, W)`` and applies its operations in order:

- ``conv2d``: :math:`y_{o,i,j} = b_o + \sum_{c,u,v} w_{o,c,u,v}\,
  x_{c,\,s_h i + d_h u - p_h,\; s_w j + d_w v - p_w}` (zero padding, ``groups`` channel groups),
  as ``torch.nn.functional.conv2d``, computed as one product of the unfolded windows;
- ``avgpool2d``: the window sum divided by the window size (or, with ``count_include_pad``
  false, by the number of non-padding inputs), as ``torch.nn.functional.avg_pool2d``;
- ``flatten`` and ``linear`` (:math:`y = x W^T + b`).

The output is flattened back to ``[R, N_out]``. Sums run in another order than torch's, so
results agree to float rounding.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["run_stage"]


def _windows(x: np.ndarray, kernel, stride, padding, dilation) -> np.ndarray:
    """``[R, C, H_out, W_out, kh, kw]`` views of the zero-padded input's windows."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    span = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    return sliding_window_view(x, span, axis=(2, 3))[:, :, ::sh, ::sw, ::dh, ::dw]


def _conv2d(x: np.ndarray, op: dict[str, Any], arrays: dict[str, np.ndarray]) -> np.ndarray:
    weight = arrays[op["weight"]]
    out_ch, group_in, kh, kw = weight.shape
    groups = op["groups"]
    win = _windows(x, (kh, kw), op["stride"], op["padding"], op["dilation"])
    rows, _, h_out, w_out = win.shape[:4]
    group_out, parts = out_ch // groups, []
    for g in range(groups):
        cols = win[:, g * group_in : (g + 1) * group_in].transpose(0, 2, 3, 1, 4, 5)
        cols = cols.reshape(rows * h_out * w_out, group_in * kh * kw)
        w = weight[g * group_out : (g + 1) * group_out].reshape(group_out, -1)
        parts.append((cols @ w.T).reshape(rows, h_out, w_out, group_out))
    y = np.concatenate(parts, axis=-1).transpose(0, 3, 1, 2)
    if op.get("bias"):
        y = y + arrays[op["bias"]].reshape(1, -1, 1, 1)
    return y


def _avgpool2d(x: np.ndarray, op: dict[str, Any]) -> np.ndarray:
    kernel, padding = op["kernel"], op["padding"]
    sums = _windows(x, kernel, op["stride"], padding, (1, 1)).sum(axis=(-2, -1))
    if op["count_include_pad"] or padding == [0, 0]:
        return sums / (kernel[0] * kernel[1])
    ones = np.ones((1, 1, *x.shape[2:]), x.dtype)
    counts = _windows(ones, kernel, op["stride"], padding, (1, 1)).sum(axis=(-2, -1))
    return sums / counts


def run_stage(x: np.ndarray, stage: dict[str, Any], arrays: dict[str, np.ndarray]) -> np.ndarray:
    """The stage's output ``[R, N_out]`` for inputs ``x [R, N_in]``."""
    y = x.reshape(x.shape[0], *stage["in_shape"])
    for op in stage["ops"]:
        kind = op["op"]
        if kind == "conv2d":
            y = _conv2d(y, op, arrays)
        elif kind == "avgpool2d":
            y = _avgpool2d(y, op)
        elif kind == "flatten":
            y = y.reshape(y.shape[0], -1)
        else:
            y = y @ arrays[op["weight"]].T
            y = y + arrays[op["bias"]] if op.get("bias") else y
    return y.reshape(x.shape[0], -1)
