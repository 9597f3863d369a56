"""Run folders that cannot be corrupted: one writer, no half-made folders, validated resume."""

from __future__ import annotations

import csv
import signal
import time

import pytest

from spikerl.cli import main
from spikerl.errors import MissingDependencyError
from spikerl.experiments import run as run_module
from spikerl.experiments.checkpoint import CheckpointError, load_checkpoint
from spikerl.experiments.policy import evaluate_run
from spikerl.experiments.run import RunError, train
from spikerl.experiments.runlock import RunLocked, lock_path, run_lock
from tests.conftest import TINY
from tests.experiments.test_run import _cli, _tiny_cli_args, read_metrics


def _wait_for(path, timeout=120.0):
    deadline = time.time() + timeout
    while time.time() < deadline and not path.exists():
        time.sleep(0.02)
    assert path.exists(), f"{path} did not appear"


# --- one writer per folder -------------------------------------------------------------------


@pytest.mark.parametrize("second", [[], ["--overwrite"], ["--resume"]])
def test_a_second_process_is_refused_while_the_first_writes(tmp_path, second):
    first = _cli(_tiny_cli_args(TINY, tmp_path, 100_000))
    run_dir = tmp_path / "r"
    _wait_for(run_dir / "checkpoint.pt")
    if second == ["--resume"]:
        args = ["train", "--resume", str(run_dir)]
    else:
        args = [*_tiny_cli_args(TINY, tmp_path, 100_000), *second]
    racer = _cli(args)
    assert racer.wait(timeout=120) != 0
    err = racer.stderr.read().decode().strip().splitlines()
    assert len(err) == 1 and f"in use by process {first.pid}" in err[0], err
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=60) == 130
    rows = read_metrics(run_dir)
    assert [int(r["step"]) for r in rows] == list(range(0, 100 * len(rows), 100))
    assert load_checkpoint(run_dir / "checkpoint.pt")["config"]["run"]["seed"] == 0
    assert not lock_path(run_dir).exists()  # a clean exit removes the lock file


def test_a_lock_left_by_a_dead_process_is_taken_over_with_a_note(tiny_config, tmp_path, capsys):
    cfg = tiny_config("run.total_steps=200")
    run_dir = tmp_path / cfg.run_name
    lock_path(run_dir).write_text("pid=999999\nhost=elsewhere\ncommand=spikerl train\n")
    train(cfg, tmp_path)
    assert "took over the lock" in capsys.readouterr().err
    assert (run_dir / "checkpoint.pt").is_file()


def test_lock_is_exclusive_within_a_process_too(tmp_path):
    with run_lock(tmp_path / "r"):
        with pytest.raises(RunLocked, match="in use by process"):
            with run_lock(tmp_path / "r"):
                pass
    with run_lock(tmp_path / "r"):  # released on exit
        pass


def test_a_link_to_a_run_folder_shares_its_lock(tmp_path):
    """Two paths to one folder (e.g. a report folder of links into runs/) are one writer's:
    a trainer through the link is refused while one writes through the real path, and a report
    through the link sees the live trainer (not a crash)."""
    import os

    from spikerl.experiments.runlock import lock_holder

    (tmp_path / "runs" / "r").mkdir(parents=True)
    (tmp_path / "links").mkdir()
    (tmp_path / "links" / "r").symlink_to(tmp_path / "runs" / "r")
    with run_lock(tmp_path / "runs" / "r"):
        assert lock_holder(tmp_path / "links" / "r")["pid"] == str(os.getpid())
        with pytest.raises(RunLocked, match="in use by process"):
            with run_lock(tmp_path / "links" / "r"):
                pass
    assert not list((tmp_path / "links").glob(".*.lock"))


# --- no half-made folders ----------------------------------------------------------------------


def test_a_start_missing_a_dependency_leaves_nothing(tiny_config, tmp_path, monkeypatch):
    def no_tensorboard(*args, **kwargs):
        raise MissingDependencyError("run.tensorboard: TensorBoard is not installed")

    monkeypatch.setattr(run_module, "MetricsWriter", no_tensorboard)
    cfg = tiny_config("run.total_steps=200")
    for _ in range(2):  # the same command fails the same way, never with "already exists"
        with pytest.raises(MissingDependencyError):
            train(cfg, tmp_path)
        assert not (tmp_path / cfg.run_name).exists()


def test_a_start_failing_after_the_folder_was_made_removes_it(tiny_config, tmp_path, monkeypatch):
    def unwritable(state, path):
        raise CheckpointError(f"could not write checkpoint {path}: No space left on device")

    monkeypatch.setattr(run_module, "save_checkpoint", unwritable)
    cfg = tiny_config("run.total_steps=200")
    with pytest.raises(CheckpointError, match="No space"):
        train(cfg, tmp_path)
    assert not (tmp_path / cfg.run_name).exists()


def test_overwrite_keeps_the_old_run_when_the_new_one_cannot_start(
    tiny_config, tmp_path, monkeypatch
):
    cfg = tiny_config("run.total_steps=200")
    train(cfg, tmp_path)
    before = read_metrics(tmp_path / cfg.run_name)

    def broken(*args, **kwargs):
        raise MissingDependencyError("run.tensorboard: TensorBoard is not installed")

    monkeypatch.setattr(run_module, "MetricsWriter", broken)
    with pytest.raises(MissingDependencyError):
        train(cfg, tmp_path, overwrite=True)
    assert read_metrics(tmp_path / cfg.run_name) == before


def test_overwrite_refuses_a_run_folder_that_holds_other_outputs(tiny_config, tmp_path, capsys):
    """A policy converted into the run folder (or any file training did not write) is not
    deleted by --overwrite; the message names it. Training's own entries, temporary files
    included, are replaced as before."""
    cfg = tiny_config("run.total_steps=200")
    train(cfg, tmp_path)
    run_dir = tmp_path / cfg.run_name
    (run_dir / "converted").mkdir()
    (run_dir / "converted" / "policy.pt").write_text("keep me")
    (run_dir / "energy.json").write_text("{}")
    (run_dir / ".checkpoint.pt.tmp-1").write_text("half")
    before = read_metrics(run_dir)
    with pytest.raises(RunError, match=r"also holds converted/, energy\.json, which training"):
        train(cfg, tmp_path, overwrite=True)
    assert (run_dir / "converted" / "policy.pt").read_text() == "keep me"
    assert read_metrics(run_dir) == before
    sets = [a for o in [*TINY, "run.total_steps=200"] for a in ("--set", o)]
    assert main(["train", *sets, "--runs-dir", str(tmp_path), "--overwrite"]) == 1
    assert "also holds converted/" in capsys.readouterr().err
    (run_dir / "converted" / "policy.pt").unlink()
    (run_dir / "converted").rmdir()
    (run_dir / "energy.json").unlink()
    train(cfg, tmp_path, overwrite=True)
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(
        ["best.pt", "checkpoint.pt", "config.yaml", "metrics.csv", "provenance.yaml", "status.json"]
    )


def test_a_start_killed_before_its_first_checkpoint_starts_again(tiny_config, tmp_path, capsys):
    """A SIGKILL during the start (e.g. the sequence method's guide seeding) leaves config.yaml
    and no checkpoint: --resume says what to do, and the plain command starts the run again.
    A folder that also holds other files is still refused."""
    cfg = tiny_config("run.total_steps=200")
    run_dir = tmp_path / cfg.run_name
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("env:\n  id: Pendulum-v1\n")
    (run_dir / "status.json").write_text("{}")
    with pytest.raises(RunError, match="the command without --resume starts it again"):
        train(cfg, tmp_path, resume=True)
    (run_dir / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match="already exists"):
        train(cfg, tmp_path)
    (run_dir / "notes.txt").unlink()
    result = train(cfg, tmp_path)
    assert "stopped before its first checkpoint; starting it again" in capsys.readouterr().err
    assert result.steps == 200 and (run_dir / "checkpoint.pt").is_file()


def test_a_config_yaml_edited_after_the_checkpoint_is_refused(tiny_config, tmp_path, capsys):
    import yaml

    cfg = tiny_config("run.total_steps=200")
    train(cfg, tmp_path)
    path = tmp_path / cfg.run_name / "config.yaml"
    data = yaml.safe_load(path.read_text())
    data["algo"]["tau"] = 0.5
    path.write_text(yaml.safe_dump(data))
    assert main(["train", "--resume", str(path.parent)]) == 1
    assert "algo.tau=0.005 (config.yaml: 0.5)" in capsys.readouterr().err


def test_runs_dir_that_is_a_file_is_one_clear_error(tiny_config, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(Exception, match="is a file, not a directory"):
        train(tiny_config(), tmp_path / "file")


def test_resume_and_overwrite_together_are_refused(tiny_config, tmp_path):
    with pytest.raises(RunError, match="choose one"):
        train(tiny_config(), tmp_path, resume=True, overwrite=True)


# --- resume validates what it reads --------------------------------------------------------------


def _interrupted_and_clean(tiny_config, tmp_path):
    cfg = tiny_config("run.total_steps=400", "run.eval_every=100")
    train(cfg, tmp_path / "clean")
    cut = tiny_config("run.total_steps=400", "run.eval_every=100")
    run_dir = tmp_path / "cut" / cfg.run_name
    train(cut, tmp_path / "cut")
    return cfg, run_dir, read_metrics(tmp_path / "clean" / cfg.run_name)


@pytest.mark.parametrize(
    "damage,note",
    [
        (lambda raw: raw[: len(raw) - 17], "last row was cut off"),
        (lambda raw: raw[:40] + b"\xff\xfe" + raw[40:], "not UTF-8"),
        (lambda raw: b"", "differ"),
    ],
)
def test_resume_rewrites_a_damaged_metrics_csv_from_the_checkpoint(
    tiny_config, tmp_path, capsys, damage, note
):
    cfg, run_dir, clean = _interrupted_and_clean(tiny_config, tmp_path)
    metrics = run_dir / "metrics.csv"
    metrics.write_bytes(damage(metrics.read_bytes()))
    capsys.readouterr()
    train(cfg, tmp_path / "cut", resume=True)
    err = capsys.readouterr().err
    assert f"{metrics}" in err and note in err and "rewritten from the checkpoint" in err
    assert read_metrics(run_dir) == clean
    with open(metrics, newline="", encoding="utf-8") as f:
        assert all(None not in row.values() for row in csv.DictReader(f))


def test_resume_removes_a_half_written_checkpoint_left_by_a_kill(tiny_config, tmp_path, capsys):
    from tests.test_atomic import _dead_pid

    cfg, run_dir, clean = _interrupted_and_clean(tiny_config, tmp_path)
    left = run_dir / f".checkpoint.pt.tmp-{_dead_pid()}"  # what SIGKILL mid-save leaves
    left.write_bytes(b"\0" * 2**20)
    capsys.readouterr()
    train(cfg, tmp_path / "cut", resume=True)
    err = capsys.readouterr().err
    assert "removed the temporary files of an interrupted write (1.0 MiB)" in err
    assert left.name in err and not left.exists()
    assert read_metrics(run_dir) == clean


@pytest.mark.parametrize(
    "content,reason",
    [
        (b"run: [unclosed", "not valid YAML"),
        (b"\xff\xfe\x00", "not UTF-8 text"),
        (b"", "it is empty"),  # not the default config: a report would mislabel the run
        (b"- 1\n", "it is a list, not a mapping"),
    ],
)
def test_corrupt_config_yaml_is_named(tiny_config, tmp_path, content, reason):
    cfg = tiny_config("run.total_steps=200")
    train(cfg, tmp_path)
    run_dir = tmp_path / cfg.run_name
    (run_dir / "config.yaml").write_bytes(content)
    for call in (
        lambda: train(cfg, tmp_path, resume=True),
        lambda: evaluate_run(run_dir),
        lambda: evaluate_run(run_dir / "checkpoint.pt"),
    ):
        with pytest.raises(RunError, match=f"config.yaml is corrupt \\({reason}\\)"):
            call()


def test_wall_time_continues_across_a_resume(tiny_config, tmp_path, interrupt_td3):
    cfg = tiny_config("run.total_steps=400", "run.eval_every=100", "run.name=w")
    restore = interrupt_td3("update", 150)  # updates start at step 100: stop near step 250
    assert train(cfg, tmp_path).interrupted
    first = [float(r["wall_time"]) for r in read_metrics_with_wall(tmp_path / "w")]
    time.sleep(1.0)  # idle time between sessions is not training time
    restore()
    train(cfg, tmp_path, resume=True)
    walls = [float(r["wall_time"]) for r in read_metrics_with_wall(tmp_path / "w")]
    assert len(walls) == 5 and walls[: len(first)] == first
    assert walls == sorted(walls) and walls[-1] > first[-1]


@pytest.mark.parametrize(
    ("repeated", "stops_at_once"), [(signal.SIGTERM, False), (signal.SIGINT, True)]
)
def test_repeated_sigterm_still_checkpoints_but_a_second_ctrl_c_stops_at_once(
    tiny_config, tmp_path, monkeypatch, repeated, stops_at_once
):
    """A dying sweep driver can deliver its parent-death SIGTERM more than once (once per
    thread the orphan is handed to): the run must still checkpoint and report "stopped"."""
    import os

    from spikerl.algos import TD3
    from spikerl.experiments.status import read_status

    cfg = tiny_config("run.total_steps=400", "run.eval_every=100", "run.name=s")
    real_update, calls = TD3.update, {"n": 0}

    def update_then_signal(self, buffer):
        calls["n"] += 1
        if calls["n"] == 50:  # two signals inside one update, before the loop looks
            os.kill(os.getpid(), repeated)
            os.kill(os.getpid(), repeated)
        return real_update(self, buffer)

    monkeypatch.setattr(TD3, "update", update_then_signal)
    if stops_at_once:
        with pytest.raises(KeyboardInterrupt):
            train(cfg, tmp_path)
        return
    result = train(cfg, tmp_path)
    assert result.interrupted and result.steps < 400
    assert read_status(tmp_path / "s")["state"] == "stopped"
    assert load_checkpoint(tmp_path / "s" / "checkpoint.pt")["progress"]["step"] == result.steps


def read_metrics_with_wall(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


# --- best checkpoint and log lines ---------------------------------------------------------------


def test_best_checkpoint_holds_the_best_evaluation(tiny_config, tmp_path):
    cfg = tiny_config("actor.kind=lif", "run.total_steps=400", "run.eval_every=100")
    result = train(cfg, tmp_path)
    best = load_checkpoint(tmp_path / cfg.run_name / "best.pt")
    assert best["eval_return"] == max(result.eval_returns)
    assert (
        best["progress"]["step"]
        == result.eval_steps[result.eval_returns.index(max(result.eval_returns))]
    )
    evaluated, _ = evaluate_run(tmp_path / cfg.run_name / "best.pt", episodes=1)
    assert len(evaluated.returns) == 1


def test_one_plain_log_line_per_evaluation_without_a_terminal(tiny_config, tmp_path, capsys):
    cfg = tiny_config("actor.kind=lif", "algo.target=proxy", "run.progress=true")
    train(cfg, tmp_path)  # pytest's stderr is not a terminal: no bar, plain lines
    lines = [ln for ln in capsys.readouterr().err.splitlines() if " step " in ln]
    assert [ln.split(" step ")[1].split(",")[0] for ln in lines] == ["0/400", "200/400", "400/400"]
    assert "return -" in lines[-1] and "firing rate" in lines[-1] and "proxy loss" in lines[-1]
    assert "\r" not in "".join(lines) and "%|" not in "".join(lines)
