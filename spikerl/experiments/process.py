r"""Process settings of a training run: torch's threads and how the C allocator reuses memory.

**Why the allocator.** A training step allocates and frees the same large tensors every
iteration: the ``[T, B, N]`` currents, membranes and spikes of a spiking layer (3.9 MB each for
the proxy target's 768 rows, T = 5, N = 256), activations and gradients. By default glibc's
``malloc`` hands such memory back to the system when it is freed (a block above its mmap
threshold is unmapped; free memory at the top of the heap beyond its trim threshold is
trimmed), so each iteration's tensors come back as fresh pages that the kernel zero-fills on
first touch: 2,272 page faults per call of one LIF layer over ``[5, 768, 256]`` (3.7-4.0 ms a
call) in three of four fresh processes, none with the settings below (0.32-0.42 ms). Training
gains most where a step allocates most: the proxy target, stacked seeds and sequence training
(``docs/performance.md``).

:func:`keep_freed_memory` therefore sets ``M_MMAP_THRESHOLD`` to 64 MiB (32 MiB where an older
glibc refuses more; blocks below it come from the heap and are reused) and ``M_TRIM_THRESHOLD``
to 256 MiB (up to that much freed memory at the top of the heap stays with the process instead
of going back to the system). The cost: a process's resident memory stays near its peak. Left
alone where the C library is not glibc, where another allocator is preloaded (jemalloc,
tcmalloc, mimalloc, ...), where the user set glibc's own tunables (``MALLOC_*_`` variables or
``glibc.malloc.*`` in ``GLIBC_TUNABLES``: theirs win), or with ``SPIKERL_MALLOC=system``.
"""

from __future__ import annotations

import ctypes
import os
import platform
from typing import Any

import torch

from ..errors import UsageError

__all__ = [
    "MMAP_THRESHOLDS",
    "TRIM_THRESHOLD",
    "USER_VARIABLES",
    "allocator",
    "bf16_matmul_units",
    "bfloat16_note",
    "configure_process",
    "cpu_model",
    "cpuinfo_field",
    "keep_freed_memory",
]

#: Bytes from which glibc maps a block on its own (and unmaps it when freed), first choice and
#: fallback: glibc before 2.35 refuses more than 32 MiB on 64-bit systems (``mallopt(3)``). 64 MiB
#: keeps the sequence update's ``[35000, 256]`` critic activations (36 MB) in the heap; an
#: 8-seed stack's largest tensor, ``[8, 5, 768, 256]`` float32 (31 MB), fits either.
MMAP_THRESHOLDS = (64 << 20, 32 << 20)
#: Bytes of free memory at the top of the heap kept before glibc gives it back.
TRIM_THRESHOLD = 256 << 20
#: glibc's own environment tunables for the same settings; a user who sets one keeps glibc's.
MALLOC_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_",
                    "MALLOC_MMAP_MAX_")  # fmt: skip
#: The same in ``GLIBC_TUNABLES`` (``glibc.malloc.trim_threshold=...:...``).
MALLOC_TUNABLES = ("glibc.malloc.mmap_threshold", "glibc.malloc.trim_threshold",
                   "glibc.malloc.top_pad", "glibc.malloc.mmap_max")  # fmt: skip
#: Allocators that replace glibc's ``malloc`` when preloaded (tuning glibc's would be moot).
PRELOADED_ALLOCATORS = ("jemalloc", "tcmalloc", "mimalloc", "hoard", "snmalloc")
#: Every environment variable through which the user decides the allocator instead of spikerl
#: (what :func:`_users_choice` reads); an A/B that wants spikerl's choice alone removes them.
USER_VARIABLES = (*MALLOC_VARIABLES, "SPIKERL_MALLOC", "GLIBC_TUNABLES", "LD_PRELOAD")
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
_STATE: str | None = None


def keep_freed_memory() -> str:
    """Tune glibc's ``malloc`` to reuse large freed blocks (module docstring), once per process.

    Returns what the process's allocator does, for provenance and benchmark tables:
    ``"glibc, mmap >= 64 MiB, trim 256 MiB"`` (32 MiB on older glibc), or ``"system default
    (<reason>)"``.
    """
    global _STATE
    if _STATE is None:
        _STATE = _tune()
    return _STATE


def _users_choice() -> str | None:
    """Why the user's environment decides the allocator (None: it does not). ``SPIKERL_MALLOC``
    is ``system`` (leave glibc alone) or ``tuned`` (the default); anything else is refused."""
    choice = os.environ.get("SPIKERL_MALLOC", "tuned").strip().lower() or "tuned"
    if choice not in ("system", "tuned"):
        raise UsageError(f"SPIKERL_MALLOC={os.environ['SPIKERL_MALLOC']!r}: use 'system' (leave "
                         "glibc's malloc as it is) or 'tuned' (the default)")  # fmt: skip
    if choice == "system":
        return "SPIKERL_MALLOC=system"
    chosen = [name for name in MALLOC_VARIABLES if name in os.environ]
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    chosen += [name for name in MALLOC_TUNABLES if f"{name}=" in tunables]
    if chosen:
        return f"{', '.join(chosen)} set"
    preload = os.environ.get("LD_PRELOAD", "").lower()
    named = [name for name in PRELOADED_ALLOCATORS if name in preload]
    return f"{named[0]} preloaded" if named else None


def _glibc_mallopt() -> Any:
    """glibc's ``int mallopt(int, int)`` from this process's C library; None elsewhere (musl,
    macOS, Windows)."""
    if not hasattr(os, "confstr"):
        return None
    try:
        if not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"):
            return None
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, ValueError, AttributeError):
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt


def _tune() -> str:
    reason = _users_choice()
    if reason is not None:
        return f"system default ({reason})"
    mallopt = _glibc_mallopt()
    if mallopt is None:
        return "system default (not glibc)"
    if not mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD):
        return "system default (mallopt refused)"
    for threshold in MMAP_THRESHOLDS:
        if mallopt(_M_MMAP_THRESHOLD, threshold):
            return f"glibc, mmap >= {threshold >> 20} MiB, trim {TRIM_THRESHOLD >> 20} MiB"
    return f"glibc, trim {TRIM_THRESHOLD >> 20} MiB (mallopt refused the mmap threshold)"


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


BF16_UNITS = ("amx_bf16", "avx512_bf16")  # x86 CPU flags of bfloat16 matrix instructions


def cpuinfo_field(name: str) -> str | None:
    """The value of the first ``name`` line of ``/proc/cpuinfo``, or None (not Linux, no such
    line)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith(name):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else ``platform.processor``)."""
    return cpuinfo_field("model name") or platform.processor() or platform.machine() or "unknown"


def bf16_matmul_units() -> list[str] | None:
    """The CPU's bfloat16 matrix units (:data:`BF16_UNITS` among ``/proc/cpuinfo``'s flags),
    or None where that cannot be read (not Linux)."""
    flags = cpuinfo_field("flags")
    return None if flags is None else sorted(f for f in flags.split() if f in BF16_UNITS)


def bfloat16_note(precision: str, device: str) -> str | None:
    """What to tell a run asking for ``run.precision=bfloat16`` on a CPU without bfloat16
    matrix units (its products are emulated there, slower than float32), or None."""
    if precision != "bfloat16" or not str(device).startswith("cpu"):
        return None
    if bf16_matmul_units() != []:  # has them, or cannot tell
        return None
    return ("run.precision=bfloat16 on a CPU without bfloat16 matrix units (amx_bf16, "
            "avx512_bf16): its products are emulated, likely slower than float32")  # fmt: skip
