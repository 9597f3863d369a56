import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from spikerl.buffers import ReplayBuffer
from spikerl.experiments.checkpoint import CheckpointError, load_checkpoint
from spikerl.experiments.config import config_to_dict
from spikerl.experiments.run import RunError, TrainingDiverged, train

VOLATILE = {"wall_time", "steps_per_sec"}


def read_metrics(run_dir):
    with open(Path(run_dir) / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k not in VOLATILE} for row in csv.DictReader(f)]


def test_run_folder_contents_and_result(tiny_config, tmp_path):
    cfg = tiny_config("actor.kind=lif", "algo.target=proxy")
    result = train(cfg, tmp_path)
    run_dir = tmp_path / cfg.run_name
    assert {p.name for p in run_dir.iterdir()} >= {"config.yaml", "metrics.csv", "checkpoint.pt"}
    rows = read_metrics(run_dir)
    assert [int(r["step"]) for r in rows] == [0, 200, 400]
    assert rows[-1]["loss/proxy"] != "" and 0 <= float(rows[-1]["snn/rate_h0"]) <= 1
    assert result.steps == 400 and not result.interrupted
    assert result.summary["max_return"] == max(result.eval_returns)
    ckpt = load_checkpoint(run_dir / "checkpoint.pt")
    assert ckpt["progress"]["step"] == 400 and "proxy_opt" in ckpt["learner"]
    assert not (run_dir / "policies").exists()  # run.keep_policies is off by default


def test_keep_policies_keeps_every_evaluations_actor(tiny_config, tmp_path, capsys):
    from spikerl.cli import main

    cfg = tiny_config("actor.kind=lif", "run.keep_policies=true")
    train(cfg, tmp_path)
    run_dir = tmp_path / cfg.run_name
    kept = sorted((run_dir / "policies").iterdir())
    assert [p.name for p in kept] == [f"step-{n:09d}.pt" for n in (0, 200, 400)]
    rows = read_metrics(run_dir)
    states = [load_checkpoint(p) for p in kept]
    for state, row in zip(states, rows, strict=True):
        assert state["progress"]["step"] == int(row["step"])
        assert state["eval_return"] == pytest.approx(float(row["eval/return_mean"]))
    returns = [state["eval_return"] for state in states]
    best = load_checkpoint(run_dir / "best.pt")["learner"]["actor"]
    same = states[returns.index(max(returns))]["learner"]["actor"]
    assert all(torch.equal(t, same[k]) for k, t in best.items())
    # every kept policy evaluates alone; several paths give one summary row each
    assert main(["evaluate", *map(str, kept), "--episodes", "1"]) == 0
    out = capsys.readouterr().out
    assert all(str(p) in out for p in kept) and "1 episode each" in out
    # held-out start states: another seed's evaluation stream; the summary rows as CSV
    table = tmp_path / "kept.csv"
    assert (
        main(["evaluate", *map(str, kept), "--episodes", "2", "--seed", "7", "--csv", str(table)])
        == 0
    )
    assert "seed 7's evaluation stream" in capsys.readouterr().out
    with open(table, newline="") as f:
        written = list(csv.DictReader(f))
    assert [r["run"] for r in written] == [str(p) for p in kept]
    assert all(r["episodes"] == "2" and float(r["return mean"]) < 0 for r in written)  # Pendulum
    # a missing folder is created; a path under a file is refused before any evaluation
    assert main(["evaluate", str(kept[-1]), "--csv", str(tmp_path / "new" / "x.csv")]) == 0
    assert (tmp_path / "new" / "x.csv").is_file()
    capsys.readouterr()
    assert main(["evaluate", str(kept[-1]), "--csv", str(table / "x.csv")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and f"{table} is a file, not a folder" in captured.err


@pytest.mark.parametrize("kind", ["ann", "lif"])
def test_same_seed_same_metrics(tiny_config, tmp_path, kind):
    cfg = tiny_config(f"actor.kind={kind}", "algo.target=proxy")
    train(cfg, tmp_path / "a")
    train(cfg, tmp_path / "b")
    run_a, run_b = tmp_path / "a" / cfg.run_name, tmp_path / "b" / cfg.run_name
    assert read_metrics(run_a) == read_metrics(run_b)


@pytest.mark.parametrize("algo", ["algo.name=td3", "algo.name=sac"])
def test_replay_on_device_trains_as_the_host_buffer(tiny_config, tmp_path, algo, monkeypatch):
    """The device-resident replay buffer (here in CPU memory) gives the same run, bit for bit:
    metrics and every learner tensor of the checkpoint."""
    kind = "actor.kind=lif" if algo == "algo.name=td3" else "actor.kind=ann"
    host = tiny_config(algo, kind)
    device = tiny_config(algo, kind, "run.replay_on_device=true")
    storages = []
    real_init = ReplayBuffer.__init__

    def record_storage(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        storages.append(self.on_device)

    monkeypatch.setattr(ReplayBuffer, "__init__", record_storage)
    train(host, tmp_path / "host")
    train(device, tmp_path / "device")
    assert storages == [False, True]  # the flag reaches the run's buffer
    run_host, run_device = tmp_path / "host" / host.run_name, tmp_path / "device" / device.run_name
    assert read_metrics(run_host) == read_metrics(run_device)
    a, b = (load_checkpoint(r / "checkpoint.pt") for r in (run_host, run_device))
    compared = 0
    for net, tensors in a["learner"].items():
        if isinstance(tensors, dict) and all(isinstance(t, torch.Tensor) for t in tensors.values()):
            for key, t in tensors.items():
                assert torch.equal(t, b["learner"][net][key]), f"{net}.{key}"
                compared += 1
    assert compared >= 8  # actor and critic weights at least


def test_replay_on_device_is_refused_for_the_sequence_method(tiny_config):
    from spikerl.experiments.config import ConfigError

    with pytest.raises(ConfigError, match="run.replay_on_device"):
        tiny_config(
            "algo.name=sequence",
            "actor.kind=lif",
            "actor.network=direct",
            "run.replay_on_device=true",
        )


def test_different_seed_differs(tiny_config, tmp_path):
    a, b = tiny_config("run.seed=0"), tiny_config("run.seed=1")
    train(a, tmp_path)
    train(b, tmp_path)
    assert read_metrics(tmp_path / a.run_name) != read_metrics(tmp_path / b.run_name)


def test_existing_run_dir_is_refused_unless_overwrite(tiny_config, tmp_path):
    cfg = tiny_config("run.total_steps=200")
    train(cfg, tmp_path)
    with pytest.raises(RunError, match="--overwrite"):
        train(cfg, tmp_path)
    train(cfg, tmp_path, overwrite=True)


def test_resume_errors(tiny_config, tmp_path):
    cfg = tiny_config("run.total_steps=200")
    with pytest.raises(RunError, match="no checkpoint"):
        train(cfg, tmp_path, resume=True)
    train(cfg, tmp_path)
    other = tiny_config("run.total_steps=200", "algo.tau=0.01", f"run.name={cfg.run_name}")
    with pytest.raises(
        RunError, match=r"differs from the given one: algo\.tau=0\.005 \(given: 0\.01\)"
    ):
        train(other, tmp_path, resume=True)
    (tmp_path / cfg.run_name / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        train(cfg, tmp_path, resume=True)


def test_nan_stops_with_message_and_keeps_checkpoint(tiny_config, tmp_path, monkeypatch):
    from spikerl.algos import TD3

    cfg = tiny_config()
    real_update = TD3.update

    def poisoned(self, buffer):
        metrics = real_update(self, buffer)
        if self.iterations > 150:
            metrics["loss/critic"] = float("nan")
        return metrics

    monkeypatch.setattr(TD3, "update", poisoned)
    with pytest.raises(TrainingDiverged, match="non-finite loss at env step 250"):
        train(cfg, tmp_path)
    ckpt = load_checkpoint(tmp_path / cfg.run_name / "checkpoint.pt")
    assert ckpt["progress"]["step"] == 200
    assert all(torch.isfinite(p).all() for p in ckpt["learner"]["critic"].values())


def _cli(args, **kw):
    cmd = [sys.executable, "-m", "spikerl.cli", *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, **kw)


def _tiny_cli_args(tiny_overrides, runs_dir, steps):
    sets = [a for o in tiny_overrides for a in ("--set", o)]
    return [
        "train",
        *sets,
        "--set",
        "actor.kind=lif",
        "--set",
        "algo.target=proxy",
        "--set",
        f"run.total_steps={steps}",
        "--set",
        "run.eval_every=100",
        "--set",
        "run.name=r",
        "--runs-dir",
        str(runs_dir),
    ]


def test_kill_and_resume_matches_uninterrupted_run(tmp_path):
    """SIGKILL a real training process mid-run, resume it, and compare with a clean run."""
    from tests.conftest import TINY

    steps = 600
    clean = _cli(_tiny_cli_args(TINY, tmp_path / "clean", steps))
    assert clean.wait(timeout=300) == 0, clean.stderr.read().decode()

    killed = _cli(_tiny_cli_args(TINY, tmp_path / "killed", steps))
    metrics = tmp_path / "killed" / "r" / "metrics.csv"
    deadline = time.time() + 240
    while time.time() < deadline:  # wait until at least the step-300 checkpoint exists
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 5:
            break
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    resumed = _cli(["train", "--resume", str(tmp_path / "killed" / "r")])
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read().decode()
    assert read_metrics(tmp_path / "killed" / "r") == read_metrics(tmp_path / "clean" / "r")


def test_sigterm_checkpoints_and_reports_resume_command(tmp_path):
    from tests.conftest import TINY

    proc = _cli(_tiny_cli_args(TINY, tmp_path, 100_000))
    metrics = tmp_path / "r" / "metrics.csv"
    deadline = time.time() + 120
    while time.time() < deadline:
        if metrics.exists() and metrics.read_text().count("\n") >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 130
    assert "spikerl train --resume" in proc.stderr.read().decode()
    step = load_checkpoint(tmp_path / "r" / "checkpoint.pt")["progress"]["step"]
    assert 100 <= step < 100_000


def test_resume_without_saved_buffer_refills_before_updating(tiny_config, tmp_path):
    cfg = tiny_config("run.save_buffer=false", "run.total_steps=200", "algo.buffer_size=150")
    train(cfg, tmp_path)
    ckpt = load_checkpoint(tmp_path / cfg.run_name / "checkpoint.pt")
    assert "data" not in ckpt["buffer"]
    longer = tiny_config(
        "run.save_buffer=false",
        "run.total_steps=400",
        "algo.buffer_size=150",
        f"run.name={cfg.run_name}",
    )
    (tmp_path / cfg.run_name / "config.yaml").write_text(yaml.safe_dump(config_to_dict(longer)))
    result = train(longer, tmp_path, resume=True)
    assert result.steps == 400 and [int(r["step"]) for r in read_metrics(result.run_dir)] == [
        0,
        200,
        400,
    ]


def test_overwrite_refuses_a_folder_that_is_not_a_run(tiny_config, tmp_path):
    cfg = tiny_config("run.name=precious")
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "data.txt").write_text("keep me")
    with pytest.raises(RunError, match="not a spikerl run directory"):
        train(cfg, tmp_path, overwrite=True)
    assert (tmp_path / "precious" / "data.txt").read_text() == "keep me"


def test_checkpoints_store_numpy_as_tensors_and_name_pickled_objects(tmp_path):
    import numpy as np

    from spikerl.experiments.checkpoint import load_checkpoint, save_checkpoint

    save_checkpoint({"a": np.arange(3.0), "b": [np.float32(2.5), (np.int64(4),)]}, tmp_path / "c")
    state = load_checkpoint(tmp_path / "c")
    assert torch.equal(state["a"], torch.arange(3.0, dtype=torch.float64))
    assert state["b"] == [2.5, (4,)] and type(state["b"][1][0]) is int
    from collections import namedtuple

    from spikerl.envs.state import plain_data

    state_dict = torch.nn.Linear(2, 2).state_dict()
    assert plain_data(state_dict) is state_dict  # nothing to convert: type and metadata kept
    pair = namedtuple("Pair", "a b")(np.zeros(2), 1)
    assert type(plain_data(pair)).__name__ == "Pair" and torch.is_tensor(plain_data(pair).a)
    torch.save({"format": 1, "a": np.arange(3.0)}, tmp_path / "pickled.pt")
    with pytest.raises(
        CheckpointError,
        match=r"holds pickled Python objects, which spikerl does not load; .* convert it again",
    ):
        load_checkpoint(tmp_path / "pickled.pt")


def test_checkpoint_write_failure_is_a_clear_error(tmp_path):
    from spikerl.experiments.checkpoint import save_checkpoint

    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError, match="could not write checkpoint"):
        save_checkpoint({"a": 1}, tmp_path / "file" / "checkpoint.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


@pytest.mark.parametrize("kind", ["ann", "lif"])
def test_a_run_extended_on_resume_equals_one_started_with_the_longer_budget(
    tiny_config, tmp_path, kind, capsys
):
    """run.total_steps caps the replay capacity below algo.buffer_size; extending a run on
    resume keeps its buffer (grown, oldest first) and, with no schedule tied to the budget,
    ends exactly where a run started with the longer budget ends."""
    short = tiny_config(f"actor.kind={kind}", "run.name=extended")  # 400 steps, capacity 400
    train(short, tmp_path / "a")
    longer = tiny_config(f"actor.kind={kind}", "run.name=extended", "run.total_steps=800")
    (tmp_path / "a" / "extended" / "config.yaml").write_text(
        yaml.safe_dump(config_to_dict(longer), sort_keys=False)
    )
    extended = train(longer, tmp_path / "a", resume=True)
    assert "note: run.total_steps 400 -> 800: the run trains to the new budget\n" in (
        capsys.readouterr().err
    )
    fresh = train(longer, tmp_path / "b")
    assert extended.steps == 800 and len(read_metrics(extended.run_dir)) == 5
    assert read_metrics(extended.run_dir) == read_metrics(fresh.run_dir)
    grown = load_checkpoint(extended.run_dir / "checkpoint.pt")["buffer"]
    assert grown["capacity"] == 800 and grown["size"] == 800


def test_a_budget_lowered_below_the_checkpoint_is_said_and_trains_nothing(
    tiny_config, tmp_path, capsys
):
    cfg = tiny_config("run.name=lowered")
    train(cfg, tmp_path)
    lower = tiny_config("run.name=lowered", "run.total_steps=200")
    (tmp_path / "lowered" / "config.yaml").write_text(
        yaml.safe_dump(config_to_dict(lower), sort_keys=False)
    )
    rows = read_metrics(tmp_path / "lowered")
    assert train(lower, tmp_path, resume=True).steps == 400
    err = capsys.readouterr().err
    assert "run.total_steps 400 -> 200: the checkpoint is at step 400, at or past" in err
    assert read_metrics(tmp_path / "lowered") == rows
