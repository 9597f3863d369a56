"""Capture and restore an environment's full state, so a resumed run continues mid-episode.

The snapshot is plain data (tensors, ints, floats, dicts) that a ``weights_only`` checkpoint can
hold: the simulator state (an env's own ``get_state()``/``set_state()`` where it has them, as
spikerl's quadrotor does; MuJoCo's full integration state via ``mj_getState``; or the
``state``/``last_u`` arrays of classic-control tasks), the env's and the action space's
random generators, the time-limit counter and the observation-normaliser statistics.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from .make import ObservationNormalizer, find_wrapper

__all__ = ["get_env_state", "plain_data", "set_env_state"]

_CLASSIC_FIELDS = ("state", "last_u", "steps_beyond_terminated")


def _mujoco_spec():
    import mujoco

    return mujoco, mujoco.mjtState.mjSTATE_INTEGRATION


def plain_data(value: Any) -> Any:
    """``value`` with every NumPy array made a tensor (a copy) and every NumPy scalar a Python
    number, in nested dicts, lists and tuples (a container without any is returned as it is,
    so a ``state_dict`` keeps its type and metadata): what a ``weights_only`` load reads (it
    refuses pickled NumPy objects). Env snapshots and every checkpoint are made of it."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        items = {k: plain_data(v) for k, v in value.items()}
        return value if all(items[k] is v for k, v in value.items()) else items
    if isinstance(value, list | tuple):
        items = [plain_data(v) for v in value]
        if all(new is old for new, old in zip(items, value, strict=True)):
            return value
        return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)
    return value


def _from_plain(value: Any) -> Any:
    return value.numpy().copy() if isinstance(value, torch.Tensor) else value


def get_env_state(env: gym.Env) -> dict[str, Any]:
    """A plain-data snapshot of ``env`` (see module docstring)."""
    base = env.unwrapped
    snap: dict[str, Any] = {
        "np_random": base.np_random.bit_generator.state,
        "action_space_rng": env.action_space.np_random.bit_generator.state,
    }
    if callable(getattr(base, "get_state", None)) and callable(getattr(base, "set_state", None)):
        snap["custom"] = base.get_state()  # an env that snapshots itself (spikerl's quadrotor)
    elif hasattr(base, "data") and hasattr(base, "model"):
        mujoco, spec = _mujoco_spec()
        buf = np.empty(mujoco.mj_stateSize(base.model, spec), np.float64)
        mujoco.mj_getState(base.model, base.data, buf, spec)
        snap["mujoco"] = torch.from_numpy(buf)
    else:
        snap["classic"] = {
            k: plain_data(getattr(base, k)) for k in _CLASSIC_FIELDS if hasattr(base, k)
        }
    limit = find_wrapper(env, gym.wrappers.TimeLimit)
    if limit is not None:
        snap["elapsed_steps"] = limit._elapsed_steps
    norm = find_wrapper(env, ObservationNormalizer)
    if norm is not None:
        snap["normalizer"] = plain_data(norm.state_dict())
    return snap


def set_env_state(env: gym.Env, snap: dict[str, Any]) -> None:
    """Restore a snapshot from :func:`get_env_state` into an env built the same way."""
    base = env.unwrapped
    base.np_random.bit_generator.state = snap["np_random"]
    env.action_space.np_random.bit_generator.state = snap["action_space_rng"]
    if "custom" in snap:
        base.set_state(snap["custom"])
    if "mujoco" in snap:
        mujoco, spec = _mujoco_spec()
        mujoco.mj_setState(base.model, base.data, snap["mujoco"].numpy(), spec)
        mujoco.mj_forward(base.model, base.data)
    for key, value in snap.get("classic", {}).items():
        setattr(base, key, _from_plain(value))
    limit = find_wrapper(env, gym.wrappers.TimeLimit)
    if limit is not None and "elapsed_steps" in snap:
        limit._elapsed_steps = snap["elapsed_steps"]
    norm = find_wrapper(env, ObservationNormalizer)
    if norm is not None and "normalizer" in snap:
        norm.load_state_dict({k: _from_plain(v) for k, v in snap["normalizer"].items()})
