r"""A spiking policy exported as one ``.npz`` file, run with NumPy.

**File format** (``spikerl-numpy``, version 1): a NumPy ``.npz`` archive with

- ``spec``: a JSON string, the network description:
  ``{"format", "version", "timesteps", "stateful", "squash_obs", "activation", "max_action",
  "encoder": {...}, "layers": [{"weight", "bias", "size", "neuron": {"kind", ...}}, ...],
  "readout": {...}, "normalizer": {"mean", "var", "clip", "eps"} | null,
  "action_low", "action_high" (array names or null), "source": {...}}``; a convolutional
  layer of a converted image policy has ``"stage": {"in_shape", "ops"}`` and a null weight
  (:mod:`spikerl.runtime.stages`); an 8-bit file has ``"quantization"``, ``int8`` weights and
  ``uint8`` thresholds (:mod:`spikerl.runtime.quantized`);
  every string value that names an array refers to another entry of the archive;
- the arrays: weights ``[out, in]``, biases, per-neuron leaks and thresholds, encoder centres
  and widths, readout weights, normaliser statistics and action bounds.

**One decision** (:meth:`Policy.decide`), as :class:`spikerl.nets.spiking.SpikingNetwork`:
observation ``x [B, n]`` -> (``tanh`` if ``squash_obs``) -> encoder ``[T, B, n']`` -> for each
layer: currents ``J = x W^T + b`` for all T ticks, then the layer's neurons over the T ticks
-> readout -> ``max_action * tanh`` (or no activation). A stateless policy starts every
decision from zero state; a ``stateful`` one carries its state to the next call until
:meth:`Policy.reset`.

:meth:`Policy.act` is the deployment entry point: a raw environment observation is normalised
with the training run's statistics (``(s - mean) / sqrt(var + eps)``, clipped to
``+-clip``), decided, and the action in ``[-1, 1]`` is mapped to the env's bounds
``low + (high - low) (a + 1) / 2`` (Gymnasium's ``RescaleAction``, which spikerl's envs
apply in training).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError
from .neurons import (
    conversion_constants,
    encode,
    neuron_fields,
    readout,
    run_layer,
)  # fmt: skip
from .quantized import dequantize
from .stages import run_stage

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "Policy",
    "PolicyFileError",
    "load_policy",
    "read_policy_file",
]

FORMAT, FORMAT_VERSION = "spikerl-numpy", 1


class PolicyFileError(UsageError):
    """The file is not a readable spikerl NumPy policy."""


class Policy:
    """An exported spiking policy; see the module docstring.

    Args:
        spec: the JSON network description.
        arrays: the named arrays it refers to.
        dtype: ``float64`` (default) or ``float32``: every array and state is cast to it.
    """

    def __init__(
        self, spec: dict[str, Any], arrays: dict[str, np.ndarray], dtype: str = "float64"
    ) -> None:
        _check_dtype(dtype)
        self.spec, self.dtype = spec, np.dtype(dtype)
        floats = dequantize(spec, arrays, self.dtype)
        self.arrays = {k: np.asarray(v, self.dtype) for k, v in floats.items()}
        norm = spec.get("normalizer") or {}  # host-side statistics stay float64 in either dtype
        host = (norm.get("mean"), norm.get("var"), spec.get("action_low"), spec.get("action_high"))
        self._float64 = {k: np.asarray(arrays[k], np.float64) for k in host if k is not None}
        self.timesteps = int(spec["timesteps"])
        self.obs_dim = observation_dim(spec, arrays)
        encoder = spec["encoder"]  # files from before "obs_dim" know only the columns read
        self._width_known = not (encoder.get("inputs") is not None and not encoder.get("obs_dim"))
        self.stateful = bool(spec["stateful"])
        self.layers = spec["layers"]
        self.state: list[tuple[np.ndarray, ...]] | None = None
        self._neuron_params = [self._resolve(layer["neuron"]) for layer in self.layers]
        self._biases = [self.arrays[layer["bias"]] if layer.get("bias") else None
                        for layer in self.layers]  # fmt: skip
        self._weights_t = [
            np.ascontiguousarray(self.arrays[layer["weight"]].T) if layer["weight"] else None
            for layer in self.layers
        ]

    def _resolve(self, params: dict[str, Any]) -> dict[str, Any]:
        """Neuron parameters with array names replaced by the arrays and numbers made 0-d arrays
        of the policy's dtype (the same arithmetic as a Python float, which NumPy rounds to the
        array's dtype, without converting it on every operation)."""
        resolved = {}
        for key, value in params.items():
            if isinstance(value, str) and value in self.arrays and key != "kind":
                value = self.arrays[value]
            elif isinstance(value, float):
                value = np.asarray(value, self.dtype)
            resolved[key] = value
        if resolved["kind"] == "conversion":
            return conversion_constants(resolved, self.dtype)
        return resolved

    # --- state ---------------------------------------------------------------------------------
    def reset(self, mask: np.ndarray | None = None) -> None:
        """Episode start: zero the carried state (or only the rows where ``mask`` is True)."""
        if mask is None or self.state is None:
            self.state = None
            return
        rows = np.asarray(mask, bool)
        for layer_state in self.state:
            for field in layer_state:
                field[rows] = 0.0

    def _initial_state(self, batch: int) -> list[tuple[np.ndarray, ...] | None]:
        """The carried state, or ``None`` per layer for the zero state."""
        if self.stateful and self.state is not None:
            if self.state[0][0].shape[0] != batch:
                raise UsageError(
                    f"the carried state is for a batch of {self.state[0][0].shape[0]}, got "
                    f"{batch}; call reset() first"
                )
            return list(self.state)
        return [None] * len(self.layers)

    # --- decisions -----------------------------------------------------------------------------
    def trace(self, obs: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """One decision for ``obs [B, n]``: the action ``[B, m]`` and each layer's spike
        counts ``[B, N]`` (non-zero outputs over the T ticks)."""
        return self._run(obs, counts=True)

    def decide(self, obs: np.ndarray) -> np.ndarray:
        """The action for an observation as the actor sees it, ``[n] -> [m]`` or
        ``[B, n] -> [B, m]``."""
        x = self._checked(obs, self.dtype)
        single = x.ndim == 1
        action, _ = self._run(x[None] if single else x, counts=False)
        return action[0] if single else action

    def _checked(self, obs: np.ndarray, dtype: np.dtype | type, batch: bool = False) -> np.ndarray:
        """``obs`` as an array of ``dtype``, refused unless it is ``[n]`` (not if ``batch``)
        or ``[B, n]``."""
        x = np.asarray(obs, dtype)
        width = x.shape[-1] if x.ndim else 0
        fits = width == self.obs_dim if self._width_known else width >= self.obs_dim
        if x.ndim not in ((2,) if batch else (1, 2)) or not fits:
            n = self.obs_dim if self._width_known else f"n >= {self.obs_dim}"
            one = "" if batch else f"({n},) or "
            raise UsageError(
                f"observation of shape {x.shape}; this policy takes {one}a batch (B, {n})"
            )
        return x

    def _run(self, obs: np.ndarray, counts: bool) -> tuple[np.ndarray, list[np.ndarray]]:
        x = self._checked(obs, self.dtype, batch=True)
        if self.spec["squash_obs"]:
            x = np.tanh(x)
        x = encode(x, self.spec["encoder"], self.arrays, self.timesteps)
        ticks, batch = x.shape[:2]
        states = self._initial_state(batch)
        spike_counts = []
        for i, layer in enumerate(self.layers):
            # all T ticks' currents in one product: J = x W^T + b, [T * B, n] rows at once (a
            # sum over the active inputs only costs more in NumPy at these sizes, see deploy.md)
            rows, bias = x.reshape(ticks * batch, -1), self._biases[i]
            if "stage" in layer:  # a convolutional stage of a converted image policy
                currents = run_stage(rows, layer["stage"], self.arrays).reshape(ticks, batch, -1)
                currents = currents if bias is None else currents + bias
            else:  # a fresh product: the bias is added in place
                currents = (rows @ self._weights_t[i]).reshape(ticks, batch, -1)
                if bias is not None:
                    np.add(currents, bias, out=currents)
            kind = layer["neuron"]["kind"]
            x, states[i] = run_layer(kind, currents, states[i], self._neuron_params[i])
            if counts:
                spike_counts.append((x != 0).sum(axis=0))
        if self.stateful:
            self.state = states
        membrane = states[-1][neuron_fields(self.layers[-1]["neuron"]).index("v")]
        pre = readout(x, membrane, self.spec["readout"], self.arrays)
        action = np.tanh(pre) if self.spec["activation"] == "tanh" else pre
        return self.spec["max_action"] * action, spike_counts

    def act(self, raw_obs: np.ndarray) -> np.ndarray:
        """Normalise a raw env observation, decide, and scale the action to the env's bounds."""
        x = self._checked(raw_obs, np.float32)  # spikerl's envs observe in float32
        norm = self.spec.get("normalizer")
        if norm is not None:
            mean, var = self._float64[norm["mean"]], self._float64[norm["var"]]
            x = np.clip((x - mean) / np.sqrt(var + norm["eps"]), -norm["clip"], norm["clip"])
            x = x.astype(np.float32)
        action = self.decide(x)
        low, high = self.spec.get("action_low"), self.spec.get("action_high")
        if low is None:
            return action
        low, high = self._float64[low], self._float64[high]
        return low + (high - low) * ((action + 1.0) / 2.0)


def _check_dtype(dtype: str) -> None:
    if dtype not in ("float32", "float64"):
        raise UsageError(f"dtype={dtype!r}; choose 'float32' or 'float64'")


def observation_dim(spec: dict[str, Any], arrays: dict[str, np.ndarray]) -> int:
    """The length of the raw observation the policy takes."""
    first, enc = spec["layers"][0], spec["encoder"]
    if "stage" in first:
        width = int(np.prod(first["stage"]["in_shape"]))
    else:
        width = int(arrays[first["weight"]].shape[1])
    if enc["kind"] == "population":
        return width // int(np.asarray(arrays[enc["mu"]]).shape[-1])
    return int(enc.get("obs_dim") or width)


def checked_policy(
    spec: dict[str, Any], arrays: dict[str, np.ndarray], dtype: str = "float64", name: Any = ""
) -> Policy:
    """The policy, after one decision on a zero observation has read every array it needs;
    a missing or misshapen one is a :class:`PolicyFileError` naming ``name``."""
    _check_dtype(dtype)
    try:
        policy = Policy(spec, arrays, dtype)
        policy.act(np.zeros(observation_dim(spec, policy.arrays), np.float32))
    except (KeyError, TypeError, ValueError, IndexError) as err:
        raise PolicyFileError(
            f"{name}: incomplete policy spec ({type(err).__name__}: {err})"
        ) from None
    policy.reset()
    return policy


def read_policy_file(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The description and arrays of an exported file; a bad file is a
    :class:`PolicyFileError` naming it."""
    path = Path(path)
    if path.suffix.lower() == ".nir":
        raise PolicyFileError(
            f"{path} is a NIR graph (for neuromorphic toolchains), not a NumPy policy; export "
            "one with spikerl export RUN --format numpy"
        )
    if path.is_file() and not zipfile.is_zipfile(path):
        raise PolicyFileError(f"{path}: not a readable .npz file (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise PolicyFileError(f"{path}: not a readable .npz file ({err or 'empty'})") from None
    try:
        spec = json.loads(str(arrays.pop("spec")))
    except (KeyError, ValueError):
        raise PolicyFileError(f"{path}: not a spikerl policy (no JSON 'spec' entry)") from None
    if spec.get("format") != FORMAT or spec.get("version") != FORMAT_VERSION:
        raise PolicyFileError(
            f"{path}: format {spec.get('format')!r} version {spec.get('version')!r}; this "
            f"runtime reads {FORMAT!r} version {FORMAT_VERSION}"
        )
    return spec, arrays


def load_policy(path: str | Path, dtype: str = "float64") -> Policy:
    """Read an exported policy (see the module docstring); a bad file is a
    :class:`PolicyFileError` naming it."""
    spec, arrays = read_policy_file(path)
    return checked_policy(spec, arrays, dtype, path)
