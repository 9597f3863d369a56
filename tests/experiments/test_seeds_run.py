"""``spikerl train --seeds``: stacked seeds equal their single-seed runs, resume, refusals."""

import math
import shutil
import signal
import time

import pytest

from spikerl.experiments.checkpoint import load_checkpoint
from spikerl.experiments.config import ConfigError, load_config
from spikerl.experiments.run import RunError, train
from spikerl.experiments.seeds_run import seed_configs, train_seeds
from tests.conftest import TINY
from tests.experiments.test_run import _cli, read_metrics


def assert_rows_close(rows, expected):
    """Metrics rows equal up to float summation order (numbers within 1e-4 relative)."""
    assert len(rows) == len(expected)
    for row, want in zip(rows, expected, strict=True):
        assert row.keys() == want.keys()
        for key in row:
            if row[key] == want[key]:
                continue
            a, b = float(row[key]), float(want[key])
            assert math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6), (key, row["step"], a, b)


@pytest.mark.parametrize(
    "overrides",
    [
        ["actor.kind=ann", "algo.target=polyak"],
        ["actor.kind=lif", "algo.target=proxy"],
        ["algo.name=sac", "actor.kind=ann"],
    ],
    ids=["ann-polyak", "lif-proxy", "sac"],
)
def test_each_seed_equals_its_single_seed_run(tiny_config, tmp_path, overrides):
    cfgs = seed_configs(tiny_config(*overrides), [0, 1])
    results = train_seeds(cfgs, tmp_path / "stacked")
    assert [r.steps for r in results] == [400, 400] and not results[0].interrupted
    for cfg in cfgs:
        train(cfg, tmp_path / "single")
        stacked = read_metrics(tmp_path / "stacked" / cfg.run_name)
        assert_rows_close(stacked, read_metrics(tmp_path / "single" / cfg.run_name))
    a, b = (read_metrics(tmp_path / "stacked" / c.run_name) for c in cfgs)
    assert a != b  # the seeds really differ


def test_stacked_seeds_are_deterministic(tiny_config, tmp_path):
    cfgs = seed_configs(tiny_config("actor.kind=lif", "run.total_steps=300"), [2, 3])
    train_seeds(cfgs, tmp_path / "a")
    train_seeds(cfgs, tmp_path / "b")
    for cfg in cfgs:
        assert read_metrics(tmp_path / "a" / cfg.run_name) == read_metrics(
            tmp_path / "b" / cfg.run_name
        )


def test_seed_configs_name_and_refusals(tiny_config, tmp_path):
    named = seed_configs(tiny_config("run.name=exp"), [0, 4])
    assert [c.run_name for c in named] == ["exp-s0", "exp-s4"]
    assert [c.run.seed for c in named] == [0, 4]
    with pytest.raises(ConfigError, match="repeats a seed"):
        seed_configs(tiny_config(), [1, 1])
    sequence = load_config("configs/quadrotor/guided_td3bc.yaml")
    with pytest.raises(ConfigError, match="algo.name: many seeds .* or sac, not 'sequence'"):
        train_seeds(seed_configs(sequence, [0, 1]), tmp_path)
    adaptive = tiny_config("actor.kind=lif", "actor.slope_schedule.kind=adaptive")
    with pytest.raises(ConfigError, match="adaptive slope"):
        train_seeds(seed_configs(adaptive, [0, 1]), tmp_path)
    mixed = [tiny_config("run.seed=0"), tiny_config("run.seed=1", "algo.tau=0.01")]
    with pytest.raises(ConfigError, match=r"differ in more than run.seed: algo.tau=0.005 \(seed 1"):
        train_seeds(mixed, tmp_path)
    twice = [tiny_config("run.seed=3", "run.name=a"), tiny_config("run.seed=3", "run.name=b")]
    with pytest.raises(ConfigError, match="seed 3 is named twice"):
        train_seeds(twice, tmp_path)
    other = [tiny_config("run.seed=3"), tiny_config("run.seed=3", "actor.kind=lif")]
    with pytest.raises(ConfigError, match="differ in more than run.seed: actor.kind"):
        train_seeds(other, tmp_path)  # two different runs: named for how they differ
    assert not any(tmp_path.iterdir())  # nothing was written


def test_existing_folder_of_one_seed_refuses_the_set_before_writing(tiny_config, tmp_path):
    cfgs = seed_configs(tiny_config("run.total_steps=200"), [0, 1, 2])
    train(cfgs[1], tmp_path)
    train(cfgs[2], tmp_path)
    with pytest.raises(RunError, match=f"already exists.*also: .*{cfgs[2].run_name}"):
        train_seeds(cfgs, tmp_path)
    assert not (tmp_path / cfgs[0].run_name).exists()


def _seeds_cli_args(runs_dir, steps):
    sets = [a for o in TINY for a in ("--set", o)]
    more = ["actor.kind=lif", "algo.target=proxy", f"run.total_steps={steps}", "run.eval_every=100"]
    sets += [a for o in more for a in ("--set", o)]
    return ["train", *sets, "--seeds", "0-1", "--runs-dir", str(runs_dir)]


def test_killed_seeds_resume_together_or_alone(tiny_config, tmp_path):
    """SIGKILL a ``--seeds 0-1`` process mid-run. Resumed together (one copy) the set ends
    exactly as an uninterrupted ``--seeds`` run; seed 1 resumed alone (another copy) is a
    single run from the stacked checkpoint and agrees with it up to summation order."""
    steps = 600
    cfgs = [
        tiny_config(
            "actor.kind=lif", "algo.target=proxy", f"run.total_steps={steps}",
            "run.eval_every=100", f"run.seed={seed}",
        )
        for seed in (0, 1)
    ]  # fmt: skip
    names = [c.run_name for c in cfgs]
    killed = _cli(_seeds_cli_args(tmp_path / "killed", steps))
    last = tmp_path / "killed" / names[-1] / "metrics.csv"
    deadline = time.time() + 240
    while time.time() < deadline:  # until both seeds have the step-200 checkpoint
        if last.exists() and len(last.read_text().splitlines()) >= 5:
            break
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    steps_at_kill = {
        load_checkpoint(tmp_path / "killed" / n / "checkpoint.pt")["progress"]["step"]
        for n in names
    }
    assert 200 <= min(steps_at_kill) and max(steps_at_kill) < steps
    shutil.copytree(tmp_path / "killed", tmp_path / "alone")
    together = _cli(["train", "--resume", *(str(tmp_path / "killed" / n) for n in names)])
    assert together.wait(timeout=300) == 0, together.stderr.read().decode()
    alone = _cli(["train", "--resume", str(tmp_path / "alone" / names[1])])
    assert alone.wait(timeout=300) == 0, alone.stderr.read().decode()
    train_seeds(cfgs, tmp_path / "clean")
    for name in names:
        together, clean = (read_metrics(tmp_path / d / name) for d in ("killed", "clean"))
        if len(steps_at_kill) == 1:
            assert together == clean
        else:  # killed between the two seeds' checkpoint writes: one caught up alone
            assert_rows_close(together[:5], clean[:5])
    resumed_alone = read_metrics(tmp_path / "alone" / names[1])
    clean = read_metrics(tmp_path / "clean" / names[1])
    assert [r["step"] for r in resumed_alone] == [r["step"] for r in clean]
    assert_rows_close(resumed_alone[:5], clean[:5])  # to the kill, then 100 steps alone


def test_seeds_caught_up_when_killed_between_their_checkpoints(tiny_config, tmp_path, monkeypatch):
    """A kill between two seeds' checkpoint writes leaves them one checkpoint apart; resuming
    the set first brings the seed behind to the same step (alone), then stacks them."""
    import spikerl.experiments.seeds_run as seeds_run

    cfgs = seed_configs(
        tiny_config("actor.kind=lif", "run.total_steps=600", "run.eval_every=100"), [0, 1]
    )
    real_save = seeds_run._save

    class Killed(Exception):
        pass

    def save_then_die(s):
        if s.progress.step == 300 and s.cfg.run.seed == 1:
            raise Killed  # seed 0 has its step-300 checkpoint, seed 1 still the step-200 one
        real_save(s)

    monkeypatch.setattr(seeds_run, "_save", save_then_die)
    with pytest.raises(Killed):
        train_seeds(cfgs, tmp_path / "k")
    monkeypatch.setattr(seeds_run, "_save", real_save)
    steps = [
        load_checkpoint(tmp_path / "k" / c.run_name / "checkpoint.pt")["progress"]["step"]
        for c in cfgs
    ]
    assert steps == [300, 200]
    results = train_seeds(cfgs, tmp_path / "k", resume=True)
    assert [r.steps for r in results] == [600, 600]
    train_seeds(cfgs, tmp_path / "clean")
    for cfg in cfgs:
        assert_rows_close(
            read_metrics(tmp_path / "k" / cfg.run_name)[:5],
            read_metrics(tmp_path / "clean" / cfg.run_name)[:5],
        )


def test_stop_during_an_evaluation_checkpoints_every_seed(tiny_config, tmp_path, monkeypatch):
    """A signal that arrives while the seeds are evaluated at a step that is not a checkpoint
    step still leaves every seed checkpointed at the step it stopped at."""
    from contextlib import contextmanager

    import spikerl.experiments.seeds_run as seeds_run

    flag = {"stop": False}

    @contextmanager
    def signals():
        yield flag

    real_eval = seeds_run._evaluate_and_log

    def evaluate_then_signal(s, *args, **kwargs):
        result = real_eval(s, *args, **kwargs)
        if s.progress.step == 100:
            flag["stop"] = True
        return result

    monkeypatch.setattr(seeds_run, "_stop_on_signals", signals)
    monkeypatch.setattr(seeds_run, "_evaluate_and_log", evaluate_then_signal)
    over = ("run.total_steps=400", "run.eval_every=100", "run.checkpoint_every=200")
    cfgs = seed_configs(tiny_config(*over), [0, 1])
    results = train_seeds(cfgs, tmp_path)
    assert [r.steps for r in results] == [100, 100] and results[0].interrupted
    for cfg in cfgs:
        ckpt = load_checkpoint(tmp_path / cfg.run_name / "checkpoint.pt")
        assert ckpt["progress"]["step"] == 100


def test_a_folder_named_twice_is_refused(tiny_config, tmp_path):
    cfgs = seed_configs(tiny_config(), [0, 1])
    with pytest.raises(RunError, match="named twice"):
        train_seeds(cfgs, run_dirs=[tmp_path / "a", tmp_path / "a"])


def test_one_seed_diverging_fails_it_alone_and_stops_the_others(tiny_config, tmp_path, monkeypatch,
                                                                 capsys):  # fmt: skip
    """A non-finite loss in one seed fails that seed; the healthy ones are stopped at their
    last checkpoints (resumable), and a note says how to continue them."""
    import numpy as np

    from spikerl.algos.seeds import SeedStackedTD3
    from spikerl.experiments.run import TrainingDiverged
    from spikerl.experiments.status import read_status

    update = SeedStackedTD3.update

    def seed_1_diverges(self, buffers):
        metrics = update(self, buffers)
        if self.iterations >= 150:
            metrics = {k: np.where(np.arange(len(v)) == 1, np.nan, v) for k, v in metrics.items()}
        return metrics

    monkeypatch.setattr(SeedStackedTD3, "update", seed_1_diverges)
    cfgs = seed_configs(tiny_config(), [0, 1, 2])
    with pytest.raises(TrainingDiverged, match=cfgs[1].run_name):
        train_seeds(cfgs, tmp_path)
    states = [read_status(tmp_path / c.run_name) for c in cfgs]
    assert [s["state"] for s in states] == ["stopped", "failed", "stopped"]
    assert "error" not in states[0] and cfgs[1].run_name in states[1]["error"]
    assert states[0]["step"] == states[2]["step"] == 200  # their last checkpoints
    err = capsys.readouterr().err
    healthy = f"{tmp_path / cfgs[0].run_name} {tmp_path / cfgs[2].run_name}"
    assert f"continue them without it with: spikerl train --resume {healthy}" in err
    monkeypatch.setattr(SeedStackedTD3, "update", update)
    dirs = [tmp_path / cfgs[0].run_name, tmp_path / cfgs[2].run_name]
    results = train_seeds([cfgs[0], cfgs[2]], resume=True, run_dirs=dirs)
    assert [r.steps for r in results] == [400, 400]


@pytest.mark.parametrize("seeds", [None, [0, 1]], ids=["one-run", "seeds"])
def test_a_stop_signal_during_the_start_checkpoints_a_resumable_run(
    tiny_config, tmp_path, monkeypatch, seeds
):
    """Ctrl-C while a run is being started (built, evaluated at step 0, provenance written)
    stops it there with a status and a checkpoint, so --resume continues it; there is no
    window in which an interrupt leaves a folder without either."""
    import os

    import spikerl.experiments.run as run
    from spikerl.experiments.status import read_status

    start, sent = run._start, []

    def interrupted_start(s):
        if not sent:  # one Ctrl-C (a second one stops at once)
            sent.append(os.kill(os.getpid(), signal.SIGINT))  # the handler sets the stop flag
        start(s)

    monkeypatch.setattr(run, "_start", interrupted_start)
    if seeds is None:
        cfgs = [tiny_config()]
        results = [train(cfgs[0], tmp_path)]
    else:
        import spikerl.experiments.seeds_run as seeds_run

        monkeypatch.setattr(seeds_run, "_start", interrupted_start)
        cfgs = seed_configs(tiny_config(), seeds)
        results = train_seeds(cfgs, tmp_path)
    assert all(r.interrupted and r.steps == 0 for r in results)
    for cfg in cfgs:
        assert read_status(tmp_path / cfg.run_name)["state"] == "stopped"
        assert load_checkpoint(tmp_path / cfg.run_name / "checkpoint.pt")["progress"]["step"] == 0
    monkeypatch.setattr(run, "_start", start)
    dirs = [tmp_path / c.run_name for c in cfgs]
    done = train(cfgs[0], tmp_path, resume=True) if seeds is None else train_seeds(
        cfgs, resume=True, run_dirs=dirs
    )  # fmt: skip
    assert all(r.steps == 400 for r in (done if isinstance(done, list) else [done]))


def test_a_seed_killed_before_its_first_checkpoint_starts_again_on_resume(tiny_config, tmp_path,
                                                                          capsys):  # fmt: skip
    cfgs = seed_configs(tiny_config(), [0, 1])
    results = train_seeds(cfgs, tmp_path / "whole")
    dirs = [tmp_path / "set" / c.run_name for c in cfgs]
    train_seeds(cfgs, tmp_path / "set")
    (dirs[1] / "checkpoint.pt").unlink()  # what a SIGKILL during seed 1's start leaves
    for name in ("metrics.csv", "best.pt", "status.json", "provenance.yaml"):
        (dirs[1] / name).unlink(missing_ok=True)
    train_seeds(cfgs, resume=True, run_dirs=dirs)
    assert "was stopped before its first checkpoint; starting it again" in capsys.readouterr().err
    assert [r.steps for r in results] == [400, 400]
    for cfg, run_dir in zip(cfgs, dirs, strict=True):
        assert_rows_close(read_metrics(run_dir), read_metrics(tmp_path / "whole" / cfg.run_name))


def test_a_stop_signal_while_an_overwrite_is_built_keeps_the_old_run(tiny_config, tmp_path,
                                                                     monkeypatch):  # fmt: skip
    """Ctrl-C before a start has written anything aborts it: --overwrite has deleted nothing."""
    import os

    import spikerl.experiments.run as run

    cfg = tiny_config()
    train(cfg, tmp_path)
    before = read_metrics(tmp_path / cfg.run_name)
    build = run._build_session

    def interrupted_build(*args):
        os.kill(os.getpid(), signal.SIGINT)
        return build(*args)

    monkeypatch.setattr(run, "_build_session", interrupted_build)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path, overwrite=True)
    assert read_metrics(tmp_path / cfg.run_name) == before


def test_overwrite_through_a_link_replaces_the_folder_it_names(tiny_config, tmp_path):
    cfg = tiny_config("run.total_steps=200", "run.name=real")
    train(cfg, tmp_path / "runs")
    (tmp_path / "links").mkdir()
    (tmp_path / "links" / "real").symlink_to(tmp_path / "runs" / "real")
    result = train(cfg, run_dir=tmp_path / "links" / "real", overwrite=True)
    assert result.steps == 200 and (tmp_path / "links" / "real").is_symlink()
    assert (tmp_path / "runs" / "real" / "checkpoint.pt").is_file()
