"""The C export (``spikerl export --format c``) compiled on the host and called from Python.

For checking and for host-side loops: :func:`compile_policy` builds the exported
``spikerl_policy.c`` into a shared library with the system C compiler and wraps its functions
with :mod:`ctypes` (NumPy only, like the rest of :mod:`spikerl.runtime`). On a microcontroller
the same two files are compiled into the firmware instead; see ``docs/deploy.md``.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

from ..errors import SpikerlError, UsageError

__all__ = ["CompileError", "CompiledPolicy", "compile_policy", "find_compiler"]


class CompileError(SpikerlError, RuntimeError):
    """The exported C source could not be compiled (the compiler's first lines say why)."""


def find_compiler() -> str | None:
    """The system C compiler (``$CC``, then ``cc``, ``gcc``, ``clang``), or None."""
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


class CompiledPolicy:
    """An exported C policy loaded as a shared library (see :func:`compile_policy`)."""

    def __init__(self, library: Path, double: bool, trace: bool) -> None:
        self._lib = ctypes.CDLL(str(library))
        self._lib.spikerl_state_bytes.restype = ctypes.c_size_t
        self.dtype = np.dtype(np.float64 if double else np.float32)
        self.traced = trace
        self._state = (ctypes.c_char * self._lib.spikerl_state_bytes())()
        header = (library.parent / "spikerl_policy.h").read_text()
        self.obs_dim, self.act_dim, self.neurons = (
            int(header.split(f"#define SPIKERL_{key} ")[1].split()[0])
            for key in ("OBS_DIM", "ACT_DIM", "NEURONS")
        )
        self.reset()

    def reset(self) -> None:
        """Episode start: ``spikerl_reset``."""
        self._lib.spikerl_reset(self._state)

    def _call(self, fn, obs: np.ndarray, dtype: np.dtype, out_dtype: np.dtype) -> np.ndarray:
        x = np.ascontiguousarray(obs, dtype)
        if x.shape != (self.obs_dim,):
            raise UsageError(f"one observation of shape ({self.obs_dim},), got {x.shape}")
        out = np.zeros(self.act_dim, out_dtype)
        fn(x.ctypes.data_as(ctypes.c_void_p), self._state, out.ctypes.data_as(ctypes.c_void_p))
        return out

    def decide(self, obs: np.ndarray) -> np.ndarray:
        """``spikerl_decide``: the action for one normalised observation ``[n] -> [m]``."""
        return self._call(self._lib.spikerl_decide, obs, self.dtype, self.dtype)

    def act(self, raw_obs: np.ndarray) -> np.ndarray:
        """``spikerl_step``: a raw env observation to an env action (float32)."""
        return self._call(self._lib.spikerl_step, raw_obs, np.float32, np.float32)

    def spike_counts(self) -> np.ndarray:
        """Every neuron's non-zero outputs in the last decision, layer after layer
        (compiled with ``trace=True``)."""
        if not self.traced:
            raise UsageError("compile with trace=True to count spikes")
        return np.frombuffer(self._state, self.dtype)[-self.neurons :].copy()


def compile_policy(
    folder: str | Path, double: bool = False, trace: bool = False, compiler: str | None = None
) -> CompiledPolicy:
    """Compile ``folder/spikerl_policy.c`` (``-std=c99 -O2``; ``double``: ``spk_real`` is
    ``double``; ``trace``: count spikes) into ``folder`` and load it."""
    folder = Path(folder)
    compiler = compiler or find_compiler()
    if compiler is None:
        raise CompileError("no C compiler found (set CC, or install cc, gcc or clang)")
    flags = [f"-DSPIKERL_DOUBLE={int(double)}"] + (["-DSPIKERL_TRACE"] if trace else [])
    try:
        source = (folder / "spikerl_policy.c").read_bytes() + (
            folder / "spikerl_policy.h"
        ).read_bytes()
    except OSError as err:
        raise CompileError(f"{folder}: no C export here ({err.strerror or err})") from None
    # a name per source and flags: a process that loaded one library never gets it again for
    # another source (dlopen returns an already loaded path as it is)
    digest = hashlib.sha1(source + " ".join(flags).encode()).hexdigest()[:16]
    name = f"libspikerl_policy-{digest}.so"
    command = [compiler, "-std=c99", "-O2", "-Wall", "-Wextra", "-pedantic", "-Werror",
               "-shared", "-fPIC", *flags, str(folder / "spikerl_policy.c"),
               "-o", str(folder / name), "-lm"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        first = "; ".join(done.stderr.strip().splitlines()[:3])
        raise CompileError(f"{folder}/spikerl_policy.c did not compile: {first}")
    return CompiledPolicy(folder / name, double, trace)
