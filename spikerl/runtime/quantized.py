r"""8-bit weights and thresholds of an exported policy, and their float values.

A quantised ``spikerl-numpy`` file (:func:`spikerl.export.quantize.quantize_policy`) stores

- each layer's weight (or each weight of a convolutional stage) as ``int8`` codes
  :math:`q \in [-127, 127]` with ``"weight_scale"``: one scale per output channel (an array
  name) or per layer (a float), :math:`W = s\,q`;
- per-neuron thresholds (``theta`` of converted layers, learned ``v_th`` arrays) as ``uint8``
  codes with one scale per layer in ``"<key>_scale"``, :math:`\vartheta = s\,q`.

:func:`dequantize` gives the float arrays that the runtime computes with; the C export keeps the
``int8`` codes and multiplies the column sums by the scale instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["THRESHOLD_KEYS", "dequantize", "weight_holders"]

#: Neuron parameters that hold thresholds.
THRESHOLD_KEYS = ("theta", "v_th")


def weight_holders(layer: dict[str, Any]) -> list[dict[str, Any]]:
    """The parts of a layer that hold a weight: the layer itself, or its stage's convolutions
    and linear maps."""
    if "stage" in layer:
        return [op for op in layer["stage"]["ops"] if op.get("weight")]
    return [layer]


def _scaled(codes: np.ndarray, scale: Any, arrays: dict[str, np.ndarray], dtype) -> np.ndarray:
    scale = arrays[scale] if isinstance(scale, str) else scale
    return codes.astype(dtype) * np.asarray(scale, dtype)


def dequantize(
    spec: dict[str, Any], arrays: dict[str, np.ndarray], dtype: Any, weights: bool = True
) -> dict[str, np.ndarray]:
    """``arrays`` with quantised thresholds (and, if ``weights``, weights) as ``dtype`` floats."""
    out = dict(arrays)
    for layer in spec["layers"]:
        for holder in weight_holders(layer) if weights else ():
            scale, codes = holder.get("weight_scale"), arrays[holder["weight"]]
            if scale is not None:
                scale = arrays[scale] if isinstance(scale, str) else scale
                column = np.reshape(scale, (-1, *[1] * (codes.ndim - 1)))
                out[holder["weight"]] = _scaled(codes, column, {}, dtype)
        neuron = layer["neuron"]
        for key in THRESHOLD_KEYS:
            if f"{key}_scale" in neuron:
                out[neuron[key]] = _scaled(
                    arrays[neuron[key]], neuron[f"{key}_scale"], arrays, dtype
                )
    return out
