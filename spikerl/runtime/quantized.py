r"""8-bit weights and thresholds of an exported policy, and their float values.

A quantised ``spikerl-numpy`` file (:func:`spikerl.export.quantize.quantize_policy`) stores

- each layer's weight as ``int8`` codes :math:`q \in [-127, 127]` with ``"weight_scale"``: one
  scale per output channel (an array name) or per layer (a float), :math:`W = s\,q`;
- per-neuron thresholds (``theta`` of converted layers, learned ``v_th`` arrays) as ``uint8``
  codes with one scale per layer in ``"<key>_scale"``, :math:`\vartheta = s\,q`.

:func:`dequantize` gives the float arrays that the runtime computes with; the C export keeps the
``int8`` codes and multiplies the column sums by the scale instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["THRESHOLD_KEYS", "dequantize"]

#: Neuron parameters that hold thresholds.
THRESHOLD_KEYS = ("theta", "v_th")


def _scaled(codes: np.ndarray, scale: Any, arrays: dict[str, np.ndarray], dtype) -> np.ndarray:
    scale = arrays[scale] if isinstance(scale, str) else scale
    return codes.astype(dtype) * np.asarray(scale, dtype)


def dequantize(
    spec: dict[str, Any], arrays: dict[str, np.ndarray], dtype: Any, weights: bool = True
) -> dict[str, np.ndarray]:
    """``arrays`` with quantised thresholds (and, if ``weights``, weights) as ``dtype`` floats."""
    out = dict(arrays)
    for layer in spec["layers"]:
        scale = layer.get("weight_scale")
        if weights and scale is not None:
            column = np.reshape(arrays[scale] if isinstance(scale, str) else scale, (-1, 1))
            out[layer["weight"]] = _scaled(arrays[layer["weight"]], column, {}, dtype)
        neuron = layer["neuron"]
        for key in THRESHOLD_KEYS:
            if f"{key}_scale" in neuron:
                out[neuron[key]] = _scaled(
                    arrays[neuron[key]], neuron[f"{key}_scale"], arrays, dtype
                )
    return out
