"""Write a :class:`~spikerl.nets.spiking.SpikingNetwork` as a ``spikerl-numpy`` ``.npz``.

The network is read from its declared parts (encoder, synaptic layers, neuron layers with
:meth:`~spikerl.snn.layers.SpikingNeuron.neuron_parameters`, readout), never traced. Learned
leaks are written as the leak factor torch computes (``sigmoid(w)`` for PLIF,
``clip(beta, 0, 1)``), thresholds as floats or per-neuron arrays. Anything the runtime cannot
run is refused with the layer and the reason (:class:`ExportError`): ANN actors, synapses
other than ``nn.Linear`` (the convolutional stages of converted image policies) and a grid's
per-row CRPI alphas.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..atomic import write_output
from ..convert.build import StageSynapse
from ..errors import SpikerlError
from ..nets.spiking import SpikingNetwork
from ..runtime.neurons import NEURON_FIELDS
from ..runtime.policy import FORMAT, FORMAT_VERSION
from ..snn.coding import DirectEncoder, LinearReadout, PopulationDecoder, PopulationEncoder

__all__ = ["ExportError", "export_npz", "network_spec", "write_npz"]


class ExportError(SpikerlError, ValueError):
    """The policy has a part the chosen format cannot carry."""


class _Arrays:
    """Named arrays of the archive (``p0``, ``p1``, ...)."""

    def __init__(self) -> None:
        self.named: dict[str, np.ndarray] = {}

    def add(self, value: torch.Tensor | np.ndarray) -> str:
        name = f"p{len(self.named)}"
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        self.named[name] = np.array(value)
        return name

    def value(self, value: Any) -> Any:
        """A float stays a float; a tensor becomes a named array (a 0-d one, a float)."""
        if isinstance(value, torch.Tensor):
            return float(value) if value.dim() == 0 else self.add(value)
        return value


def _encoder(net: SpikingNetwork, arrays: _Arrays) -> dict[str, Any]:
    enc = net.encoder
    if enc is None:
        return {"kind": "none"}
    if isinstance(enc, PopulationEncoder):
        return {"kind": "population", "mu": arrays.add(enc.mu), "sigma": arrays.add(enc.sigma),
                "v_th": float(enc.v_th)}  # fmt: skip
    if isinstance(enc, DirectEncoder):
        return {"kind": "direct", "inputs": enc.inputs, "obs_dim": enc.obs_dim}
    raise ExportError(f"encoder: {type(enc).__name__} is not supported by the NumPy runtime")


def _neuron(name: str, neuron: nn.Module, arrays: _Arrays) -> dict[str, Any]:
    params = neuron.neuron_parameters()
    kind = params["kind"]
    if kind == "conversion":
        if isinstance(params["crpi"], list):
            raise ExportError(
                f"layer {name}: one CRPI alpha per batch row (a grid evaluation) is not a "
                "deployable policy; convert with one alpha"
            )
        return {key: arrays.value(value) for key, value in params.items()}
    if kind not in NEURON_FIELDS:
        raise ExportError(f"layer {name}: {kind!r} neurons are not supported by the runtime")
    if kind == "dn":
        return {"kind": kind, "v_th": arrays.value(params["v_th"])}
    return {key: arrays.value(value) for key, value in params.items()}


def _pair(value: int | tuple[int, ...]) -> list[int]:
    return [int(v) for v in value] if isinstance(value, tuple) else [int(value)] * 2


def _stage_op(name: str, m: nn.Module, arrays: _Arrays) -> dict[str, Any]:
    """One operation of a convolutional stage (:mod:`spikerl.runtime.stages`)."""
    bias = arrays.add(m.bias) if getattr(m, "bias", None) is not None else None
    if type(m) is nn.Conv2d and m.padding_mode == "zeros" and not isinstance(m.padding, str):
        return {"op": "conv2d", "weight": arrays.add(m.weight), "bias": bias,
                "stride": _pair(m.stride), "padding": _pair(m.padding),
                "dilation": _pair(m.dilation), "groups": m.groups}  # fmt: skip
    if type(m) is nn.AvgPool2d and not m.ceil_mode and m.divisor_override is None:
        return {"op": "avgpool2d", "kernel": _pair(m.kernel_size), "stride": _pair(m.stride),
                "padding": _pair(m.padding), "count_include_pad": m.count_include_pad}  # fmt: skip
    if type(m) is nn.Flatten and m.start_dim == 1 and m.end_dim == -1:
        return {"op": "flatten"}
    if type(m) is nn.Linear:
        return {"op": "linear", "weight": arrays.add(m.weight), "bias": bias}
    raise ExportError(
        f"layer {name}: a {m!r} in a convolutional stage is not supported (Conv2d with zero "
        "padding, AvgPool2d without ceil_mode or divisor_override, Flatten, Linear)"
    )


def _stage(name: str, synapse: StageSynapse, arrays: _Arrays) -> dict[str, Any]:
    ops = [_stage_op(name, m, arrays) for m in synapse.stage]
    return {"in_shape": list(synapse.in_shape), "ops": ops}


def _readout(net: SpikingNetwork, arrays: _Arrays) -> dict[str, Any]:
    dec = net.decoder
    if isinstance(dec, PopulationDecoder):
        return {"kind": "population", "weight": arrays.add(dec.weight),
                "bias": arrays.add(dec.bias)}  # fmt: skip
    if isinstance(dec, LinearReadout):
        bias = dec.linear.bias
        spec = {"kind": "linear", "source": dec.source, "weight": arrays.add(dec.linear.weight),
                "bias": arrays.add(bias) if bias is not None else None}  # fmt: skip
        if dec.source == "weighted":
            spec["tick_weights"] = arrays.add(dec.tick_weights)
        return spec
    raise ExportError(f"readout: {type(dec).__name__} is not supported by the NumPy runtime")


def network_spec(
    net: nn.Module,
    normalizer: dict[str, Any] | None = None,
    action_bounds: tuple[np.ndarray, np.ndarray] | None = None,
    source: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The runtime's JSON description of ``net`` and its named arrays."""
    if not isinstance(net, SpikingNetwork):
        raise ExportError(
            f"the policy is a {type(net).__name__}, not a spiking network; the NumPy runtime "
            "runs spiking policies"
        )
    arrays = _Arrays()
    layers = []
    for name, linear, neuron in zip(net.layer_names, net.linears, net.neurons, strict=True):
        layer: dict[str, Any] = {"weight": None, "bias": None}
        if type(linear) is nn.Linear:
            layer["weight"] = arrays.add(linear.weight)
            layer["bias"] = arrays.add(linear.bias) if linear.bias is not None else None
        elif type(linear) is StageSynapse:
            layer["stage"] = _stage(name, linear, arrays)
        else:
            raise ExportError(f"layer {name}: a {type(linear).__name__} synapse is not supported")
        layers.append({**layer, "size": neuron.size, "neuron": _neuron(name, neuron, arrays)})
    spec: dict[str, Any] = {
        "format": FORMAT, "version": FORMAT_VERSION, "timesteps": net.timesteps,
        "stateful": bool(net.stateful), "squash_obs": bool(net.squash_obs),
        "activation": net.activation, "max_action": float(net.max_action),
        "encoder": _encoder(net, arrays), "layers": layers, "readout": _readout(net, arrays),
        "normalizer": None, "action_low": None, "action_high": None, "source": source or {},
    }  # fmt: skip
    if normalizer is not None:
        spec["normalizer"] = {"mean": arrays.add(np.asarray(normalizer["mean"], np.float64)),
                              "var": arrays.add(np.asarray(normalizer["var"], np.float64)),
                              "clip": float(normalizer.get("clip", 10.0)),
                              "eps": float(normalizer.get("eps", 1e-8))}  # fmt: skip
    if action_bounds is not None:
        spec["action_low"] = arrays.add(np.asarray(action_bounds[0], np.float64))
        spec["action_high"] = arrays.add(np.asarray(action_bounds[1], np.float64))
    return spec, arrays.named


def export_npz(
    net: nn.Module,
    path: str | Path,
    normalizer: dict[str, Any] | None = None,
    action_bounds: tuple[np.ndarray, np.ndarray] | None = None,
    source: dict[str, Any] | None = None,
) -> Path:
    """Write ``net`` (with the run's normaliser and the env's action bounds) to ``path``,
    atomically; returns the path. ``action_bounds``: the env's, from
    :func:`spikerl.envs.action_bounds` (what ``spikerl export`` passes); None writes a policy
    that acts in [-1, 1], as spikerl's actors do inside :func:`~spikerl.envs.make_env`."""
    return write_npz(*network_spec(net, normalizer, action_bounds, source), path)


def write_npz(spec: dict[str, Any], named: dict[str, np.ndarray], path: str | Path) -> Path:
    """Write a description and its arrays as a ``spikerl-numpy`` file, atomically."""
    path = Path(path)
    buffer = io.BytesIO()
    np.savez(buffer, spec=np.array(json.dumps(spec)), **named)
    write_output(path, lambda tmp: tmp.write_bytes(buffer.getvalue()), ExportError)
    return path
