r"""Process settings of a training run: torch's threads and how the C allocator reuses memory.

**Why the allocator.** A training step allocates and frees the same large tensors every
iteration: the ``[T, B, N]`` currents, membranes and spikes of a spiking layer (3.9 MB each for
the proxy target's 768 rows, T = 5, N = 256), activations and gradients. By default glibc's
``malloc`` hands such memory back to the system when it is freed (a block above its mmap
threshold is unmapped; free memory at the top of the heap beyond its trim threshold is
trimmed), so each iteration's tensors come back as fresh pages that the kernel zero-fills on
first touch: 2,272 page faults per call of one LIF layer over ``[5, 768, 256]``, none with the
settings below. On the project's AMD EPYC (2 threads) that call took 3.5 ms with the default
and 0.41 ms tuned, and training ran 1.1-1.35x faster (``docs/performance.md``).

:func:`keep_freed_memory` therefore sets ``M_MMAP_THRESHOLD`` to 64 MiB (blocks below it come
from the heap and are reused) and ``M_TRIM_THRESHOLD`` to 256 MiB (up to that much freed memory
at the top of the heap stays with the process instead of going back to the system). The cost:
a process's resident memory stays near its peak. Left alone where the platform is not glibc,
where the user set any of glibc's ``MALLOC_*_`` tunables (theirs win), or with
``SPIKERL_MALLOC=system``.
"""

from __future__ import annotations

import ctypes
import os

import torch

__all__ = [
    "MMAP_THRESHOLD",
    "TRIM_THRESHOLD",
    "allocator",
    "configure_process",
    "keep_freed_memory",
]

#: Bytes from which glibc maps a block on its own (and unmaps it when freed).
MMAP_THRESHOLD = 64 << 20
#: Bytes of free memory at the top of the heap kept before glibc gives it back.
TRIM_THRESHOLD = 256 << 20
#: glibc's own environment tunables for the same settings; a user who sets one keeps glibc's.
MALLOC_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_",
                    "MALLOC_MMAP_MAX_")  # fmt: skip
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
_STATE: str | None = None


def keep_freed_memory() -> str:
    """Tune glibc's ``malloc`` to reuse large freed blocks (module docstring), once per process.

    Returns what the process's allocator does, for provenance and benchmark tables:
    ``"glibc, mmap >= 64 MiB, trim 256 MiB"``, or ``"system default (<reason>)"``.
    """
    global _STATE
    if _STATE is None:
        _STATE = _tune()
    return _STATE


def _tune() -> str:
    if os.environ.get("SPIKERL_MALLOC", "").lower() == "system":
        return "system default (SPIKERL_MALLOC=system)"
    chosen = [name for name in MALLOC_VARIABLES if name in os.environ]
    if chosen:
        return f"system default ({', '.join(chosen)} set)"
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 (glibc only: musl and others lack it)
    except (OSError, AttributeError):
        return "system default (not glibc)"
    ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and libc.mallopt(
        _M_TRIM_THRESHOLD, TRIM_THRESHOLD
    )
    if not ok:
        return "system default (mallopt refused)"
    return f"glibc, mmap >= {MMAP_THRESHOLD >> 20} MiB, trim {TRIM_THRESHOLD >> 20} MiB"


def configure_process(threads: int) -> None:
    """Settings of a training process: torch's intra-op threads (``0``: torch's default) and
    :func:`keep_freed_memory`."""
    if threads:
        torch.set_num_threads(threads)
    keep_freed_memory()


def allocator() -> str:
    """What this process's allocator does: :func:`keep_freed_memory`'s answer once it ran,
    else ``"system default"``."""
    return _STATE or "system default"
