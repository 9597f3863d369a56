r"""A spiking policy as a NIR graph (Neuromorphic Intermediate Representation), and back.

Needs the extra ``spikerl[nir]`` (package ``nir``, imported here only). The graph is built from
the exported description (:func:`~spikerl.export.npz.network_spec`), never traced, and holds
the spiking core; what NIR has no primitive for travels in the graph's metadata or is refused
with the layer and the reason (see ``docs/deploy.md``, and ``../shared/design/energy.md``
Sec. 7).

**Graph.** ``input -> [Affine -> LIF | CubaLIF | IF] x L -> Affine -> I -> output``. The input
node carries what the first layer receives each tick: the population encoder's spikes (the
Gaussian fields and the generator run on the host, their constants in the metadata) or the
observation itself (direct input, the same current every tick). The readout is an ``Affine``
into an integrator ``I`` whose value after T ticks is the pre-``tanh`` action: the population
decoder as a block-diagonal ``m x mP`` matrix, weights and bias divided by T; a linear count
readout with its bias divided by T; a rate readout with weights and bias divided by T. The
``tanh``, ``max_action``, the observation normaliser and the env's action bounds are host
post/pre-processing in the metadata. ``readout="host"`` ends the graph at the last spiking layer
instead (for importers without an ``I`` node) and leaves the readout to the host as well.

**Time.** A tick lasts ``dt`` seconds (default ``1e-4``, snnTorch's and Norse's convention).
Forward Euler, :math:`v_t = v_{t-1} + \tfrac{dt}{\tau}(v_{leak} - v_{t-1} + R\,I_t)`, gives
spikerl's discrete LIF :math:`v_t = \lambda v_{t-1} + J_t` exactly when

.. math::
    \tau = \frac{dt}{1 - \lambda}, \qquad R = \frac{\tau}{dt} = \frac{1}{1 - \lambda},
    \qquad v_{leak} = v_{reset} = 0,

so leak 0.75 is :math:`\tau = 4\,dt`, :math:`R = 4`. CLIF's current decay :math:`\kappa`
maps the same way onto CubaLIF's synapse, :math:`\tau_{syn} = dt / (1 - \kappa)` and
:math:`w_{in} = \tau_{syn}/dt` (0.5 is :math:`2\,dt`, :math:`w_{in} = 2`), the current updated
before the membrane in the same tick; IF (no leak) has :math:`R = 1/dt`; the integrator
:math:`R = 1/dt`. Exact exponential integration would give :math:`\tau = dt / \ln(1/\lambda)`
(3.48 dt for 0.75) instead: the metadata states ``dt``, ``discretisation = "forward-euler"``,
``timesteps`` and ``reset_per_decision`` (every state zeroed before each decision, or carried
for a stateful controller), so an importer need not guess.

**Refused** (:class:`~spikerl.export.npz.ExportError`, naming the layer): soft or detached
resets (NIR neurons reset to :math:`v_{reset}`), DN neurons (no primitive), every conversion
neuron (subtractive reset, start at :math:`\vartheta/2`, graded or signed outputs, CRPI carry),
per-neuron leaks of 1 beside leaks below 1, and readouts from the membrane, the last tick's
spikes (T > 1) or tick-weighted counts with ``readout="graph"``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import write_output
from ..runtime.policy import FORMAT, FORMAT_VERSION
from ..runtime.quantized import dequantize
from .npz import ExportError

__all__ = [
    "DEFAULT_DT",
    "MAX_DT",
    "NIR_READOUTS",
    "check_dt",
    "nir_graph",
    "read_nir",
    "spec_from_nir",
    "write_nir",
]

DEFAULT_DT = 1e-4
#: The longest tick ``dt`` accepted, seconds (a longer one makes the neurons' NIR time
#: constants overflow or mean nothing a neuromorphic chip runs).
MAX_DT = 1.0
NIR_READOUTS = ("graph", "host")
_HOST_KEYS = ("squash_obs", "activation", "max_action", "stateful", "normalizer",
              "action_low", "action_high", "source", "encoder")  # fmt: skip


def _nir():
    try:
        import nir
    except ImportError:
        raise ExportError(
            "--format nir needs the package 'nir': pip install 'spikerl[nir]'"
        ) from None
    return nir


def _array(value: Any, arrays: dict[str, np.ndarray], size: int) -> np.ndarray:
    value = arrays[value] if isinstance(value, str) else value
    return np.broadcast_to(np.asarray(value, np.float64), (size,)).copy()


def _neuron_node(nir, index: int, p: dict[str, Any], size: int, arrays, dt: float):
    kind, name = p["kind"], f"layer {index}"
    if kind == "dn":
        raise ExportError(
            f"{name}: DN neurons (quadratic membrane and adaptation) have no NIR node"
        )
    if kind == "conversion":
        raise ExportError(
            f"{name}: the conversion neuron {p['model']!r} resets by subtraction, starts each "
            "decision at theta/2 and carries residue (CRPI); NIR neurons cannot; deploy it "
            "with --format numpy or c"
        )
    if p.get("reset", "hard") != "hard":
        raise ExportError(
            f"{name}: {kind.upper()} with {p['reset']} reset: NIR neurons reset to v_reset "
            "(hard reset only); export it with --format numpy or c"
        )
    v_th, zeros = _array(p["v_th"], arrays, size), np.zeros(size)
    decay = _array(p["decay"], arrays, size)
    if np.all(decay == 1.0) and kind != "clif":
        return nir.IF(r=np.full(size, 1.0 / dt), v_threshold=v_th, v_reset=zeros)
    if np.any(decay >= 1.0) or np.any(decay < 0.0):
        what = "a CLIF" if kind == "clif" else "a layer mixing leak 1 (IF) with leaks below 1"
        raise ExportError(f"{name}: {what}: a leak of 1 has no finite NIR tau; leaks in [0, 1)")
    tau = dt / (1.0 - decay)
    if kind != "clif":
        return nir.LIF(tau=tau, r=tau / dt, v_leak=zeros, v_threshold=v_th, v_reset=zeros)
    current_decay = _array(p["current_decay"], arrays, size)
    if np.any(current_decay >= 1.0) or np.any(current_decay < 0.0):
        raise ExportError(f"{name}: a CLIF current decay of 1 has no finite NIR tau_syn")
    tau_syn = dt / (1.0 - current_decay)
    return nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau, r=tau / dt, v_leak=zeros,
                       v_threshold=v_th, v_reset=zeros, w_in=tau_syn / dt)  # fmt: skip


def _readout_affine(spec: dict[str, Any], arrays, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Weight and bias of the Affine into the integrator (value after T ticks = pre-tanh)."""
    ro, ticks = spec["readout"], int(spec["timesteps"])
    weight = np.asarray(arrays[ro["weight"]], np.float64)
    bias = np.asarray(arrays[ro["bias"]], np.float64) if ro.get("bias") else np.zeros(len(weight))
    if ro["kind"] == "population":
        m, pop = weight.shape
        block = np.zeros((m, m * pop))
        for k in range(m):
            block[k, k * pop : (k + 1) * pop] = weight[k]
        return block / ticks, bias / ticks
    source = ro["source"]
    if source == "count" or (source == "spikes" and ticks == 1):
        return weight, bias / ticks
    if source == "rate":
        return weight / ticks, bias / ticks
    raise ExportError(
        f"readout: a linear readout of the {source!r} has no NIR form (the integrator sums "
        "spikes over the ticks); use --nir-readout host"
    )


def check_dt(dt: float) -> None:
    """Refuse (:class:`ExportError`) a tick ``dt`` that is not in (0, :data:`MAX_DT`] seconds."""
    if not (math.isfinite(dt) and 0 < dt <= MAX_DT):
        raise ExportError(
            f"dt = {dt}: a tick must last a finite, positive number of seconds, at most "
            f"{MAX_DT:g} s"
        )


def nir_graph(
    spec: dict[str, Any], arrays: dict[str, np.ndarray], dt: float = DEFAULT_DT,
    readout: str = "graph",
):  # fmt: skip
    """The ``nir.NIRGraph`` of an exported description (see the module docstring)."""
    nir = _nir()
    if readout not in NIR_READOUTS:
        raise ValueError(f"readout={readout!r}; choose one of {', '.join(NIR_READOUTS)}")
    check_dt(dt)
    if readout == "host" and spec["readout"].get("source") == "membrane":
        raise ExportError(
            "readout: a membrane readout needs the last layer's membrane, which a NIR graph "
            "does not output; export with --format numpy or c"
        )
    arrays = dequantize(spec, arrays, np.float64)
    for index, layer in enumerate(spec["layers"]):
        if "stage" in layer:
            raise ExportError(f"layer {index}: convolutional stages are not exported to NIR")
    if spec["encoder"]["kind"] == "none":
        raise ExportError("encoder: a network fed spike trains directly has no host encoder")
    width = int(arrays[spec["layers"][0]["weight"]].shape[1])
    nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.array([width])})}
    edges, previous = [], "input"
    for index, layer in enumerate(spec["layers"]):
        weight = np.asarray(arrays[layer["weight"]], np.float64)
        synapse = (nir.Affine(weight=weight, bias=np.asarray(arrays[layer["bias"]], np.float64))
                   if layer.get("bias") else nir.Linear(weight=weight))  # fmt: skip
        nodes[f"fc{index}"] = synapse
        nodes[f"lif{index}"] = _neuron_node(nir, index, layer["neuron"], layer["size"], arrays, dt)
        edges += [(previous, f"fc{index}"), (f"fc{index}", f"lif{index}")]
        previous = f"lif{index}"
    size = int(spec["layers"][-1]["size"])
    if readout == "graph":
        weight, bias = _readout_affine(spec, arrays, size)
        nodes["readout"] = nir.Affine(weight=weight, bias=bias)
        nodes["integrator"] = nir.I(r=np.full(len(weight), 1.0 / dt))
        edges += [(previous, "readout"), ("readout", "integrator")]
        previous, out = "integrator", len(weight)
    else:
        out = size
    nodes["output"] = nir.Output(output_type={"output": np.array([out])})
    edges.append((previous, "output"))
    host = {key: spec.get(key) for key in _HOST_KEYS}
    host["readout"] = spec["readout"] if readout == "host" else {"kind": "integrator"}
    host_arrays = _host_arrays(spec, host, arrays)
    metadata = {
        "dt": float(dt), "discretisation": "forward-euler", "timesteps": int(spec["timesteps"]),
        "reset_per_decision": not spec["stateful"], "readout": readout,
        "spikerl": json.dumps(host), **host_arrays,
    }  # fmt: skip
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def _host_arrays(spec, host: dict[str, Any], arrays) -> dict[str, np.ndarray]:
    """The arrays the host description names, as ``host.<name>`` metadata entries."""
    names = [host["encoder"].get(k) for k in ("mu", "sigma")]
    names += [(spec.get("normalizer") or {}).get(k) for k in ("mean", "var")]
    names += [spec.get("action_low"), spec.get("action_high")]
    if host["readout"].get("kind") != "integrator":
        names += [host["readout"].get(k) for k in ("weight", "bias", "tick_weights")]
    return {f"host.{n}": np.asarray(arrays[n]) for n in names if isinstance(n, str)}


def write_nir(
    spec: dict[str, Any], arrays: dict[str, np.ndarray], path: str | Path,
    dt: float = DEFAULT_DT, readout: str = "graph",
) -> Path:  # fmt: skip
    """Write the graph with ``nir.write`` (HDF5), atomically; returns the path."""
    nir, path = _nir(), Path(path)
    graph = nir_graph(spec, arrays, dt, readout)
    write_output(path, lambda tmp: nir.write(tmp, graph), ExportError)
    return path


# --- import --------------------------------------------------------------------------------


def _chain(graph) -> list[str]:
    """The node names from input to output (the graph must be a chain)."""
    following = dict(graph.edges)
    if len(following) != len(graph.edges):
        raise ExportError("NIR graph: a node feeds two others; spikerl reads chains only")
    names, node = [], next(n for n, v in graph.nodes.items() if type(v).__name__ == "Input")
    while node in following:
        node = following[node]
        names.append(node)
    return names


def _constant(values: np.ndarray) -> float | np.ndarray:
    values = np.asarray(values, np.float64).ravel()
    return float(values[0]) if np.all(values == values[0]) else values


def _neuron_spec(node, dt: float, name: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    kind = type(node).__name__

    def stored(value: float | np.ndarray) -> float | str:
        if isinstance(value, float):
            return value
        arrays[f"n{len(arrays)}"] = value
        return f"n{len(arrays) - 1}"

    if np.any(np.asarray(node.v_reset) != 0):
        raise ExportError(f"NIR {name}: v_reset != 0 is not a spikerl neuron")
    v_th = stored(_constant(node.v_threshold))
    if kind == "IF":
        _check(np.asarray(node.r) * dt, f"NIR {name}: r dt")
        return {"kind": "lif", "decay": 1.0, "v_th": v_th, "reset": "hard"}
    if np.any(np.asarray(node.v_leak) != 0):
        raise ExportError(f"NIR {name}: v_leak != 0 is not a spikerl neuron")
    tau = node.tau if kind == "LIF" else node.tau_mem
    _check(np.asarray(node.r) * dt / np.asarray(tau), f"NIR {name}: r dt / tau")
    decay = stored(_constant(1.0 - dt / np.asarray(tau)))
    if kind == "LIF":
        return {"kind": "lif", "decay": decay, "v_th": v_th, "reset": "hard"}
    _check(np.asarray(node.w_in) * dt / np.asarray(node.tau_syn), f"NIR {name}: w_in dt / tau_syn")
    current_decay = _constant(1.0 - dt / np.asarray(node.tau_syn))
    if not isinstance(current_decay, float) or not isinstance(decay, float):
        raise ExportError(f"NIR {name}: spikerl's CLIF has one leak and current decay per layer")
    return {"kind": "clif", "current_decay": current_decay, "decay": decay, "v_th": v_th,
            "reset": "hard"}  # fmt: skip


def _check(scale: np.ndarray, what: str) -> None:
    """spikerl's neurons take the synaptic current unscaled: the Euler factor must be 1."""
    if not np.allclose(scale, 1.0, rtol=1e-9, atol=0):
        raise ExportError(f"{what} = {np.unique(scale)[:3]}, not 1: not a spikerl neuron")


def spec_from_nir(graph) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A ``spikerl-numpy`` description of a graph written by :func:`nir_graph` (or any chain
    of Affine/Linear -> LIF/CubaLIF/IF pairs with the same metadata)."""
    meta = graph.metadata or {}
    if "spikerl" not in meta:
        raise ExportError("NIR graph: no 'spikerl' metadata (host encoder and readout unknown)")
    text = meta["spikerl"]
    host = json.loads(text.decode() if isinstance(text, bytes) else str(text))
    dt, ticks = float(meta["dt"]), int(meta["timesteps"])
    arrays = {key[5:]: np.asarray(v) for key, v in meta.items() if key.startswith("host.")}
    layers, names, weight = [], _chain(graph), None
    for name in names:
        node, kind = graph.nodes[name], type(graph.nodes[name]).__name__
        if kind in ("Affine", "Linear"):
            weight = name
            arrays[f"{name}.weight"] = np.asarray(node.weight, np.float64)
            if kind == "Affine":
                arrays[f"{name}.bias"] = np.asarray(node.bias, np.float64)
        elif kind in ("LIF", "CubaLIF", "IF"):
            layers.append({"weight": f"{weight}.weight",
                           "bias": f"{weight}.bias" if f"{weight}.bias" in arrays else None,
                           "size": int(np.asarray(node.v_threshold).size),
                           "neuron": _neuron_spec(node, dt, name, arrays)})  # fmt: skip
        elif kind == "I":
            _check(np.asarray(node.r) * dt, f"NIR {name}: r dt")
            bias = arrays.get(f"{weight}.bias", np.zeros(len(arrays[f"{weight}.weight"])))
            arrays[f"{weight}.bias"] = bias * ticks  # the count readout adds its bias once
            host["readout"] = {"kind": "linear", "source": "count",
                               "weight": f"{weight}.weight", "bias": f"{weight}.bias"}  # fmt: skip
        elif kind != "Output":
            raise ExportError(f"NIR {name}: a {kind} node has no spikerl counterpart")
    spec = {"format": FORMAT, "version": FORMAT_VERSION, "timesteps": ticks, "layers": layers,
            **{k: host[k] for k in _HOST_KEYS}, "readout": host["readout"]}  # fmt: skip
    spec["stateful"] = not bool(meta["reset_per_decision"])
    return spec, arrays


def read_nir(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """:func:`spec_from_nir` of a file written with ``nir.write``; a bad file is one
    :class:`~spikerl.export.npz.ExportError` line."""
    nir, path = _nir(), Path(path)
    try:
        graph = nir.read(path)
    except (OSError, KeyError, ValueError) as err:
        raise ExportError(f"{path}: not a readable NIR file ({err})") from None
    try:
        return spec_from_nir(graph)
    except ExportError as err:
        raise ExportError(f"{path}: {err}") from None
    except (KeyError, TypeError, ValueError, StopIteration) as err:
        raise ExportError(
            f"{path}: not a spikerl NIR graph ({type(err).__name__}: {err})"
        ) from None
