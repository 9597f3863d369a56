r"""An exported policy as one dependency-free C99 source and header, for microcontrollers.

:func:`write_c` turns a ``spikerl-numpy`` description (:func:`~spikerl.export.npz.network_spec`,
optionally :func:`~spikerl.export.quantize.quantize_weights`) into ``spikerl_policy.h`` and
``spikerl_policy.c``:

- weights are ``const`` arrays (flash), stored input-major ``W[j * OUT + i]`` so that a layer
  adds one weight column per active input (**event-driven**: inputs equal to zero cost nothing,
  which for binary spikes is most of them); ``float`` (or ``double`` with
  ``-DSPIKERL_DOUBLE=1``) or ``int8_t`` with one scale per output channel or per layer: for
  binary inputs the column sums are exact integer additions (``int16`` where every output's
  ``sum_j |w_ij|`` fits, else ``int32``), ``J_i = scale_i * acc_i + b_i``;
- the state is one struct ``spikerl_state`` (RAM): every layer's neuron fields, the encoder's
  generator and the readout accumulator;
- ``spikerl_step(obs, state, action)`` takes a raw env observation (normalised with the run's
  statistics and clipped) and writes the env action (``tanh``, ``max_action`` and the env
  bounds applied), ``spikerl_decide`` works on normalised observations like
  :meth:`spikerl.runtime.Policy.decide`, and ``spikerl_reset`` starts an episode.

**Schedule.** The C step runs *tick-major* (all layers for tick 1, then tick 2, ...): every
layer's input at tick t is the previous layer's output at tick t in either order, so the spikes
are those of the layer-by-layer torch and NumPy schedule, while the RAM holds one tick of
activity instead of T. A constant input (direct encoder) is multiplied once per decision.
Products sum in input order, so results agree with the NumPy runtime to rounding (float32) or
spike for spike (``double``, see the tests), not bit for bit.

Every neuron model of the runtime is generated: LIF/IF/PLIF (hard, soft, soft_detached reset),
CLIF, DN, and the conversion neurons (``if``, ``snm``, ``mt``, ``mt_signed``, ``dc``, ``dc-mt``,
with CRPI). Constants are written as C99 hexadecimal floating literals, so the compiled values
are exactly the exported ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import write_output
from ..runtime.neurons import conversion_constants, mt_table, neuron_fields
from ..runtime.policy import observation_dim
from ..runtime.quantized import dequantize
from .npz import ExportError

__all__ = ["C_HEADER", "C_SOURCE", "c_sources", "write_c"]

C_HEADER, C_SOURCE = "spikerl_policy.h", "spikerl_policy.c"

_BINARY = ("lif", "if", "plif", "clif", "dn")  # neurons whose outputs are 0/1 spikes


def _lit(value: float) -> str:
    """An exact C literal of a float (hexadecimal, as C99 allows)."""
    value = float(value)
    if not np.isfinite(value):
        raise ExportError(f"a constant is {value}; a C policy needs finite constants")
    return "0.0" if value == 0 else value.hex()


def _real(value: float) -> str:
    """The literal as ``spk_real``: arithmetic with it stays in the build's precision, as NumPy
    rounds a Python float to the array's dtype (an uncast literal would be a double)."""
    return f"(spk_real){_lit(value)}"


class _Emitter:
    """Collects constant arrays (flash) and the statements of the step function."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays
        self.consts: list[str] = []
        self.flash = 0

    def const(self, name: str, values: np.ndarray, ctype: str = "spk_real") -> str:
        flat = np.asarray(values).ravel()
        if ctype.startswith("int") or ctype.startswith("uint"):
            items = [str(int(v)) for v in flat]
            self.flash += flat.size * np.dtype(ctype.removesuffix("_t")).itemsize
        else:
            items = [_lit(v) for v in flat]
            self.flash += flat.size * (8 if ctype == "double" else 4)  # spk_real: float32
        rows = [", ".join(items[k : k + 8]) for k in range(0, len(items), 8)]
        body = ",\n    ".join(rows)
        self.consts.append(f"static const {ctype} {name}[{flat.size}] = {{\n    {body}\n}};")
        return name

    def param(self, name: str, value: Any, size: int) -> str:
        """A C expression for a neuron parameter at neuron ``i``: a literal or ``name[i]``."""
        if isinstance(value, str):
            value = self.arrays[value]
        array = np.asarray(value, np.float64)
        if array.size == 1:
            return _real(array.item())
        return self.const(name, np.broadcast_to(array.ravel(), (size,))) + "[i]"


def _neuron_code(e: _Emitter, index: int, neuron: dict[str, Any], size: int) -> list[str]:
    """Statements updating layer ``index``'s state from ``J`` and writing its output ``y``."""
    lp = f"l{index}"
    kind = neuron["kind"]
    loop = f"for (int i = 0; i < {size}; ++i) {{"
    if kind in ("lif", "if", "plif"):
        decay = e.param(f"{lp}_decay", neuron["decay"], size)
        v_th = e.param(f"{lp}_v_th", neuron["v_th"], size)
        update = {
            "hard": f"{decay} * (st->{lp}_v[i] * ((spk_real)1 - st->{lp}_s[i])) + J[i]",
            "soft": f"{decay} * (st->{lp}_v[i] - {v_th} * st->{lp}_s[i]) + J[i]",
            "soft_detached": f"{decay} * st->{lp}_v[i] + J[i] - {v_th} * st->{lp}_s[i]",
        }[neuron["reset"]]
        fire = f"    st->{lp}_v[i] = v; st->{lp}_s[i] = y[i] = (v > {v_th}) ? 1 : 0;"
        return [loop, f"    spk_real v = {update};", fire, "}"]
    if kind == "clif":
        cd = e.param(f"{lp}_current_decay", neuron["current_decay"], size)
        decay = e.param(f"{lp}_decay", neuron["decay"], size)
        v_th = e.param(f"{lp}_v_th", neuron["v_th"], size)
        return [loop, f"    spk_real c = {cd} * st->{lp}_i[i] + J[i];",
                f"    spk_real v = {decay} * st->{lp}_v[i] * ((spk_real)1 - st->{lp}_s[i]) + c;",
                f"    st->{lp}_i[i] = c; st->{lp}_v[i] = v;",
                f"    st->{lp}_s[i] = y[i] = (v > {v_th}) ? 1 : 0;", "}"]  # fmt: skip
    if kind == "dn":
        from ..runtime.neurons import DN_CONSTANTS as k

        v_th = e.param(f"{lp}_v_th", neuron["v_th"], size)
        return [loop, f"    spk_real s = st->{lp}_s[i];",
                f"    spk_real c = {_real(k['current_decay'])} * st->{lp}_c[i] + J[i];",
                f"    spk_real vr = st->{lp}_v[i] * ((spk_real)1 - s) + {_real(k['theta_r'])} * s;",
                f"    spk_real ur = st->{lp}_u[i] + {_real(k['theta_s'])} * s;",
                "    spk_real v = vr + (vr * vr - vr - ur + c);",
                f"    spk_real u = ur + ({_real(k['theta_v'])} * vr + {_real(k['theta_u'])} * ur);",
                f"    st->{lp}_c[i] = c; st->{lp}_v[i] = v; st->{lp}_u[i] = u;",
                f"    st->{lp}_s[i] = y[i] = (v > {v_th}) ? 1 : 0;", "}"]  # fmt: skip
    if kind == "conversion":
        return _conversion_code(e, lp, neuron, size)
    raise ExportError(f"layer {index}: {kind!r} neurons have no C implementation")


def _conversion_code(e: _Emitter, lp: str, neuron: dict[str, Any], size: int) -> list[str]:
    """:func:`spikerl.runtime.neurons.conversion_tick` for one layer, neuron by neuron."""
    theta_values = neuron["theta"]
    theta_values = e.arrays[theta_values] if isinstance(theta_values, str) else theta_values
    k = conversion_constants(dict(neuron, theta=np.asarray(theta_values, np.float64)), np.float64)
    theta = e.param(f"{lp}_theta", theta_values, size)
    crpi, model = _real(k["crpi"]), k["model"]
    if k["multi"]:
        table = mt_table(k["levels"], np.dtype(np.float64))
        e.const(f"{lp}_table", table)
        inv = e.param(f"{lp}_inv_theta", k["inv_theta"], size)
        half, v_init = f"{theta} * {lp}_table[1] / 2", "(spk_real)0"
        levels = k["levels"]
        level = f"{lp}_table, {levels}"  # spk_level's table arguments
        fired = f"spk_level(ratio, {level}, (spk_real)0.75)"
        fire = [f"    spk_real ratio = u * {inv};", f"    spk_real out = {theta} * {fired};"]
        if k["signed"]:
            fire += [
                "    if (!(out > 0)) {",
                f"        spk_real below = spk_level(-ratio, {level}, (spk_real)0.75);",
                f"        spk_real allowed = spk_level(GATE * {inv}, {level}, (spk_real)1);",
                f"        out = -({theta} * (below < allowed ? below : allowed));",
                "    }",
            ]  # fmt: skip
    else:
        half, v_init = f"{theta} / 2", f"{theta} / 2"
        fire = [f"    spk_real out = (u > {theta}) ? {theta} : (spk_real)0;"]
        if k["signed"]:
            fire += [f"    if (u < 0 && GATE >= {theta}) out -= {theta};"]
    carry = f"spk_clip({crpi} * (RESIDUAL), -({half}), {half})"
    if model.startswith("dc"):
        residual = (
            f"spk_max(st->{lp}_v[i] - st->{lp}_v0[i], -{_real(k['timesteps'])} * st->{lp}_Y[i])"
        )
        prime = [
            "if (tick == 0) {",
            f"    for (int i = 0; i < {size}; ++i) {{",
            f"        spk_real v = {v_init} + {carry.replace('RESIDUAL', residual)};",
            f"        st->{lp}_v[i] = v; st->{lp}_v0[i] = v; st->{lp}_x0[i] = J[i];",
            f"        st->{lp}_X[i] = J[i]; st->{lp}_Y[i] = 0; y[i] = 0;",
            "    }",
            "} else {",
            f"    for (int i = 0; i < {size}; ++i) {{",
            f"        spk_real delta = J[i] - st->{lp}_x0[i];",
            f"        spk_real u = st->{lp}_v[i] + delta + st->{lp}_X[i] - st->{lp}_Y[i];",
        ]
        gate = f"((spk_real)tick * st->{lp}_Y[i])"
        body = [f"    {line}".replace("GATE", gate) for line in fire]
        return (
            prime
            + body
            + [
                f"        st->{lp}_v[i] = u - out; y[i] = out;",
                f"        st->{lp}_X[i] = st->{lp}_X[i] + delta / (spk_real)tick;",
                f"        st->{lp}_Y[i] = st->{lp}_Y[i] + out / (spk_real)tick;",
                "    }",
                "}",
            ]
        )
    residual = f"spk_max(st->{lp}_v[i] - st->{lp}_v0[i], -st->{lp}_m[i])"
    return [
        f"for (int i = 0; i < {size}; ++i) {{",
        "    if (tick == 0) {",
        f"        spk_real v = {v_init} + {carry.replace('RESIDUAL', residual)};",
        f"        st->{lp}_v[i] = v; st->{lp}_v0[i] = v; st->{lp}_m[i] = 0;",
        "    }",
        f"    spk_real u = st->{lp}_v[i] + J[i];",
        *[line.replace("GATE", f"st->{lp}_m[i]") for line in fire],
        f"    st->{lp}_v[i] = u - out; st->{lp}_m[i] = st->{lp}_m[i] + out; y[i] = out;",
        "}",
    ]


def _stage_weights(e: _Emitter, name: str, op: dict, weight: np.ndarray) -> str:
    """Store a stage op's weights (float, or ``int8`` codes); returns the factor that scales
    its sums (``" * scale"`` for 8-bit weights, else empty)."""
    scale = op.get("weight_scale")
    if scale is None:
        e.const(f"{name}_w", weight)
        return ""
    e.const(f"{name}_w", weight, "int8_t")
    if isinstance(scale, str):
        return f" * {e.const(f'{name}_scale', e.arrays[scale])}[o]"
    return f" * (spk_real){_lit(scale)}"


def _conv_code(e: _Emitter, name: str, op: dict, shape: tuple, src: str, dst: str):
    """``dst = conv2d(src)`` (:mod:`spikerl.runtime.stages`); returns (lines, output shape)."""
    weight = e.arrays[op["weight"]]
    out_ch, cg, kh, kw = weight.shape
    (sh, sw), (ph, pw), (dh, dw) = op["stride"], op["padding"], op["dilation"]
    _, h, w = shape
    ho, wo = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    scaled = _stage_weights(e, name, op, weight)
    bias = f" + {e.const(f'{name}_b', e.arrays[op['bias']])}[o]" if op.get("bias") else ""
    return [
        f"for (int o = 0; o < {out_ch}; ++o) {{",
        f"    int g = o / {out_ch // op['groups']};",
        f"    for (int i = 0; i < {ho}; ++i) for (int j = 0; j < {wo}; ++j) {{",
        "        spk_real sum = 0;",
        f"        for (int c = 0; c < {cg}; ++c) for (int u = 0; u < {kh}; ++u) {{",
        f"            int ih = {sh} * i + {dh} * u - {ph};",
        f"            if (ih < 0 || ih >= {h}) continue;",
        f"            for (int v = 0; v < {kw}; ++v) {{",
        f"                int iw = {sw} * j + {dw} * v - {pw};",
        f"                if (iw < 0 || iw >= {w}) continue;",
        f"                sum += (spk_real){name}_w[((o * {cg} + c) * {kh} + u) * {kw} + v]"
        f" * {src}[((g * {cg} + c) * {h} + ih) * {w} + iw];",
        "            }",
        "        }",
        f"        {dst}[(o * {ho} + i) * {wo} + j] = sum{scaled}{bias};",
        "    }",
        "}",
    ], (out_ch, ho, wo)


def _pool_code(op: dict, shape: tuple, src: str, dst: str) -> tuple[list[str], tuple]:
    """``dst = avg_pool2d(src)``; returns (lines, output shape)."""
    (kh, kw), (sh, sw), (ph, pw) = op["kernel"], op["stride"], op["padding"]
    c, h, w = shape
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    counted = not op["count_include_pad"]  # divide by the inputs inside the image
    divisor = "(spk_real)n" if counted else f"(spk_real){kh * kw}"
    return [
        f"for (int c = 0; c < {c}; ++c) for (int i = 0; i < {ho}; ++i) "
        f"for (int j = 0; j < {wo}; ++j) {{",
        f"    spk_real sum = 0;{' int n = 0;' if counted else ''}",
        f"    for (int u = 0; u < {kh}; ++u) for (int v = 0; v < {kw}; ++v) {{",
        f"        int ih = {sh} * i + u - {ph}, iw = {sw} * j + v - {pw};",
        f"        if (ih < 0 || ih >= {h} || iw < 0 || iw >= {w}) continue;",
        f"        sum += {src}[(c * {h} + ih) * {w} + iw];{' ++n;' if counted else ''}",
        "    }",
        f"    {dst}[(c * {ho} + i) * {wo} + j] = sum / {divisor};",
        "}",
    ], (c, ho, wo)


def _stage_code(e: _Emitter, index: int, stage: dict[str, Any]) -> tuple[list[str], int]:
    """``J = stage(x)`` op by op through two scratch buffers; returns (lines, the largest
    intermediate size)."""
    shape, src, lines, largest = tuple(stage["in_shape"]), "x", [], 0
    ops = stage["ops"]
    for k, op in enumerate(ops):
        dst = "J" if k == len(ops) - 1 else ("sA" if src != "sA" else "sB")
        name = f"l{index}_op{k}"
        if op["op"] == "conv2d":
            code, shape = _conv_code(e, name, op, shape, src, dst)
        elif op["op"] == "avgpool2d":
            code, shape = _pool_code(op, shape, src, dst)
        elif op["op"] == "flatten":
            shape, size = (int(np.prod(shape)),), int(np.prod(shape))
            code = [f"memcpy({dst}, {src}, sizeof(spk_real) * {size});"] if dst == "J" else []
            dst = dst if dst == "J" else src
        else:
            weight = e.arrays[op["weight"]]
            scaled = _stage_weights(e, name, op, weight)
            bias = f" + {e.const(f'{name}_b', e.arrays[op['bias']])}[o]" if op.get("bias") else ""
            n_out, n_in = weight.shape
            term = f"(spk_real){name}_w[o * {n_in} + i] * {src}[i]"
            code = [f"for (int o = 0; o < {n_out}; ++o) {{", "    spk_real sum = 0;",
                    f"    for (int i = 0; i < {n_in}; ++i) sum += {term};",
                    f"    {dst}[o] = sum{scaled}{bias};", "}"]  # fmt: skip
            shape = (n_out,)
        lines += code
        largest = max(largest, int(np.prod(shape)))
        src = dst
    return lines, largest


#: Active inputs added per pass over a layer's currents, largest first: a pass adds that many
#: columns with one load and store of the sums (then the rest in smaller passes).
PASSES = (8, 4, 2, 1)


def _column_sums(n_in: int, n_out: int, col: str, acc: str, scaled: bool) -> list[str]:
    """``acc[i] += x_j col_j[i]`` over the active inputs ``j`` (``x_j != 0``) in ascending
    order. A pass over ``acc`` adds :data:`PASSES` columns as one left-to-right sum, which C
    evaluates in the order of one pass per column: the same sums, with fewer loads and stores
    of ``acc``. The active inputs are listed without a branch (a branch on random spikes
    mispredicts), four inputs per iteration. ``scaled``: inputs are not binary, so each column
    is multiplied by its input."""

    def term(k: int) -> str:
        return f"x[j{k}] * c{k}[i]" if scaled else f"c{k}[i]"

    lines = [f"int active[{n_in}], n_active = 0, a = 0;"]
    quads = n_in - n_in % 4
    if quads:
        listing = " ".join(f"active[n_active] = j + {k}; n_active += x[j + {k}] != 0;"
                           for k in range(4))  # fmt: skip
        lines.append(f"for (int j = 0; j < {quads}; j += 4) {{ {listing} }}")
    for j in range(quads, n_in):
        lines.append(f"active[n_active] = {j}; n_active += x[{j}] != 0;")
    lines.append(f"for (int i = 0; i < {n_out}; ++i) {acc}[i] = 0;")
    for count in PASSES:
        heads = " ".join(f"const int j{k} = active[a + {k}];" for k in range(count))
        cols = ", ".join(f"*c{k} = &W[j{k} * {n_out}]" for k in range(count))
        sum_ = " + ".join(term(k) for k in range(count))
        lines += [
            f"for (; a + {count} <= n_active; a += {count}) {{",
            f"    {heads} const {col} {cols};",
            f"    for (int i = 0; i < {n_out}; ++i) {acc}[i] = {acc}[i] + {sum_};",
            "}",
        ]
    return lines


def _synapse_code(e: _Emitter, index: int, layer: dict[str, Any], binary_input: bool) -> list[str]:
    """``J = W x + b`` with the weights stored input-major; zero inputs are skipped (a spike
    is 1: ``x_j w_ij = w_ij`` exactly, so binary inputs add the column without a product)."""
    weight = e.arrays[layer["weight"]]
    n_out, n_in = weight.shape
    lp = f"l{index}"
    scale = layer.get("weight_scale")
    bias = f"{e.const(f'{lp}_b', e.arrays[layer['bias']])}[i]" if layer.get("bias") else "0"
    if scale is None:
        e.const(f"{lp}_w", weight.T)
        sums = _column_sums(n_in, n_out, "spk_real", "J", not binary_input)
        return ["{", f"const spk_real *W = {lp}_w;", *sums,
                f"for (int i = 0; i < {n_out}; ++i) J[i] += {bias};", "}"]  # fmt: skip
    e.const(f"{lp}_w", weight.T, "int8_t")
    s = e.param(f"{lp}_scale", scale, n_out)
    if not binary_input:
        acc = "acc_f"
    else:  # every partial sum of output i is at most sum_j |w_ij| in size: in 16 bits when
        # that fits for every output (exact, twice the SIMD lanes of int32), else in 32
        widest_sum = int(np.abs(weight.astype(np.int64)).sum(axis=1).max())
        acc = "acc_h" if widest_sum <= np.iinfo(np.int16).max else "acc_i"
    sums = _column_sums(n_in, n_out, "int8_t", acc, not binary_input)
    return ["{", f"const int8_t *W = {lp}_w;", *sums,
            f"for (int i = 0; i < {n_out}; ++i) J[i] = {s} * (spk_real){acc}[i] + {bias};",
            "}"]  # fmt: skip


def _encoder_code(e: _Emitter, spec: dict[str, Any], n_obs: int) -> tuple[list, list, int, bool]:
    """(statements once per decision, statements per tick writing ``x``, width, binary)."""
    enc = spec["encoder"]
    if enc["kind"] == "direct":
        return [], [], enc.get("inputs") or n_obs, False
    if enc["kind"] != "population":
        raise ExportError(f"encoder: {enc['kind']!r} inputs have no C implementation")
    mu, sigma = e.arrays[enc["mu"]], e.arrays[enc["sigma"]]
    pop = np.broadcast_shapes(mu.shape, sigma.shape)[-1]
    shape = (n_obs, pop)
    e.const("enc_mu", np.broadcast_to(mu, shape))
    e.const("enc_sigma", np.broadcast_to(sigma, shape))
    width, v_th = n_obs * pop, _real(enc["v_th"])
    once = [
        f"for (int k = 0; k < {width}; ++k) {{",
        f"    spk_real d = obs[k / {pop}] - enc_mu[k];",
        "    st->enc_a[k] = SPK_EXP(-(d * d) / ((spk_real)2 * (enc_sigma[k] * enc_sigma[k])));",
        "    st->enc_v[k] = 0; st->enc_s[k] = 0;",
        "}",
    ]
    tick = [
        f"for (int k = 0; k < {width}; ++k) {{",
        f"    spk_real v = (st->enc_v[k] - {v_th} * st->enc_s[k]) + st->enc_a[k];",
        f"    st->enc_v[k] = v; st->enc_s[k] = x[k] = (v > {v_th}) ? 1 : 0;",
        "}",
    ]
    return once, tick, width, True


def _readout_code(e: _Emitter, spec: dict[str, Any], last: int, size: int, ticks: int):
    """(per-tick accumulation of the last layer's output ``y``, final statements into ``pre``)."""
    ro = spec["readout"]
    weight = e.arrays[ro["weight"]]
    bias = e.const("ro_b", e.arrays[ro["bias"]]) if ro.get("bias") else None
    plus_bias = " + ro_b[k]" if bias else ""
    if ro["kind"] == "population":
        m, pop = weight.shape
        e.const("ro_w", weight)
        accumulate = [f"for (int i = 0; i < {size}; ++i) st->ro_acc[i] += y[i];"]
        final = [
            f"for (int k = 0; k < {m}; ++k) {{",
            "    spk_real sum = 0;",
            f"    for (int p = 0; p < {pop}; ++p)",
            f"        sum += (st->ro_acc[k * {pop} + p] / (spk_real){ticks})"
            f" * ro_w[k * {pop} + p];",
            f"    pre[k] = sum{plus_bias};",
            "}",
        ]
        return accumulate, final, m
    m, _ = weight.shape
    e.const("ro_w", weight)
    source = ro["source"]
    if source == "weighted":
        tick_weights = e.arrays[ro["tick_weights"]].reshape(-1)
        if tick_weights.size != ticks:
            raise ExportError(f"readout: {tick_weights.size} tick weights for {ticks} ticks")
        e.const("ro_tick_w", tick_weights)
    accumulate = {
        "spikes": [f"if (tick == {ticks - 1})",
                   f"    for (int i = 0; i < {size}; ++i) st->ro_acc[i] = y[i];"],
        "rate": [f"for (int i = 0; i < {size}; ++i) st->ro_acc[i] += y[i];"],
        "count": [f"for (int i = 0; i < {size}; ++i) st->ro_acc[i] += y[i];"],
        "weighted": [f"for (int i = 0; i < {size}; ++i) st->ro_acc[i] += ro_tick_w[tick] * y[i];"],
        "membrane": [],
    }[source]  # fmt: skip
    source_vector = f"st->l{last}_v" if source == "membrane" else "st->ro_acc"
    divide = f" / (spk_real){ticks}" if source == "rate" else ""
    final = [
        f"for (int k = 0; k < {m}; ++k) {{",
        "    spk_real sum = 0;",
        f"    for (int i = 0; i < {size}; ++i) sum += ro_w[k * {size} + i] * {source_vector}[i];",
        f"    pre[k] = sum{divide}{plus_bias};",
        "}",
    ]
    return accumulate, final, m


def _host_code(e: _Emitter, spec: dict[str, Any], n_obs: int, m: int) -> list[str]:
    """``spikerl_step``: normalise, decide, scale to the env bounds, in ``double`` as
    :meth:`spikerl.runtime.Policy.act` does in float64 (the normalised observation rounded to
    ``float`` first, as spikerl's envs observe in float32)."""
    lines = ["void spikerl_step(const float *obs, spikerl_state *st, float *action) {",
             f"    spk_real x[{n_obs}], a[{m}];"]  # fmt: skip
    norm = spec.get("normalizer")
    if norm is not None:
        e.const("norm_mean", e.arrays[norm["mean"]].astype(np.float64), "double")
        sd = np.sqrt(e.arrays[norm["var"]].astype(np.float64) + norm["eps"])
        e.const("norm_sd", sd, "double")
        clip = _lit(norm["clip"])
        lines += [f"    for (int j = 0; j < {n_obs}; ++j) {{",
                  "        double z = ((double)obs[j] - norm_mean[j]) / norm_sd[j];",
                  f"        z = z < -{clip} ? -{clip} : (z > {clip} ? {clip} : z);",
                  "        x[j] = (spk_real)(float)z;", "    }"]  # fmt: skip
    else:
        lines.append(f"    for (int j = 0; j < {n_obs}; ++j) x[j] = (spk_real)obs[j];")
    lines.append("    spikerl_decide(x, st, a);")
    if spec.get("action_low"):
        e.const("act_low", e.arrays[spec["action_low"]].astype(np.float64), "double")
        e.const("act_high", e.arrays[spec["action_high"]].astype(np.float64), "double")
        lines.append(f"    for (int k = 0; k < {m}; ++k) action[k] = (float)(act_low[k] + "
                     "(act_high[k] - act_low[k]) * (((double)a[k] + 1.0) / 2.0));")  # fmt: skip
    else:
        lines.append(f"    for (int k = 0; k < {m}; ++k) action[k] = (float)a[k];")
    return [*lines, "}"]


_PRELUDE = """\
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <math.h>
#include "spikerl_policy.h"

#if SPIKERL_DOUBLE
#define SPK_EXP exp
#define SPK_TANH tanh
#else
#define SPK_EXP expf
#define SPK_TANH tanhf
#endif

static inline spk_real spk_max(spk_real a, spk_real b) { return a > b ? a : b; }
static inline spk_real spk_clip(spk_real x, spk_real lo, spk_real hi) {
    return x < lo ? lo : (x > hi ? hi : x);
}
/* The largest level table[k] with x >= scale * table[k] (k >= 1), else table[0] = 0. */
static inline spk_real spk_level(spk_real x, const spk_real *table, int levels, spk_real scale) {
    int k = 0;
    while (k < levels && x >= scale * table[k + 1]) ++k;
    return table[k];
}
"""


def c_sources(spec: dict[str, Any], arrays: dict[str, np.ndarray]) -> tuple[str, str, dict]:
    """The header and source text of the policy, and its sizes in bytes on a float32 target:
    ``flash`` (the constant arrays), ``ram`` (``sizeof(spikerl_state)``) and ``stack``
    (``spikerl_decide``'s local arrays)."""
    e = _Emitter(dequantize(spec, arrays, np.float64, weights=False))
    layers, ticks = spec["layers"], int(spec["timesteps"])
    n_obs = observation_dim(spec, arrays)
    once, tick_body, width, binary = _encoder_code(e, spec, n_obs)
    fields = [(f"enc_{f}", width) for f in "avs"] if spec["encoder"]["kind"] == "population" else []
    widest = max([width] + [layer["size"] for layer in layers])
    neuron_state, offset, largest_scratch = [], 0, 0
    for index, layer in enumerate(layers):
        neuron, size = layer["neuron"], layer["size"]
        update = _neuron_code(e, index, neuron, size)  # refuses a neuron kind C lacks
        neuron_state += [(f"l{index}_{f}", size) for f in neuron_fields(neuron)]
        if "stage" in layer:
            synapse, scratch = _stage_code(e, index, layer["stage"])
            largest_scratch = max(largest_scratch, scratch)
        else:
            synapse = _synapse_code(e, index, layer, binary)
        if index == 0 and spec["encoder"]["kind"] == "direct":  # one product per decision
            once += ["{ const spk_real *x = obs; spk_real *J = st->J0;", *synapse, "}"]
            fields.append(("J0", size))
            tick_body.append(f"memcpy(J, st->J0, sizeof(spk_real) * {size});")
        else:
            tick_body += synapse
        tick_body += ["{", *update, "}", "#ifdef SPIKERL_TRACE",
                      f"for (int i = 0; i < {size}; ++i) st->trace[{offset} + i] += (y[i] != 0);",
                      "#endif"]  # fmt: skip
        if index < len(layers) - 1:
            tick_body.append(f"memcpy(x, y, sizeof(spk_real) * {size});")
        binary, offset = neuron["kind"] in _BINARY, offset + size
    last, size = len(layers) - 1, layers[-1]["size"]
    accumulate, final, m = _readout_code(e, spec, last, size, ticks)
    fields += neuron_state + [("ro_acc", size)]
    int8 = any(layer.get("weight_scale") for layer in layers)
    ram = sum(n for _, n in fields) * 4
    # spikerl_decide's local arrays: observation, activity, currents and actions, the stage
    # buffers, the active-input list, and the int8 column sums (int32, int16 and float)
    stack = 4 * (n_obs + 3 * widest + m + 2 * largest_scratch + widest) + 10 * widest * int8
    squash = "SPK_TANH(obs_in[j])" if spec["squash_obs"] else "obs_in[j]"
    locals_ = [f"    spk_real obs[{n_obs}], x[{widest}], y[{widest}], J[{widest}], pre[{m}];"]
    if largest_scratch:
        locals_ += [f"    spk_real sA[{largest_scratch}], sB[{largest_scratch}];  /* stage */",
                    "    (void)sA; (void)sB;"]  # fmt: skip
    if int8:
        locals_ += [f"    int32_t acc_i[{widest}]; int16_t acc_h[{widest}];  /* int8 sums */",
                    f"    spk_real acc_f[{widest}];",
                    "    (void)acc_i; (void)acc_h; (void)acc_f;"]  # fmt: skip
    decide = [
        "void spikerl_decide(const spk_real *obs_in, spikerl_state *st, spk_real *action) {",
        *locals_,
        f"    for (int j = 0; j < {n_obs}; ++j) obs[j] = {squash};",
        "    memset(st->ro_acc, 0, sizeof st->ro_acc);",
        "#ifdef SPIKERL_TRACE",
        "    memset(st->trace, 0, sizeof st->trace);",
        "#endif",
    ]
    if not spec["stateful"]:  # every decision starts from rest
        decide += [f"    memset(st->{name}, 0, sizeof st->{name});" for name, _ in neuron_state]
    decide += [f"    {line}" for line in once]
    decide += [f"    for (int tick = 0; tick < {ticks}; ++tick) {{"]
    decide += [f"        {line}" for line in tick_body + accumulate]
    decide += ["    }", "    (void)x; (void)y; (void)J;"]
    decide += [f"    {line}" for line in final]
    head = "SPK_TANH(pre[k])" if spec["activation"] == "tanh" else "pre[k]"
    scale = _real(spec["max_action"])
    decide += [f"    for (int k = 0; k < {m}; ++k) action[k] = {scale} * {head};", "}"]
    host = _host_code(e, spec, n_obs, m)
    struct_fields = "\n".join(f"    spk_real {name}[{n}];" for name, n in fields)
    header = _HEADER.format(
        source=str(spec.get("source", {})).replace("*/", "* /"),
        layers=len(layers),
        ticks=ticks,
        flash=e.flash,
        ram=ram,
        stack=stack,
        kind="stateful" if spec["stateful"] else "stateless",
        n_obs=n_obs,
        m=m,
        fields=struct_fields,
        neurons=offset,
    )
    source = "\n".join([
        f"/* spikerl policy: generated by `spikerl export --format c`; see {C_HEADER}. */",
        _PRELUDE, *e.consts, "",
        "void spikerl_reset(spikerl_state *st) { memset(st, 0, sizeof *st); }",
        "size_t spikerl_state_bytes(void) { return sizeof(spikerl_state); }", "",
        *decide, "", *host, "",
    ])  # fmt: skip
    return header, source, {"flash": e.flash, "ram": ram, "stack": stack}


_HEADER = """\
/* spikerl policy: generated by `spikerl export --format c`; do not edit.
 * Source: {source}
 * {layers} spiking layers, T = {ticks} ticks per decision, {kind}.
 * Flash (constant arrays): {flash} bytes; RAM: {ram} bytes of spikerl_state and {stack} bytes
 * of spikerl_decide's stack (float32 build; the code itself is not counted).
 * Compile with -DSPIKERL_DOUBLE=1 for double precision, -DSPIKERL_TRACE for spike counts.
 */
#ifndef SPIKERL_POLICY_H
#define SPIKERL_POLICY_H

#include <stddef.h>

#ifndef SPIKERL_DOUBLE
#define SPIKERL_DOUBLE 0
#endif
#if SPIKERL_DOUBLE
typedef double spk_real;
#else
typedef float spk_real;
#endif

#define SPIKERL_OBS_DIM {n_obs}
#define SPIKERL_ACT_DIM {m}
#define SPIKERL_TIMESTEPS {ticks}
#define SPIKERL_NEURONS {neurons}

typedef struct {{
{fields}
#ifdef SPIKERL_TRACE
    spk_real trace[{neurons}]; /* spikes (non-zero outputs) per neuron in the last decision */
#endif
}} spikerl_state;

/* Start an episode: zero every state. */
void spikerl_reset(spikerl_state *st);
/* One decision on a raw env observation: normalise, run T ticks, write the env action. */
void spikerl_step(const float *obs, spikerl_state *st, float *action);
/* One decision on a normalised observation (as the actor sees it), action in max_action units. */
void spikerl_decide(const spk_real *obs, spikerl_state *st, spk_real *action);
/* sizeof(spikerl_state), for hosts that allocate it. */
size_t spikerl_state_bytes(void);

#endif
"""


def write_c(spec: dict[str, Any], arrays: dict[str, np.ndarray], folder: str | Path) -> dict:
    """Write :data:`C_HEADER` and :data:`C_SOURCE` into ``folder`` (created; each file written
    atomically); returns the sizes of :func:`c_sources`."""
    header, source, sizes = c_sources(spec, arrays)
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ExportError(f"cannot write {folder}: {err.strerror or err}") from None
    for name, text in ((C_HEADER, header), (C_SOURCE, source)):
        write_output(folder / name, lambda tmp, text=text: tmp.write_text(text), ExportError)
    return sizes
