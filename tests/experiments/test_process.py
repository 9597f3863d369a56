"""Process settings of a training run: threads and glibc's reuse of freed memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from spikerl.errors import UsageError
from spikerl.experiments import process
from spikerl.experiments.process import allocator, configure_process, keep_freed_memory


def _glibc() -> bool:
    return process._glibc_mallopt() is not None


TUNED = {f"glibc, mmap >= {t >> 20} MiB, trim {process.TRIM_THRESHOLD >> 20} MiB"
         for t in process.MMAP_THRESHOLDS}  # fmt: skip


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A process whose allocator was not yet tuned, without glibc's tunables in the env."""
    monkeypatch.setattr(process, "_STATE", None)
    for name in process.USER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_users_choice_wins(fresh: pytest.MonkeyPatch) -> None:
    fresh.setenv("MALLOC_TRIM_THRESHOLD_", "1000000")
    assert keep_freed_memory() == "system default (MALLOC_TRIM_THRESHOLD_ set)"
    assert allocator() == "system default (MALLOC_TRIM_THRESHOLD_ set)"


def test_users_glibc_tunables_win(fresh: pytest.MonkeyPatch) -> None:
    fresh.setenv("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=1000000:glibc.rtld.nns=2")
    assert keep_freed_memory() == "system default (glibc.malloc.mmap_threshold set)"


def test_other_glibc_tunables_do_not_count(fresh: pytest.MonkeyPatch) -> None:
    fresh.setenv("GLIBC_TUNABLES", "glibc.rtld.nns=2")
    assert process._users_choice() is None


def test_preloaded_allocator_is_left_alone(fresh: pytest.MonkeyPatch) -> None:
    fresh.setenv("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")
    assert keep_freed_memory() == "system default (jemalloc preloaded)"


def test_unknown_choice_is_refused_with_the_allowed_values(fresh: pytest.MonkeyPatch) -> None:
    fresh.setenv("SPIKERL_MALLOC", "sytem")
    with pytest.raises(UsageError, match="SPIKERL_MALLOC='sytem': use 'system' .* or 'tuned'"):
        keep_freed_memory()
    fresh.setenv("SPIKERL_MALLOC", "tuned")
    assert keep_freed_memory() == allocator() != "system default"


def test_opt_out(fresh: pytest.MonkeyPatch) -> None:
    fresh.setenv("SPIKERL_MALLOC", "system")
    assert keep_freed_memory() == "system default (SPIKERL_MALLOC=system)"


def test_untuned_process_says_so(fresh: pytest.MonkeyPatch) -> None:
    assert allocator() == "system default"


@pytest.mark.skipif(not _glibc(), reason="glibc only")
def test_tuned_once_on_glibc(fresh: pytest.MonkeyPatch) -> None:
    state = keep_freed_memory()
    assert state in TUNED
    fresh.setenv("SPIKERL_MALLOC", "system")  # decided once per process
    assert keep_freed_memory() == allocator() == state


def test_configure_process_sets_threads(fresh: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    try:
        configure_process(1)
        assert torch.get_num_threads() == 1
        configure_process(0)  # 0: leave torch's choice
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert allocator() != "system default"  # decided (tuned or a stated reason)


FAULTS = """
import json, resource, sys, torch
from spikerl.experiments.process import keep_freed_memory
state = keep_freed_memory()
def step():  # what a spiking layer over [5, 768, 256] allocates per call: three 3.9 MB tensors
    a = torch.ones(5, 768, 256); b = torch.empty_like(a).fill_(2.0); c = a + b
    return float(c[0, 0, 0])
for _ in range(5):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    step()
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 50
print(json.dumps({"state": state, "faults": faults}))
"""


def _faults(**env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in process.USER_VARIABLES}
    out = subprocess.run([sys.executable, "-c", FAULTS], env=clean | env, capture_output=True,
                         text=True, check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not _glibc(), reason="glibc only")
def test_tuned_allocator_reuses_large_blocks() -> None:
    """Repeated 3.9 MB tensors come from reused heap memory, not fresh zero-filled pages. (The
    default's faults depend on allocation history and thread timing: 0 to 2,272 per call in
    ``docs/allocator.json``, so only the tuned side is asserted.)"""
    tuned, system = _faults(OMP_NUM_THREADS="1"), _faults(OMP_NUM_THREADS="1",
                                                          SPIKERL_MALLOC="system")  # fmt: skip
    assert tuned["state"] in TUNED and system["state"].startswith("system default")
    # 3 x 3.9 MB = 2,880 pages if each came back fresh; tuned, at most a one-off heap growth
    assert tuned["faults"] < 100, tuned


def test_bfloat16_on_a_cpu_without_bf16_units_gets_a_note(monkeypatch):
    from spikerl.experiments import process

    monkeypatch.setattr(process, "bf16_matmul_units", lambda: [])
    assert "emulated" in process.bfloat16_note("bfloat16", "cpu")
    assert process.bfloat16_note("float32", "cpu") is None
    assert process.bfloat16_note("bfloat16", "cuda:0") is None
    monkeypatch.setattr(process, "bf16_matmul_units", lambda: ["avx512_bf16"])
    assert process.bfloat16_note("bfloat16", "cpu") is None
    monkeypatch.setattr(process, "bf16_matmul_units", lambda: None)  # cannot tell: no note
    assert process.bfloat16_note("bfloat16", "cpu") is None
