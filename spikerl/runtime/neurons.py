r"""Neuron ticks, encoders and readouts in NumPy, operation for operation as in torch.

Each function mirrors one torch function of :mod:`spikerl.snn` (named in its docstring) with
the same operations in the same order, so element-wise results are bit-identical in float64
and float32; only matrix products (a different BLAS) may sum in another order. States are
tuples of arrays with the fields of the torch NamedTuples (LIF ``(v, s)``, CLIF ``(i, v, s)``,
DN ``(c, v, u, s)``). Spikes are :math:`H(x) = 1` if :math:`x > 0` else 0.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "NEURON_FIELDS",
    "encode",
    "lif_layer",
    "neuron_fields",
    "neuron_tick",
    "readout",
    "run_layer",
    "zero_state",
]

#: State fields per neuron kind (as the torch state NamedTuples).
NEURON_FIELDS: dict[str, tuple[str, ...]] = {
    "lif": ("v", "s"),
    "if": ("v", "s"),
    "plif": ("v", "s"),
    "clif": ("i", "v", "s"),
    "dn": ("c", "v", "u", "s"),
}


#: State fields of the conversion neurons (``RateState`` and ``DCState`` of
#: :mod:`spikerl.snn.conversion`).
RATE_FIELDS, DC_FIELDS = ("v", "v0", "m"), ("v", "v0", "x0", "X", "Y")


def neuron_fields(params: dict[str, Any]) -> tuple[str, ...]:
    """The state fields of a layer with neuron ``params``."""
    if params["kind"] == "conversion":
        return DC_FIELDS if params["model"].startswith("dc") else RATE_FIELDS
    return NEURON_FIELDS[params["kind"]]


def _fires(v: np.ndarray, v_th: Any) -> np.ndarray:
    """:math:`H(v - \\vartheta)` as ``v > v_th`` (for finite floats ``v - v_th > 0`` exactly
    when ``v > v_th``: one operation fewer per tick)."""
    return (v > v_th).astype(v.dtype)


def zero_state(params: dict[str, Any], batch: int, size: int, dtype: np.dtype) -> tuple:
    return tuple(np.zeros((batch, size), dtype) for _ in neuron_fields(params))


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
    s = _fires(v, v_th)
    return s, (v, s)


def lif_layer(
    currents: np.ndarray, state: tuple | None, p: dict[str, Any]
) -> tuple[np.ndarray, tuple]:
    """All T ticks of :func:`lif_tick` over ``currents [T, B, N]`` from ``state`` (``None``: the
    zero state), with the same values in fewer NumPy operations per tick:

    - a spike is 0 or 1, so the hard reset's ``v (1 - s)`` is ``v`` times the *keep* mask
      ``v <= v_th`` of the tick before, kept as floats (the spikes are ``1 - keep``, one
      operation over all T ticks at the end);
    - from the zero state the first tick is ``v = decay * 0 + J = J``;
    - a decay of exactly 1 (the population encoder's IF generator) is not multiplied.

    Spikes and membranes are the tick function's bit for bit (a membrane may differ only in the
    sign of a zero, which no comparison or product downstream can see). The one input where the
    keep mask is not ``1 - s`` is a NaN membrane (``NaN <= v_th`` and ``NaN > v_th`` are both
    false); a NaN stays NaN to the last tick under the hard reset, so a layer that ends with one
    is run again tick by tick with :func:`lif_tick`."""
    decay, v_th, reset = p["decay"], p["v_th"], p["reset"]
    leak = not (np.ndim(decay) == 0 and decay == 1.0)
    if state is None:
        v, first = currents[0].copy(), 1
        previous = np.less_equal(v, v_th) if reset == "hard" else np.greater(v, v_th)
        previous = previous.astype(v.dtype)
    else:
        v, first = state[0].copy(), 0
        previous = 1.0 - state[1] if reset == "hard" else state[1]
    marks = np.empty_like(currents)  # keep masks (hard reset) or spikes (soft resets)
    marks[0] = previous
    scratch = np.empty_like(v)
    for tick in range(first, len(currents)):
        current, mark = currents[tick], marks[tick]
        if reset == "hard":  # decay * (v * (1 - s)) + J
            np.multiply(v, previous, out=v)
        elif reset == "soft":  # decay * (v - v_th s) + J
            np.subtract(v, np.multiply(v_th, previous, out=scratch), out=v)
        if leak:
            np.multiply(decay, v, out=v)
        np.add(v, current, out=v)
        if reset == "soft_detached":  # decay * v + J - v_th s
            np.subtract(v, np.multiply(v_th, previous, out=scratch), out=v)
        if reset == "hard":
            previous = np.less_equal(v, v_th, out=mark)
        else:
            previous = np.greater(v, v_th, out=mark)
    if reset != "hard":
        return marks, (v, marks[-1].copy())
    if math.isnan(np.add.reduce(v, axis=None)):  # a NaN (e.g. observed): 1 - keep is not s
        return _by_ticks("lif", currents, state, p)
    spikes = np.subtract(1.0, marks, out=marks)
    return spikes, (v, spikes[-1].copy())


def clif_tick(current: np.ndarray, state: tuple, p: dict[str, Any]) -> tuple[np.ndarray, tuple]:
    """:func:`spikerl.snn.functional.clif_step`."""
    i_prev, v_prev, s_prev = state
    i = p["current_decay"] * i_prev + current
    v = p["decay"] * v_prev * (1.0 - s_prev) + i
    s = _fires(v, p["v_th"])
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
    s = _fires(v, p["v_th"])
    return s, (c, v, u, s)


# --- conversion neurons (spikerl.snn.conversion) -------------------------------------------


def mt_table(levels: int, dtype: np.dtype) -> np.ndarray:
    """:func:`spikerl.snn.conversion.mt_table`: ``[0, 2^-(n-1), ..., 1/2, 1]``."""
    powers = np.power(np.asarray(2.0, dtype), -np.arange(levels - 1, -1, -1, dtype=dtype))
    return np.concatenate([np.zeros(1, dtype), powers])


def _largest_level(x: np.ndarray, table: np.ndarray, scale: float) -> np.ndarray:
    """The table form of :func:`spikerl.snn.conversion._largest_level` (``bucketize`` with
    ``right=True`` is ``searchsorted`` with ``side="right"``)."""
    return table[np.searchsorted(scale * table[1:], x, side="right")]


def conversion_constants(p: dict[str, Any], dtype: np.dtype) -> dict[str, Any]:
    """What :meth:`spikerl.snn.conversion.ConversionNeuron.tick_fn` binds once per layer."""
    theta = p["theta"]
    multi = p["model"] in ("mt", "mt_signed", "dc-mt")
    constants = dict(p, multi=multi, signed=p["model"] in ("snm", "mt_signed", "dc", "dc-mt"))
    if multi:
        table = mt_table(p["levels"], dtype)
        inv = np.where(theta > 0, 1.0 / np.maximum(theta, np.asarray(1e-30, dtype)), 0.0)
        constants |= {"table": table, "inv_theta": inv.astype(dtype),
                      "v_init": np.zeros_like(theta), "half": theta * table[1] / 2}  # fmt: skip
    else:
        constants |= {"v_init": theta / 2, "half": theta / 2}
    return constants


def _fire(u: np.ndarray, gate: np.ndarray, k: dict[str, Any]) -> np.ndarray:
    """:func:`~spikerl.snn.conversion.if_fire` or :func:`~spikerl.snn.conversion.mt_fire`."""
    theta = k["theta"]
    if not k["multi"]:
        out = theta * (u > theta)
        return out - theta * ((u < 0) & (gate >= theta)) if k["signed"] else out
    ratio = u * k["inv_theta"]
    fired = _largest_level(ratio, k["table"], 0.75)
    if not k["signed"]:
        return theta * fired
    below = _largest_level(-ratio, k["table"], 0.75)
    allowed = _largest_level(gate * k["inv_theta"], k["table"], 1.0)
    return theta * np.where(fired > 0, fired, -np.minimum(below, allowed))


def _carry(residual: np.ndarray, k: dict[str, Any]) -> np.ndarray:
    """:func:`spikerl.snn.conversion.crpi_carry`."""
    return np.clip(k["crpi"] * residual, -k["half"], k["half"])


def conversion_tick(
    current: np.ndarray, state: tuple, k: dict[str, Any], tick: int
) -> tuple[np.ndarray, tuple]:
    """:func:`~spikerl.snn.conversion.rate_step` or :func:`~spikerl.snn.conversion.dc_step`."""
    if k["model"].startswith("dc"):
        v, v0, x0, big_x, big_y = state
        if tick == 0:
            carry = _carry(np.maximum(v - v0, -k["timesteps"] * big_y), k)
            v = k["v_init"] + carry
            return np.zeros_like(current), (v, v, current, current, np.zeros_like(big_y))
        delta = current - x0
        u = v + delta + big_x - big_y
        out = _fire(u, tick * big_y, k)
        return out, (u - out, v0, x0, big_x + delta / tick, big_y + out / tick)
    v, v0, m = state
    if tick == 0:
        carry = _carry(np.maximum(v - v0, -m), k)
        v = k["v_init"] + carry
        v0, m = v, np.zeros_like(m)
    u = v + current
    out = _fire(u, m, k)
    return out, (u - out, v0, m + out)


_TICKS = {"lif": lif_tick, "if": lif_tick, "plif": lif_tick, "clif": clif_tick, "dn": dn_tick}


def run_layer(
    kind: str, currents: np.ndarray, state: tuple, params: dict[str, Any]
) -> tuple[np.ndarray, tuple]:
    """All T ticks of one layer from ``state`` (``None``: the zero state): outputs
    ``[T, B, N]`` and the state after the last tick."""
    if kind in ("lif", "if", "plif"):
        return lif_layer(currents, state, params)
    return _by_ticks(kind, currents, state, params)


def _by_ticks(
    kind: str, currents: np.ndarray, state: tuple | None, params: dict[str, Any]
) -> tuple[np.ndarray, tuple]:
    """:func:`neuron_tick` tick by tick (also the reference :func:`lif_layer` falls back to)."""
    if state is None:
        state = zero_state({**params, "kind": kind}, *currents.shape[1:], currents.dtype)
    outputs = np.empty_like(currents)
    for tick, current in enumerate(currents):
        outputs[tick], state = neuron_tick(kind, current, state, params, tick)
    return outputs, state


def neuron_tick(
    kind: str, current: np.ndarray, state: tuple, params: dict[str, Any], tick: int = 0
) -> tuple[np.ndarray, tuple]:
    """Tick ``tick`` of the decision for neuron ``kind`` with its layer ``params`` (for
    ``conversion``, the :func:`conversion_constants`)."""
    if kind == "conversion":
        return conversion_tick(current, state, params, tick)
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
        return np.repeat(x[None], ticks, axis=0)
    mu, sigma = arrays[spec["mu"]], arrays[spec["sigma"]]
    a = np.exp(-((x[..., None] - mu) ** 2) / (2.0 * sigma**2)).reshape(x.shape[0], -1)
    params = {"decay": 1.0, "v_th": np.asarray(spec["v_th"], a.dtype), "reset": "soft"}
    return lif_layer(np.repeat(a[None], ticks, axis=0), None, params)[0]


def _tick_mean(x: np.ndarray) -> np.ndarray:
    """``x.mean(axis=0)`` as NumPy computes it (a sum, then a division by the count), without
    its Python-level overhead."""
    return np.add.reduce(x, axis=0) / x.shape[0]


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
        rates = _tick_mean(outputs)
        rates = rates.reshape(*rates.shape[:-1], weight.shape[0], weight.shape[1])
        return (rates * weight).sum(-1) + bias
    source = spec["source"]
    if source == "spikes":
        return _linear(outputs[-1], weight, bias)
    if source == "rate":
        return _tick_mean(_linear(outputs, weight, bias))
    if source in ("count", "weighted"):
        if source == "weighted":
            weights = arrays[spec["tick_weights"]]
            if weights.shape[0] != outputs.shape[0]:
                raise ValueError(f"{weights.shape[0]} tick weights for {outputs.shape[0]} ticks")
            outputs = outputs * weights.reshape(-1, 1, 1)
        out = _linear(outputs, weight, bias).sum(axis=0)
        return out if bias is None else out - (outputs.shape[0] - 1) * bias
    return _linear(membrane, weight, bias)
