"""Atomic checkpoints and reproducible random-number state.

A checkpoint is one ``torch.save`` file of plain data (tensors, numbers, strings, dicts) with a
format version. It is written to a temporary file in the same directory, flushed to disk and
renamed over the old one, so a crash never leaves a half-written checkpoint. It is loaded with
``weights_only=True``: no pickled code runs on load.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import temporary_path
from ..envs.state import plain_data
from ..errors import SpikerlError

__all__ = [
    "CHECKPOINT_FORMAT",
    "POLICY_ENTRIES",
    "RESUME_ENTRIES",
    "CheckpointError",
    "check_entries",
    "get_rng_state",
    "load_checkpoint",
    "nonfinite_entry",
    "save_checkpoint",
    "seed_everything",
    "set_rng_state",
]

CHECKPOINT_FORMAT = 1

#: Files that spikerl writes but that are not checkpoints, by suffix: named in the error.
OTHER_FILE_KINDS = {
    ".npz": "an exported policy (spikerl export; run it with spikerl.runtime.load_policy)",
    ".nir": "a NIR graph (spikerl export --format nir)",
    ".csv": "a CSV table",
    ".json": "a JSON file",
    ".yaml": "a YAML file",
}


class CheckpointError(SpikerlError, RuntimeError):
    """A checkpoint is missing, unreadable, corrupt or of another format."""


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Write ``state`` atomically to ``path`` (temp file + fsync + rename). NumPy arrays in it
    are stored as tensors (and read back as tensors), so the file always loads."""
    path = Path(path)
    tmp = temporary_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            torch.save(plain_data({"format": CHECKPOINT_FORMAT, **state}), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise CheckpointError(f"could not write checkpoint {path}: {err}") from None
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:  # make the rename itself durable
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu", required: Sequence[str] = ()
) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`, with clear errors; ``required``
    names entries the caller reads (:data:`POLICY_ENTRIES`, :data:`RESUME_ENTRIES`), refused
    in one line when missing or of another type."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:  # permissions, I/O: the file is there but cannot be read at all
        with open(path, "rb") as f:
            f.read(1)
    except OSError as err:
        raise CheckpointError(f"cannot read checkpoint {path}: {err.strerror or err}") from None
    if path.suffix.lower() in OTHER_FILE_KINDS:
        raise CheckpointError(
            f"{path} is {OTHER_FILE_KINDS[path.suffix.lower()]}, not a spikerl checkpoint (give a "
            "run folder, a checkpoint in one or a converted .pt)"
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types (even OSError) for truncated files
        # Not torch's text: for a file spikerl wrote, it wrongly suggests weights_only=False.
        why = "corrupt or truncated"
        if isinstance(err, pickle.UnpicklingError) and "Unsupported global" in str(err):
            why = (
                "it holds pickled Python objects, which spikerl does not load; a policy that an "
                "older spikerl converted from a run with env.normalize_obs is such a file: "
                "convert it again"
            )
        raise CheckpointError(f"{path} is not a spikerl checkpoint ({why})") from None
    if not isinstance(state, dict) or "format" not in state:
        raise CheckpointError(f"{path} is a torch file but not a spikerl checkpoint (no format)")
    if state["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"checkpoint {path} has format {state['format']!r}; this spikerl reads format "
            f"{CHECKPOINT_FORMAT}"
        )
    check_entries(state, path, required)
    return state


#: The types of the entries that readers of a checkpoint ask for (nested: a dot).
_ENTRY_TYPES: dict[str, type] = {
    "config": dict, "learner": dict, "learner.actor": dict, "env": dict, "progress": dict,
    "progress.step": int,
}  # fmt: skip
#: What flying a run's policy reads (``spikerl evaluate``, ``energy``, ``export``, ``convert``).
POLICY_ENTRIES = ("learner", "learner.actor", "env")
#: What resuming a run reads first.
RESUME_ENTRIES = ("config", *POLICY_ENTRIES, "progress", "progress.step")


def check_entries(state: dict[str, Any], path: Path, names: Sequence[str]) -> None:
    """Refuse a file that loads but lacks an entry the reader needs, or holds one of another
    type (an edited file, or one cut by hand): one line instead of a KeyError later."""
    for name in names:
        kind = _ENTRY_TYPES[name]
        value: Any = state
        for part in name.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if not isinstance(value, kind) or isinstance(value, bool):
            found = "missing" if value is None else f"a {type(value).__name__}"
            raise CheckpointError(
                f"{path} is not a complete spikerl checkpoint: its {name!r} entry is {found}"
            )


def nonfinite_entry(tensors: dict[str, Any]) -> str | None:
    """The name of the first floating-point tensor of ``tensors`` (a state_dict) that holds
    NaN or Inf, or None."""
    return next(
        (
            name
            for name, t in tensors.items()
            if torch.is_tensor(t) and t.is_floating_point() and not bool(t.isfinite().all())
        ),
        None,
    )


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's global and torch's generators (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _numpy_state() -> tuple[Any, ...]:
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    return (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached))


def get_rng_state() -> dict[str, Any]:
    """The global generators' states as plain data."""
    state = {
        "python": list(random.getstate()[1]) + [random.getstate()[0], random.getstate()[2]],
        "numpy": _numpy_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore states from :func:`get_rng_state`."""
    *internal, version, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
