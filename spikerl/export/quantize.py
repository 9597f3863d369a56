r"""8-bit quantisation of an exported policy (:mod:`spikerl.runtime.quantized` reads it back).

Weights: symmetric, round to nearest, :math:`q = \mathrm{round}(W / s)` clipped to
:math:`[-127, 127]` with :math:`s = \max|W| / 127` over each output channel (``per="channel"``,
one scale per neuron) or over the layer (``per="layer"``). Per-neuron thresholds
(the calibrated :math:`\vartheta` of converted layers, learned ``v_th`` arrays) become ``uint8``
codes with :math:`s = \max\vartheta / 255` per layer; scalar thresholds (LIF's 0.5) are exact
already. Biases, leaks, encoder and readout stay float32: together they are a few hundred
values, and the readout's few weights set the action directly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..runtime.quantized import THRESHOLD_KEYS, weight_holders

__all__ = ["PER", "quantize_policy"]

PER = ("channel", "layer")


def _weight_codes(weight: np.ndarray, per: str) -> tuple[np.ndarray, np.ndarray | float]:
    w = np.asarray(weight, np.float64)  # [out, in] or a convolution's [out, in, kh, kw]
    peak = np.abs(w).reshape(len(w), -1).max(axis=1) if per == "channel" else np.abs(w).max()
    scale = np.where(peak > 0, peak / 127.0, 1.0)
    column = scale.reshape(-1, *[1] * (w.ndim - 1)) if per == "channel" else scale
    codes = np.clip(np.rint(w / column), -127, 127).astype(np.int8)
    return codes, (scale.astype(np.float32) if per == "channel" else float(np.float32(scale)))


def _copy_layer(layer: dict[str, Any]) -> dict[str, Any]:
    copy = dict(layer, neuron=dict(layer["neuron"]))
    if "stage" in layer:
        copy["stage"] = dict(layer["stage"], ops=[dict(op) for op in layer["stage"]["ops"]])
    return copy


def quantize_policy(
    spec: dict[str, Any], arrays: dict[str, np.ndarray], per: str = "channel"
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A copy of an exported policy (``spec``, ``arrays``) with 8-bit weights and thresholds."""
    if per not in PER:
        raise ValueError(f"per={per!r}; choose one of {', '.join(PER)}")
    if "quantization" in spec:
        raise ValueError("the policy's weights are 8-bit already; quantise the float export")
    spec = {**spec, "layers": [_copy_layer(layer) for layer in spec["layers"]]}
    arrays = dict(arrays)
    for layer in spec["layers"]:
        for holder in weight_holders(layer):
            codes, scale = _weight_codes(arrays[holder["weight"]], per)
            arrays[holder["weight"]] = codes
            if isinstance(scale, np.ndarray):
                arrays[f"{holder['weight']}_scale"] = scale
                scale = f"{holder['weight']}_scale"
            holder["weight_scale"] = scale
        neuron = layer["neuron"]
        for key in THRESHOLD_KEYS:
            name = neuron.get(key)
            if not isinstance(name, str) or name not in arrays:
                continue
            theta = np.asarray(arrays[name], np.float64)
            if theta.min() < 0:  # a negative threshold has no unsigned code: it stays float
                continue
            step = float(np.float32(theta.max() / 255.0)) if theta.max() > 0 else 1.0
            arrays[name] = np.clip(np.rint(theta / step), 0, 255).astype(np.uint8)
            neuron[f"{key}_scale"] = step
    spec["quantization"] = {"weights": "int8", "per": per, "thresholds": "uint8"}
    return spec, arrays
