"""Provenance of a run: which code, libraries, machine and device produced a result.

A training or evaluation result is only reproducible if one can tell exactly what produced
it. :func:`collect_provenance` records

* the ``spikerl`` version and the git revision of the checkout it is imported from (with a
  ``-dirty`` suffix when tracked files have uncommitted changes),
* the versions of Python, torch, numpy, gymnasium and mujoco,
* the platform, CPU model, CPU count and number of torch threads,
* the torch device used and, for CUDA, the GPU name.

The result is a plain dict of YAML-safe scalars, so it can be stored next to a run's
config and metrics. :func:`env_version` describes the environment actually used, and
:func:`format_provenance` renders the dict for printing.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

from ..atomic import write_text_atomic
from .process import allocator, cpu_model

_PACKAGE_DIR = Path(__file__).resolve().parent.parent


def _dist_version(name: str) -> str | None:
    """Return the installed version of distribution ``name``, or None if not installed."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _spikerl_version() -> str:
    """The installed spikerl's version (package metadata), or "unknown"."""
    from .. import __version__

    return __version__


def _git(*args: str) -> str | None:
    """Run ``git args`` in the package directory; return stripped stdout or None on failure."""
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=_PACKAGE_DIR,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout.strip()


def git_revision() -> str | None:
    """Return the commit hash of the spikerl checkout, ``-dirty`` if tracked files changed.

    None when the package is not inside a git work tree or git is unavailable.
    """
    revision = _git("rev-parse", "HEAD")
    if not revision:
        return None
    status = _git("status", "--porcelain", "--untracked-files=no")
    if status:
        revision += "-dirty"
    return revision


def _cuda_device_name(device: torch.device) -> str | None:
    """Return the GPU name for a CUDA device when CUDA is available, else None."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    try:
        return torch.cuda.get_device_name(device)
    except (RuntimeError, AssertionError):
        return None


def collect_provenance(
    device: str | torch.device = "cpu", threads: int | None = None
) -> dict[str, Any]:
    """Collect a YAML-safe dict describing the code, libraries, machine and device of a run."""
    torch_device = torch.device(device)
    return {
        "spikerl": _spikerl_version(),
        "git_revision": git_revision(),
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "numpy": _dist_version("numpy"),
        "gymnasium": _dist_version("gymnasium"),
        "mujoco": _dist_version("mujoco"),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": int(threads) if threads is not None else torch.get_num_threads(),
        "allocator": allocator(),
        "device": str(device),
        "cuda_device": _cuda_device_name(torch_device),
    }


def env_version(env_id: str) -> str:
    """Describe the registered environment ``env_id`` with gymnasium (and mujoco) versions.

    For example ``"HalfCheetah-v4 (gymnasium 1.2.0, mujoco 3.3.0)"``; the mujoco version is
    only included when the environment's entry point is a mujoco one.
    """
    from gymnasium.envs import registry

    spec = registry.get(env_id)
    if spec is None:
        return f"{env_id} (not registered)"
    parts = [f"gymnasium {_dist_version('gymnasium')}"]
    entry_point = spec.entry_point
    if isinstance(entry_point, str) and "mujoco" in entry_point:
        parts.append(f"mujoco {_dist_version('mujoco')}")
    return f"{spec.id} ({', '.join(parts)})"


def format_provenance(p: dict[str, Any], indent: str = "") -> str:
    """Render a provenance dict as ``key: value`` lines; nested dicts are indented."""
    lines: list[str] = []
    for key, value in p.items():
        if isinstance(value, dict):
            lines.append(f"{indent}{key}:")
            lines.append(format_provenance(value, indent + "  "))
        else:
            lines.append(f"{indent}{key}: {value}")
    return "\n".join(line for line in lines if line)


PROVENANCE_NAME = "provenance.yaml"


def record_provenance(
    run_dir: Path, event: str, device: str | torch.device, threads: int | None
) -> dict[str, Any]:
    """Append one entry (``event``: ``start`` or ``resume``, UTC time, provenance) to the run's
    ``provenance.yaml``; a resumed run keeps the entries of every earlier session."""
    import datetime

    import yaml

    path = Path(run_dir) / PROVENANCE_NAME
    entries = yaml.safe_load(path.read_text()) if path.is_file() else None
    entries = entries if isinstance(entries, list) else []
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    entry = {"event": event, "time": now, **collect_provenance(device, threads)}
    write_text_atomic(path, yaml.safe_dump([*entries, entry], sort_keys=False))
    return entry
