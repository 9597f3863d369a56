"""Sweeps: grid expansion and naming, the local backend end to end, skip and resume, crashes
retried and reported, a killed driver re-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from spikerl.cli import main
from spikerl.experiments.config import ConfigError, config_to_dict, load_config
from spikerl.experiments.run import train
from spikerl.experiments.status import read_status
from spikerl.experiments.sweep import load_sweep, method_label
from spikerl.experiments.sweep_exec import write_sweep_files
from tests.conftest import TINY
from tests.experiments.crashing_env import MESSAGE
from tests.experiments.test_run import read_metrics

REPO = Path(__file__).resolve().parents[2]
CRASH_ENV = "tests.experiments.crashing_env"


def _tiny_set(**extra) -> dict:
    """TINY as a sweep ``set`` mapping (env and seed left to the axes)."""
    pairs = dict(item.split("=", 1) for item in TINY if not item.startswith("env.id"))
    return {k: yaml.safe_load(v) for k, v in pairs.items()} | extra


def _write_sweep(tmp_path: Path, **data) -> Path:
    data.setdefault("output", str(tmp_path / "out"))
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


GRID = {
    "methods": {
        "ANN TD3": {"actor.kind": "ann", "algo.target": "polyak"},
        "PT-LIF": {"actor.kind": "lif", "algo.target": "proxy"},
    },
    "axes": {"env.id": ["Pendulum-v1", "MountainCarContinuous-v0"], "run.seed": [0, 1, 2]},
}


# --------------------------------------------------------------------------------------------
# Expansion and naming


def test_grid_is_the_product_in_order_with_stable_names(tmp_path):
    sweep = load_sweep(_write_sweep(tmp_path, set=_tiny_set(), **GRID))
    assert len(sweep.runs) == 2 * 2 * 3
    assert [r.name for r in sweep.runs[:4]] == [
        "ann-td3_Pendulum-v1_s0",
        "ann-td3_Pendulum-v1_s1",
        "ann-td3_Pendulum-v1_s2",
        "ann-td3_MountainCarContinuous-v0_s0",
    ]
    run = sweep.runs[-1]
    assert (run.method, run.env, run.seed) == ("PT-LIF", "MountainCarContinuous-v0", 2)
    assert (run.config.actor.kind, run.config.algo.target) == ("lif", "proxy")
    assert run.config.run.name == run.name and run.config.run.threads == 1
    assert not run.config.run.progress
    # a name depends on the run's own values only, not on which other runs the grid holds
    smaller = dict(GRID, axes={"env.id": ["MountainCarContinuous-v0"], "run.seed": [2]})
    alone = load_sweep(_write_sweep(tmp_path, set=_tiny_set(), **smaller))
    assert alone.runs[-1].name == run.name == "pt-lif_MountainCarContinuous-v0_s2"


def test_zip_exclude_and_where(tmp_path):
    sweep = load_sweep(
        _write_sweep(
            tmp_path,
            set=_tiny_set(),
            axes={"actor.kind": ["lif", "dn"], "run.seed": [0, 1]},
            zip=[{"algo.tau": [0.005, 0.01], "algo.gamma": [0.99, 0.98]}],
            exclude=[{"actor.kind": "dn", "algo.tau": 0.01}],
            where=[{"when": {"actor.kind": "lif", "run.seed": 1}, "set": {"algo.proxy.lr": 0.003}}],
        )
    )
    combos = [(r.config.actor.kind, r.config.algo.tau, r.config.run.seed) for r in sweep.runs]
    assert len(combos) == 2 * 2 * 2 - 2
    assert ("dn", 0.01, 0) not in combos and ("dn", 0.005, 1) in combos
    assert all(
        r.config.algo.gamma == (0.99 if r.config.algo.tau == 0.005 else 0.98) for r in sweep.runs
    )
    lrs = {(r.config.actor.kind, r.config.run.seed): r.config.algo.proxy.lr for r in sweep.runs}
    assert lrs[("lif", 1)] == 0.003 and lrs[("lif", 0)] == 0.001 and lrs[("dn", 1)] == 0.001
    # without `methods`, the non-env non-seed axis values are the method label
    assert sweep.runs[0].method == "actor.kind=lif, algo.tau=0.005, algo.gamma=0.99"
    assert sweep.runs[0].name == "kind-lif_tau-0.005_gamma-0.99_s0"


def test_method_label_follows_the_papers_names(tiny_config):
    labels = {
        ("ann", "polyak"): "ANN TD3",
        ("ann", "proxy"): "PN-ANN",
        ("lif", "polyak"): "LIF",
        ("clif", "proxy"): "PT-CLIF",
    }
    for (kind, target), label in labels.items():
        cfg = tiny_config(f"actor.kind={kind}", f"algo.target={target}")
        assert method_label(cfg) == label
    assert method_label(tiny_config("algo.name=sac")) == "SAC"


def test_colliding_names_get_an_overrides_hash(tmp_path):
    sweep = load_sweep(_write_sweep(tmp_path, set=_tiny_set(), axes={"algo.tau": [0.01, "0.01"]}))
    names = [r.name for r in sweep.runs]
    assert len(set(names)) == 2 and all(n.startswith("tau-0.01_") for n in names)
    again = load_sweep(_write_sweep(tmp_path, set=_tiny_set(), axes={"algo.tau": [0.01, "0.01"]}))
    assert [r.name for r in again.runs] == names


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"axes": {"run.seed": []}}, "sweep axis 'run.seed': expected a non-empty list"),
        ({"axes": {"run.seed": [0, 0]}}, "is listed twice (the same settings: "),
        ({"zip": [{"run.seed": [1, 1], "algo.tau": [0.1, 0.1]}]}, "remove the repeated value"),
        ({"axes": {"algo.tau": [2.0]}}, "sweep run (algo.tau=2.0): algo.tau: 2.0 is out of range"),
        ({"axes": {"algo.tua": [0.1]}}, "unknown config key 'algo.tua'"),
        ({"axis": {"run.seed": [0]}}, "unknown sweep key 'axis'"),
        ({"zip": [{"run.seed": [0, 1], "algo.tau": [0.1]}]}, "its lists differ in length"),
        (
            {"axes": {"run.seed": [0]}, "zip": [{"run.seed": [1]}]},
            "key 'run.seed' is set by two axes",
        ),
        ({"axes": {"run.seed": [0]}, "exclude": [{"run.seed": 0}]}, "the sweep has no runs"),
        ({"axes": {"run.seed": [0]}, "baseline": "PT-LIF"}, "'PT-LIF' is not a method"),
        ({"axes": {"run.seed": [0]}, "output": ""}, "'output' (the output folder) is required"),
        ({"axes": {"run.seed": [0]}, "retries": -1}, "sweep key 'retries'"),
        ({"base": "missing.yaml"}, "does not exist"),
    ],
)
def test_bad_sweep_files_fail_with_one_line_naming_the_key(tmp_path, data, message, capsys):
    path = _write_sweep(tmp_path, set=_tiny_set(), **data)
    with pytest.raises(ConfigError) as err:
        load_sweep(path)
    assert message in str(err.value)
    assert main(["sweep", str(path), "--dry-run"]) == 2
    err_text = capsys.readouterr().err
    assert err_text.startswith("error: ") and err_text.count("\n") == 1


def test_dry_run_lists_runs_with_a_count_and_writes_nothing(tmp_path, capsys):
    path = _write_sweep(tmp_path, set=_tiny_set(), **GRID)
    assert main(["sweep", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "pt-lif_MountainCarContinuous-v0_s2" in out and "12 runs (12 new)" in out
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------
# Running


def _sweep_cli(path: Path, *args: str) -> int:
    return main(["sweep", str(path), "--plain", *args])


def _attempt_lines(log: Path) -> list[str]:
    return [
        line
        for line in log.read_text().splitlines()
        if line.startswith("=== ") and "attempt" in line
    ]


def test_local_sweep_end_to_end_then_skips_finished_runs(tmp_path, capsys):
    path = _write_sweep(
        tmp_path,
        set=_tiny_set(),
        methods=GRID["methods"],
        axes={"run.seed": [0]},
        baseline="ANN TD3",
    )
    assert _sweep_cli(path, "--max-parallel", "2") == 0
    out_dir = tmp_path / "out"
    manifest = json.loads((out_dir / "sweep.json").read_text())
    assert [r["name"] for r in manifest["runs"]] == ["ann-td3_s0", "pt-lif_s0"]
    assert manifest["baseline"] == "ANN TD3"
    for name in ("ann-td3_s0", "pt-lif_s0"):
        status = read_status(out_dir / name)
        assert status["state"] == "finished" and status["step"] == 400
        assert [row["step"] for row in read_metrics(out_dir / name)] == ["0", "200", "400"]
        assert len(_attempt_lines(out_dir / "logs" / f"{name}.log")) == 1
    out = capsys.readouterr().out
    assert "2/2 runs finished" in out and f"spikerl report {out_dir}" in out
    # the same command again: nothing to do, no process started
    assert _sweep_cli(path) == 0
    assert "skipped" in capsys.readouterr().out
    assert len(_attempt_lines(out_dir / "logs" / "pt-lif_s0.log")) == 1
    # the same result as one plain run of the same config
    cfg = load_sweep(path).runs[1].config
    reference = train(cfg, tmp_path / "reference")
    returns = [float(r["eval/return_mean"]) for r in read_metrics(out_dir / "pt-lif_s0")]
    assert returns == reference.eval_returns


def test_a_crashing_run_is_retried_and_reported_while_the_others_finish(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("SPIKERL_TEST_MARKERS", str(tmp_path / "markers"))
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the children import tests.experiments...
    envs = ["Pendulum-v1", f"{CRASH_ENV}:CrashOnce-v0", f"{CRASH_ENV}:CrashAlways-v0"]
    path = _write_sweep(
        tmp_path, set=_tiny_set(**{"actor.kind": "ann"}), axes={"env.id": envs}, retries=1
    )
    assert _sweep_cli(path, "--max-parallel", "2") == 1
    captured = capsys.readouterr()
    out_dir = tmp_path / "out"
    names = {r.env: r.name for r in load_sweep(path).runs}
    ok, once, always = (names[e] for e in envs)
    assert read_status(out_dir / ok)["state"] == "finished"
    # crashed at step 250 after the step-200 checkpoint; the retry resumed from it
    assert read_status(out_dir / once)["state"] == "finished"
    once_log = (out_dir / "logs" / f"{once}.log").read_text()
    assert MESSAGE in once_log and f"train --resume {out_dir / once}" in once_log
    assert len(_attempt_lines(out_dir / "logs" / f"{once}.log")) == 2
    # crashes in its first evaluation every time: two attempts, reported with the log tail
    assert len(_attempt_lines(out_dir / "logs" / f"{always}.log")) == 2
    assert not (out_dir / always).exists()  # a start that failed leaves no folder
    assert f"retry    {once} after a crash" in captured.err
    assert f"FAILED   {always} after 2 attempts" in captured.err
    summary = captured.out
    assert f"{always} (failed), log {out_dir / 'logs' / (always + '.log')}" in summary
    assert MESSAGE in summary and "2/3 runs finished" in summary


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_a_killed_driver_loses_nothing_and_the_rerun_continues(tmp_path):
    """SIGKILL the driver while its second run trains: the first run's result stays, the child
    checkpoints and stops (it is bound to the driver's life), and the same command finishes
    the sweep, resuming the second run, with the curve of an uninterrupted run."""
    # the second run is long enough that it is still training when the driver dies: its
    # status.json is rewritten every 2 s, so "step >= 600" may first be seen well after 600
    settings = _tiny_set(**{"run.total_steps": 6000, "run.eval_every": 400})
    path = _write_sweep(
        tmp_path,
        set=settings,
        methods={"ANN TD3": {"actor.kind": "ann"}},
        axes={"run.total_steps": [400, 6000]},
    )
    first, second = (r.name for r in load_sweep(path).runs)
    out_dir = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "spikerl.cli",
        "sweep",
        str(path),
        "--plain",
        "--max-parallel",
        "1",
    ]
    driver = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(
            lambda: (read_status(out_dir / second) or {}).get("step", 0) >= 600,
            180,
            "the second run to pass step 600",
        )
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    _wait_for(
        lambda: (read_status(out_dir / second) or {}).get("state") == "stopped",
        60,
        "the orphaned run to checkpoint and stop",
    )
    stopped_at = read_status(out_dir / second)["step"]
    assert 600 <= stopped_at < 6000
    assert read_status(out_dir / first)["state"] == "finished"
    rerun = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
    assert rerun.returncode == 0, rerun.stderr
    assert read_status(out_dir / second)["state"] == "finished"
    assert len(_attempt_lines(out_dir / "logs" / f"{first}.log")) == 1
    assert f"train --resume {out_dir / second}" in (out_dir / "logs" / f"{second}.log").read_text()
    cfg = load_sweep(path).runs[1].config
    reference = train(cfg, tmp_path / "reference")
    returns = [float(r["eval/return_mean"]) for r in read_metrics(out_dir / second)]
    assert returns == reference.eval_returns


def _one_error_line(err: str) -> str:
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_a_run_folder_holding_another_config_is_refused_and_not_touched(tmp_path, capsys):
    path = _write_sweep(tmp_path, set=_tiny_set(), axes={"run.seed": [0]})
    name = load_sweep(path).runs[0].name
    foreign = tmp_path / "out" / name
    foreign.mkdir(parents=True)
    other = load_config(None, [*TINY, "algo.tau=0.5"])
    (foreign / "config.yaml").write_text(yaml.safe_dump(config_to_dict(other)))
    assert _sweep_cli(path) == 2
    err = _one_error_line(capsys.readouterr().err)
    assert f"1 run folder(s) in {tmp_path / 'out'} hold another config" in err
    assert f"{name}/config.yaml has algo.tau=0.5 (the sweep: 0.005)" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [name]  # nothing written
    assert sorted(p.name for p in foreign.iterdir()) == ["config.yaml"]


def test_an_edited_sweep_file_is_refused_before_it_overwrites_the_finished_sweep(tmp_path, capsys):
    """Re-running into a sweep's folder with a changed config: one line naming the runs and
    the change, and the manifest and configs/ of the finished sweep stay as they were."""
    path = _write_sweep(tmp_path, set=_tiny_set(), axes={"run.seed": [0, 1]})
    old = load_sweep(path)
    write_sweep_files(old)
    for run in old.runs:  # as if they had finished: each folder holds its config
        (old.output / run.name).mkdir()
        (old.output / run.name / "config.yaml").write_text(
            yaml.safe_dump(config_to_dict(run.config), sort_keys=False)
        )
    before = {p: p.read_bytes() for p in old.output.rglob("*") if p.is_file()}
    edited = tmp_path / "edited.yaml"
    edited.write_text(path.read_text().replace("learning_starts: 100", "learning_starts: 200"))
    assert main(["sweep", str(edited), "--dry-run"]) == 2
    captured = capsys.readouterr()
    assert "2 runs (2 conflict)" in captured.out
    first = _one_error_line(captured.err)
    assert _sweep_cli(edited) == 2
    err = _one_error_line(capsys.readouterr().err)
    assert err == first
    names = ", ".join(run.name for run in old.runs)
    assert f"2 run folder(s) in {old.output} hold another config than this sweep asks for" in err
    assert (
        f"{names}; {old.runs[0].name}/config.yaml has algo.learning_starts=100 (the sweep: 200)"
        in err
    )
    assert "choose a new --output" in err
    assert {p: p.read_bytes() for p in old.output.rglob("*") if p.is_file()} == before


def test_another_sweeps_folder_or_a_run_folder_is_refused_as_output(tmp_path, capsys):
    """A sweep whose manifest would drop another sweep's runs from the report, and a run
    folder, are refused in one line before anything is written."""
    first = load_sweep(_write_sweep(tmp_path, set=_tiny_set(), axes={"run.seed": [0, 1]}))
    write_sweep_files(first)
    fewer = _write_sweep(tmp_path, set=_tiny_set(), axes={"run.seed": [0]})
    assert main(["sweep", str(fewer), "--dry-run"]) == 0  # no run started: nothing to lose
    for run in first.runs:
        (first.output / run.name).mkdir()
    before = (first.output / "sweep.json").read_bytes()
    other = _write_sweep(tmp_path, name="other", set=_tiny_set(), axes={"run.seed": [2]})
    assert _sweep_cli(other) == 2
    err = _one_error_line(capsys.readouterr().err)
    dropped = ", ".join(run.name for run in first.runs)
    assert f"holds the runs {dropped} of the sweep 'sweep', which this sweep does not have" in err
    assert (first.output / "sweep.json").read_bytes() == before
    run_folder = tmp_path / "run"
    run_folder.mkdir()
    (run_folder / "config.yaml").write_text("{}")
    assert _sweep_cli(other, "--output", str(run_folder)) == 2
    assert "is a run folder" in _one_error_line(capsys.readouterr().err)
    assert sorted(p.name for p in run_folder.iterdir()) == ["config.yaml"]
    (first.output / "sweep.json").write_text("not json")
    assert _sweep_cli(other) == 2
    assert "holds an unreadable sweep.json" in _one_error_line(capsys.readouterr().err)


def test_a_misspelled_env_id_fails_before_anything_is_written(tmp_path, capsys):
    path = _write_sweep(tmp_path, set=_tiny_set(), axes={"env.id": ["Pendulm-v1", "Pendulum-v1"]})
    for args in (["--dry-run"], ["--plain"]):
        assert main(["sweep", str(path), *args]) == 2
        captured = capsys.readouterr()
        err = _one_error_line(captured.err)
        assert (
            "sweep run " in err
            and "(env.id=Pendulm-v1): unknown environment id 'Pendulm-v1'" in err
        )
        assert "Close matches: Pendulum-v1" in err
        assert captured.out == ""
        assert not (tmp_path / "out").exists()


def test_every_sweep_option_states_its_default():
    import argparse

    from spikerl.cli import _parser

    subparsers = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    options = [a for a in subparsers.choices["sweep"]._actions if a.option_strings]
    helps = {a.option_strings[0]: a.help for a in options if a.help != argparse.SUPPRESS}
    helps.pop("-h")
    assert "--retries" in helps
    assert all("default" in text for text in helps.values()), helps


def test_an_unwritable_output_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    path = _write_sweep(tmp_path, set=_tiny_set(), axes={"run.seed": [0]}, output=str(blocker))
    assert _sweep_cli(path) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: the sweep output folder {blocker}: is a file; give a folder")


def test_live_display_redraws_a_table_and_an_overall_bar_with_an_eta(tmp_path):
    import io

    from spikerl.experiments.sweep_exec import initial_state
    from spikerl.experiments.sweep_progress import SweepDisplay, format_duration

    sweep = load_sweep(_write_sweep(tmp_path, set=_tiny_set(), axes={"run.seed": [0, 1]}))
    states = [initial_state(run, sweep.output, energy=False) for run in sweep.runs]
    stream = io.StringIO()
    display = SweepDisplay(stream, live=True)
    states[0].state, states[0].attempts, states[0].step = "running", 1, 100
    states[0].last_return, states[0].steps_per_sec = -900.0, 50.0
    display.event(states[0])
    display.update(states)
    first = stream.getvalue()
    assert f"start    {states[0].run.name} (attempt 1)" in first
    assert "100/400" in first and "-900" in first and "1 running, 1 pending" in first
    time.sleep(0.6)  # past the redraw interval
    states[0].step = 300
    display.update(states)
    redraw = stream.getvalue()[len(first) :]
    assert redraw.startswith("\x1b[")  # cursor up and clear: the table is redrawn in place
    assert "300/400" in redraw and "ETA" in redraw and "ETA ?" not in redraw
    assert [format_duration(s) for s in (5, 250, 3725, None)] == ["5s", "4m10s", "1h02m", "?"]
