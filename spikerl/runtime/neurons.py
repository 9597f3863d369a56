r"""Neuron ticks, encoders and readouts in NumPy, operation for operation as in torch.

Each function mirrors one torch function of :mod:`spikerl.snn` (named in its docstring) with
the same operations in the same order, so element-wise results are bit-identical in float64
and float32; only matrix products (a different BLAS) may sum in another order. States are
tuples of arrays with the fields of the torch NamedTuples (LIF ``(v, s)``, CLIF ``(i, v, s)``,
DN ``(c, v, u, s)``). Spikes are :math:`H(x) = 1` if :math:`x > 0` else 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["NEURON_FIELDS", "encode", "neuron_tick", "readout", "zero_state"]

#: State fields per neuron kind (as the torch state NamedTuples).
NEURON_FIELDS: dict[str, tuple[str, ...]] = {
    "lif": ("v", "s"),
    "if": ("v", "s"),
    "plif": ("v", "s"),
    "clif": ("i", "v", "s"),
    "dn": ("c", "v", "u", "s"),
}


def _spike(x: np.ndarray) -> np.ndarray:
    return (x > 0).astype(x.dtype)


def zero_state(kind: str, batch: int, size: int, dtype: np.dtype) -> tuple[np.ndarray, ...]:
    return tuple(np.zeros((batch, size), dtype) for _ in NEURON_FIELDS[kind])


def lif_tick(current: np.ndarray, state: tuple, p: dict[str, Any]) -> tuple[np.ndarray, tuple]:
    """:func:`spikerl.snn.functional.lif_step` (hard, soft, soft_detached reset)."""
    v_prev, s_prev = state
    decay, v_th = p["decay"], p["v_th"]
    if p["reset"] == "hard":
        v = decay * (v_prev * (1.0 - s_prev)) + current
    elif p["reset"] == "soft":
        v = decay * (v_prev - v_th * s_prev) + current
    else:  # soft_detached: the same forward as written in torch
        v = decay * v_prev + current - v_th * s_prev
    s = _spike(v - v_th)
    return s, (v, s)


def clif_tick(current: np.ndarray, state: tuple, p: dict[str, Any]) -> tuple[np.ndarray, tuple]:
    """:func:`spikerl.snn.functional.clif_step`."""
    i_prev, v_prev, s_prev = state
    i = p["current_decay"] * i_prev + current
    v = p["decay"] * v_prev * (1.0 - s_prev) + i
    s = _spike(v - p["v_th"])
    return s, (i, v, s)


# the DN constants of spikerl.snn.functional.dn_step (the proxy-target reference code's)
DN_CONSTANTS = {"current_decay": 0.5, "theta_v": -0.172, "theta_u": 0.529, "theta_r": 0.021,
                "theta_s": 0.132}  # fmt: skip


def dn_tick(current: np.ndarray, state: tuple, p: dict[str, Any]) -> tuple[np.ndarray, tuple]:
    """:func:`spikerl.snn.functional.dn_step`."""
    c_prev, v_prev, u_prev, s_prev = state
    k = DN_CONSTANTS
    c = k["current_decay"] * c_prev + current
    v_reset = v_prev * (1.0 - s_prev) + k["theta_r"] * s_prev
    u_reset = u_prev + k["theta_s"] * s_prev
    v = v_reset + (v_reset * v_reset - v_reset - u_reset + c)
    u = u_reset + (k["theta_v"] * v_reset + k["theta_u"] * u_reset)
    s = _spike(v - p["v_th"])
    return s, (c, v, u, s)


_TICKS = {"lif": lif_tick, "if": lif_tick, "plif": lif_tick, "clif": clif_tick, "dn": dn_tick}


def neuron_tick(
    kind: str, current: np.ndarray, state: tuple, params: dict[str, Any]
) -> tuple[np.ndarray, tuple]:
    """One tick of neuron ``kind`` with its layer ``params``."""
    return _TICKS[kind](current, state, params)


def encode(x: np.ndarray, spec: dict[str, Any], arrays: dict[str, np.ndarray], ticks: int):
    """Input currents or spikes ``[T, B, n']`` of observations ``x [B, n]``.

    ``population``: :class:`spikerl.snn.coding.PopulationEncoder` (Gaussian receptive fields,
    then an IF generator with soft reset at ``v_th``); ``direct``:
    :class:`spikerl.snn.coding.DirectEncoder`; ``none``: ``x`` is already ``[T, B, n]``."""
    kind = spec["kind"]
    if kind == "none":
        return x
    if kind == "direct":
        inputs = spec.get("inputs")
        x = x[..., :inputs] if inputs is not None else x
        return np.broadcast_to(x, (ticks, *x.shape))
    mu, sigma = arrays[spec["mu"]], arrays[spec["sigma"]]
    a = np.exp(-((x[..., None] - mu) ** 2) / (2.0 * sigma**2)).reshape(x.shape[0], -1)
    params = {"decay": 1.0, "v_th": spec["v_th"], "reset": "soft"}
    state = (np.zeros_like(a), np.zeros_like(a))
    spikes = []
    for _ in range(ticks):
        s, state = lif_tick(a, state, params)
        spikes.append(s)
    return np.stack(spikes)


def _linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    out = x @ weight.T
    return out if bias is None else out + bias


def readout(
    outputs: np.ndarray, membrane: np.ndarray, spec: dict[str, Any], arrays: dict[str, np.ndarray]
) -> np.ndarray:
    """Pre-activation ``[B, m]`` from the last layer's outputs ``[T, B, N]`` and membrane.

    ``population``: :class:`spikerl.snn.coding.PopulationDecoder`; ``linear``:
    :class:`spikerl.snn.coding.LinearReadout` with its ``source``."""
    weight = arrays[spec["weight"]]
    bias = arrays[spec["bias"]] if spec.get("bias") else None
    if spec["kind"] == "population":
        rates = outputs.mean(axis=0)
        rates = rates.reshape(*rates.shape[:-1], weight.shape[0], weight.shape[1])
        return (rates * weight).sum(-1) + bias
    source = spec["source"]
    if source == "spikes":
        return _linear(outputs[-1], weight, bias)
    if source == "rate":
        return _linear(outputs, weight, bias).mean(axis=0)
    if source in ("count", "weighted"):
        if source == "weighted":
            weights = arrays[spec["tick_weights"]]
            if weights.shape[0] != outputs.shape[0]:
                raise ValueError(f"{weights.shape[0]} tick weights for {outputs.shape[0]} ticks")
            outputs = outputs * weights.reshape(-1, 1, 1)
        out = _linear(outputs, weight, bias).sum(axis=0)
        return out if bias is None else out - (outputs.shape[0] - 1) * bias
    return _linear(membrane, weight, bias)
