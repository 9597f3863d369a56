"""The facts a benchmark figure depends on: CPU, cores, threads, library versions, backend."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..experiments.process import allocator, bf16_matmul_units, cpu_model

__all__ = ["blas_override", "cpu_model", "machine_info", "numpy_blas", "usable_cores"]

#: Environment variables that pick OpenBLAS's kernel or cache size instead of its own probe.
OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask on Linux)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def blas_override() -> dict[str, str]:
    """The OpenBLAS overrides set in this process's environment (read by OpenBLAS when NumPy
    loads it, so they cannot be undone from inside the process)."""
    return {name: os.environ[name] for name in OPENBLAS_OVERRIDES if name in os.environ}


def numpy_blas() -> list[dict[str, Any]]:
    """NumPy's BLAS as it runs: library, version, kernel (e.g. OpenBLAS ``SkylakeX`` or a forced
    ``Haswell``) and threads, from ``threadpoolctl`` when it is installed (else ``[]``).

    The kernel decides the speed of NumPy's small products: on a 2-core AMD EPYC, a
    ``[5, 256] @ [256, 256]`` float32 product took 21 us with ``OPENBLAS_CORETYPE=Haswell`` and 6
    us with OpenBLAS's own choice (``SkylakeX``)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keys = ("internal_api", "version", "architecture", "num_threads")
    return [{k: pool.get(k) for k in keys} for pool in threadpool_info()
            if pool.get("user_api") == "blas"]  # fmt: skip


def machine_info(device: str = "cpu") -> dict[str, Any]:
    """CPU model, cores, torch threads, versions and the compute backend of ``device``."""
    import gymnasium
    import mujoco

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": usable_cores(),
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "bf16_matmul_units": bf16_matmul_units() or [],
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "numpy_blas": numpy_blas(),
        "openblas_overrides": blas_override(),
        "allocator": allocator(),
        "gymnasium": gymnasium.__version__,
        "mujoco": mujoco.__version__,
        "platform": platform.platform(),
        "device": device,
        "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "spikerl": __version__,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if str(device).startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
        info["cuda"] = torch.version.cuda
    return info
