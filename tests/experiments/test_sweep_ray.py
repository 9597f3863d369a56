"""The Ray backend end to end, against a real Ray head node that the test starts and stops."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from spikerl.cli import main
from spikerl.experiments.status import read_status
from tests.experiments.test_run import read_metrics
from tests.experiments.test_sweep import GRID, _tiny_set, _write_sweep

RAY = Path(sys.executable).with_name("ray")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"ray start exited with status {proc.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise AssertionError("the Ray head node did not open its port")


@pytest.fixture
def ray_head():
    """A one-node Ray cluster on 127.0.0.1 with 2 CPUs; yields its address and env."""
    pytest.importorskip("ray", reason="the ray extra is part of .[dev]; CI installs it")
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths are limited
    port = _free_port()
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    cmd = [
        str(RAY), "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1",
        "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}",
    ]  # fmt: skip
    log = open(Path(temp) / "head.log", "w")  # noqa: SIM115 - closed in the teardown
    head = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        _wait_for_port(port, head)
        yield f"127.0.0.1:{port}", env
    finally:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def test_ray_backend_runs_a_tiny_sweep_end_to_end(tmp_path, ray_head):
    address, env = ray_head
    path = _write_sweep(tmp_path, set=_tiny_set(), methods=GRID["methods"], axes={"run.seed": [0]})
    cmd = [sys.executable, "-m", "spikerl.cli", "sweep", str(path), "--backend", "ray",
           "--address", address, "--plain"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2/2 runs finished" in done.stdout
    out_dir = tmp_path / "out"
    names = [r["name"] for r in json.loads((out_dir / "sweep.json").read_text())["runs"]]
    for name in names:
        assert read_status(out_dir / name)["state"] == "finished"
        assert [row["step"] for row in read_metrics(out_dir / name)] == ["0", "200", "400"]
        assert "attempt 1" in (out_dir / "logs" / f"{name}.log").read_text()
    # run again through Ray: everything is finished, so nothing is submitted
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0 and again.stdout.count("skipped") == 2


def test_an_unreachable_ray_address_is_one_line_in_seconds_and_writes_nothing(tmp_path, capsys):
    """``ray.init`` would retry a closed port for many minutes, printing only Ray's own lines;
    the sweep refuses it in seconds, before writing its output folder."""
    pytest.importorskip("ray", reason="the ray extra is part of .[dev]; CI installs it")
    path = _write_sweep(tmp_path, set=_tiny_set(), axes={"run.seed": [0]})
    closed = f"127.0.0.1:{_free_port()}"
    started = time.monotonic()
    assert main(["sweep", str(path), "--plain", "--backend", "ray", "--address", closed]) == 1
    assert time.monotonic() - started < 30
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot reach Ray at {closed}") and err.count("\n") == 1, err
    assert "ray start --head" in err
    assert not (tmp_path / "out").exists()
    assert main(["sweep", str(path), "--backend", "ray", "--address", "head-without-port"]) == 2
    assert capsys.readouterr().err.startswith("error: Ray address 'head-without-port': expected")
    assert not (tmp_path / "out").exists()
