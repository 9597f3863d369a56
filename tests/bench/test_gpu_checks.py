"""The prepared GPU command (benchmarks/gpu_checks.sh) runs end to end, rehearsed on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_checks.sh"
RESULTS = ("seeds.json", "replay_on_device.json", "training.json", "sequence.json")


def test_the_scripts_parse() -> None:
    for name in ("gpu_checks.sh", "fetch_gpu_wheels.sh"):
        subprocess.run(["bash", "-n", str(ROOT / "benchmarks" / name)], check=True)


@pytest.mark.slow
def test_a_cpu_rehearsal_writes_every_result(tmp_path: Path) -> None:
    env = {**os.environ, "DEVICE": "cpu", "QUICK": "1", "PYTHON": sys.executable,
           "WHEELS": str(tmp_path / "no-wheels")}  # fmt: skip
    out = tmp_path / "out"
    subprocess.run(["bash", str(SCRIPT), str(out)], env=env, check=True, capture_output=True)
    log = (out / "gpu_checks.log").read_text()
    assert log.count("== exit 0 after") == 5, log
    for name in RESULTS:
        assert json.loads((out / name).read_text()), name
    assert len(list(out.iterdir())) <= 8  # the device tool returns at most 8 files
