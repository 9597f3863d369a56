"""An exported policy description back into a torch :class:`~spikerl.nets.spiking.SpikingNetwork`.

The inverse of :func:`~spikerl.export.npz.network_spec`, for files that come back into spikerl:
``spikerl energy policy.npz`` counts operations on the rebuilt network, and the NIR importer
(:mod:`spikerl.export.nir`) rebuilds through it. Learned parameters come back as fixed
constants with the same forward values: a PLIF's ``sigmoid(w)`` and a clipped per-neuron leak
as the leak factor (a per-neuron ``clip`` leak holding the factors), learned thresholds as
per-neuron buffers. 8-bit files are dequantised first (:mod:`spikerl.runtime.quantized`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..convert.build import StageSynapse
from ..nets.spiking import SpikingNetwork
from ..runtime.quantized import dequantize
from ..snn.coding import DirectEncoder, LinearReadout, PopulationDecoder, PopulationEncoder
from ..snn.conversion import ConversionNeuron
from ..snn.layers import CLIF, DN, LIF
from .npz import ExportError

__all__ = ["load_exported_network", "network_from_spec"]


def _tensor(value: Any, arrays: dict[str, np.ndarray]) -> torch.Tensor:
    value = arrays[value] if isinstance(value, str) else value
    return torch.as_tensor(np.asarray(value, np.float64), dtype=torch.get_default_dtype())


def _scalar_or_array(value: Any, arrays: dict[str, np.ndarray]) -> float | torch.Tensor:
    return _tensor(value, arrays) if isinstance(value, str) else float(value)


def _lif(p: dict[str, Any], size: int, arrays: dict[str, np.ndarray]) -> LIF:
    decay, v_th = _scalar_or_array(p["decay"], arrays), _scalar_or_array(p["v_th"], arrays)
    neuron = LIF(
        decay=decay if isinstance(decay, float) else 0.5,
        v_th=v_th if isinstance(v_th, float) else 0.0,
        reset=p["reset"],
        leak="fixed" if isinstance(decay, float) else "clip",
        threshold="fixed" if isinstance(v_th, float) else "buffer",
        size=size,
    )
    with torch.no_grad():
        if isinstance(decay, torch.Tensor):
            neuron.beta.copy_(decay.expand(size))
        if isinstance(v_th, torch.Tensor):
            neuron.v_th.copy_(v_th.expand(size))
    return neuron


def _neuron(p: dict[str, Any], size: int, arrays: dict[str, np.ndarray]) -> nn.Module:
    kind = p["kind"]
    if kind in ("lif", "if", "plif"):
        return _lif(p, size, arrays)
    if kind == "clif":
        return CLIF(float(p["current_decay"]), float(p["decay"]), float(p["v_th"]), size=size)
    if kind == "dn":
        return DN(float(p["v_th"]), size=size)
    if kind == "conversion":
        return ConversionNeuron(p["model"], size, int(p["timesteps"]), float(p["crpi"]),
                                int(p["levels"]), _tensor(p["theta"], arrays))  # fmt: skip
    raise ExportError(f"{kind!r} neurons: spikerl has no such neuron model")


def _linear(weight: str, bias: str | None, arrays: dict[str, np.ndarray]) -> nn.Linear:
    w = _tensor(weight, arrays)
    linear = nn.Linear(w.shape[1], w.shape[0], bias=bool(bias))
    with torch.no_grad():
        linear.weight.copy_(w)
        if bias:
            linear.bias.copy_(_tensor(bias, arrays))
    return linear


def _stage_module(op: dict[str, Any], arrays: dict[str, np.ndarray]) -> nn.Module:
    if op["op"] == "linear":
        return _linear(op["weight"], op.get("bias"), arrays)
    if op["op"] == "flatten":
        return nn.Flatten()
    if op["op"] == "avgpool2d":
        return nn.AvgPool2d(tuple(op["kernel"]), tuple(op["stride"]), tuple(op["padding"]),
                            count_include_pad=op["count_include_pad"])  # fmt: skip
    w = _tensor(op["weight"], arrays)
    conv = nn.Conv2d(w.shape[1] * op["groups"], w.shape[0], tuple(w.shape[2:]),
                     tuple(op["stride"]), tuple(op["padding"]), tuple(op["dilation"]),
                     op["groups"], bias=bool(op.get("bias")))  # fmt: skip
    with torch.no_grad():
        conv.weight.copy_(w)
        if op.get("bias"):
            conv.bias.copy_(_tensor(op["bias"], arrays))
    return conv


def _stage(stage: dict[str, Any], arrays: dict[str, np.ndarray]) -> StageSynapse:
    """A convolutional stage (:mod:`spikerl.runtime.stages`) as the converter's module."""
    modules = nn.Sequential(*(_stage_module(op, arrays) for op in stage["ops"]))
    in_shape = tuple(stage["in_shape"])
    with torch.no_grad():
        out_shape = tuple(modules(torch.zeros(1, *in_shape)).shape[1:])
    return StageSynapse(modules, in_shape, out_shape)


def _encoder(spec: dict[str, Any], arrays: dict[str, np.ndarray], width: int) -> nn.Module | None:
    enc, ticks = spec["encoder"], int(spec["timesteps"])
    if enc["kind"] == "none":
        return None
    if enc["kind"] == "direct":
        obs_dim = int(enc.get("obs_dim") or width)
        return DirectEncoder(obs_dim, ticks, enc.get("inputs"))
    mu, sigma = _tensor(enc["mu"], arrays), _tensor(enc["sigma"], arrays)
    pop = mu.shape[-1]
    encoder = PopulationEncoder(width // pop, pop, ticks, v_th=float(enc["v_th"]))
    with torch.no_grad():
        encoder.mu.copy_(mu.expand_as(encoder.mu))
        encoder.sigma.copy_(sigma.expand_as(encoder.sigma))
    return encoder


def _readout(spec: dict[str, Any], arrays: dict[str, np.ndarray], size: int) -> nn.Module:
    ro = spec["readout"]
    weight = _tensor(ro["weight"], arrays)
    if ro["kind"] == "population":
        readout = PopulationDecoder(weight.shape[0], weight.shape[1])
        with torch.no_grad():
            readout.weight.copy_(weight)
            readout.bias.copy_(_tensor(ro["bias"], arrays))
        return readout
    ticks = _tensor(ro["tick_weights"], arrays) if ro.get("tick_weights") else None
    readout = LinearReadout(size, weight.shape[0], ro["source"], ticks)
    with torch.no_grad():
        readout.linear.weight.copy_(weight)
        if ro.get("bias"):
            readout.linear.bias.copy_(_tensor(ro["bias"], arrays))
        else:
            readout.linear.bias = None
    return readout


def network_from_spec(
    spec: dict[str, Any], arrays: dict[str, np.ndarray], dtype: torch.dtype = torch.float32
) -> SpikingNetwork:
    """The torch network that a ``spikerl-numpy`` description describes, its parameters in
    ``dtype`` (float64 keeps float64 files exact)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # every module below is created in dtype
    try:
        return _network(spec, dequantize(spec, arrays, np.float64))
    finally:
        torch.set_default_dtype(previous)


def _network(spec: dict[str, Any], arrays: dict[str, np.ndarray]) -> SpikingNetwork:
    linears, neurons = [], []
    for layer in spec["layers"]:
        if "stage" in layer:
            linears.append(_stage(layer["stage"], arrays))
        else:
            linears.append(_linear(layer["weight"], layer.get("bias"), arrays))
        neurons.append(_neuron(layer["neuron"], int(layer["size"]), arrays))
    first = spec["layers"][0]
    width = (int(np.prod(first["stage"]["in_shape"])) if "stage" in first
             else linears[0].in_features)  # fmt: skip
    return SpikingNetwork(
        _encoder(spec, arrays, width), linears, neurons,
        _readout(spec, arrays, int(spec["layers"][-1]["size"])),
        timesteps=int(spec["timesteps"]), squash_obs=bool(spec["squash_obs"]),
        activation=spec["activation"], max_action=float(spec["max_action"]),
        stateful=bool(spec["stateful"]),
    ).eval()  # fmt: skip


def load_exported_network(
    path: str | Path,
) -> tuple[SpikingNetwork, dict[str, Any], dict[str, np.ndarray]]:
    """The torch network of an exported ``.npz`` (or ``.nir``) file, its description and
    arrays."""
    path = Path(path)
    if path.suffix == ".nir":
        from .nir import read_nir

        spec, arrays = read_nir(path)
    else:
        from ..runtime.policy import read_policy_file

        spec, arrays = read_policy_file(path)
    try:
        return network_from_spec(spec, arrays), spec, arrays
    except (KeyError, TypeError, ValueError, IndexError) as err:
        raise ExportError(
            f"{path}: incomplete policy description ({type(err).__name__}: {err})"
        ) from None
