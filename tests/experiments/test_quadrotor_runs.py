"""Runs on spikerl/Quadrotor-v0: train, evaluate with position error and crash rate, and a
trajectory plot in place of videos (exact resume rests on the env snapshot test in
tests/envs/test_quadrotor.py and the generic resume tests)."""

from __future__ import annotations

import pytest

from spikerl.cli import main
from spikerl.experiments.config import load_config
from spikerl.experiments.run import train
from tests.conftest import TINY
from tests.experiments.test_run import read_metrics

QUAD = [*TINY, "env.id=spikerl/Quadrotor-v0", "algo.learning_starts=100"]


def test_a_quadrotor_run_logs_position_error_and_crashes_and_evaluates(tmp_path, capsys):
    cfg = load_config(None, QUAD)
    result = train(cfg, tmp_path)
    assert result.run_dir.name == "td3-ann-spikerl-Quadrotor-v0-s0"  # no "/" in a folder name
    rows = read_metrics(result.run_dir)
    assert [r["step"] for r in rows] == ["0", "200", "400"]
    assert all(0 <= float(r["eval/crashed"]) <= 1 for r in rows)
    assert all(float(r["eval/position_error"]) > 0 for r in rows)
    pytest.importorskip("matplotlib")
    video = tmp_path / "video"
    assert main(["evaluate", str(result.run_dir), "--episodes", "2", "--video", str(video)]) == 0
    out = capsys.readouterr().out
    assert "position error (m)" in out and "crash rate" in out and "position_error" in out
    assert (video / "trajectories.png").stat().st_size > 10_000


def test_the_reward_curriculum_steps_every_block_in_training_and_evaluation(tmp_path):
    from spikerl.envs.quadrotor import CURRICULUM_END

    cfg = load_config(None, [*QUAD, "run.eval_every=100", "env.curriculum_block=1"])
    result = train(cfg, tmp_path)
    rows = read_metrics(result.run_dir)
    # 4 epochs in 4 blocks: rho = e / 3 after evaluation e, capped at 1
    assert [float(r["env/curriculum"]) for r in rows] == pytest.approx([0, 1 / 3, 2 / 3, 1, 1])
    from spikerl.experiments.checkpoint import load_checkpoint

    state = load_checkpoint(result.run_dir / "checkpoint.pt")
    saved = state["env"]["custom"]["coefficients"]
    assert saved["position"] == pytest.approx(CURRICULUM_END.position)


def test_the_curriculum_can_reach_its_end_at_half_the_run_as_the_guide_recipe():
    from spikerl.experiments.run import _curriculum

    def rhos(end):
        sets = ["env.id=spikerl/Quadrotor-v0", "run.total_steps=600000", "run.eval_every=10000"]
        sets += ["env.curriculum_block=3", f"env.curriculum_end={end}"]
        cfg = load_config(None, sets)
        return [_curriculum(cfg, e) for e in range(60)]

    half, whole = rhos(0.5), rhos(1.0)
    # 10 blocks of 3 evaluations: rho = floor(e / 3) / 9, at 1 from evaluation 27 (270k steps)
    assert half[:27] == pytest.approx([(e // 3) / 9 for e in range(27)])
    assert half[26] < 1 and set(half[27:]) == {1.0}
    # the default keeps the whole run: 20 blocks, at 1 only in the last
    assert whole == pytest.approx([(e // 3) / 19 for e in range(60)])
    # a share whose product with the evaluations is not exact in binary: 11 blocks, not 12
    sets = ["env.id=spikerl/Quadrotor-v0", "run.total_steps=100000", "run.eval_every=1000"]
    odd = load_config(None, [*sets, "env.curriculum_block=5", "env.curriculum_end=0.55"])
    assert [_curriculum(odd, e) for e in (49, 50)] == [0.9, 1.0]
    with pytest.raises(Exception, match="curriculum_end"):
        load_config(None, ["env.curriculum_end=1.5"])
    with pytest.raises(Exception, match="env.curriculum_end: paces a reward curriculum, which is"):
        load_config(None, ["env.curriculum_end=0.5"])  # no curriculum_block: it would do nothing


def test_a_curriculum_on_an_env_without_one_is_refused(tmp_path, capsys):
    args = ["train", "--runs-dir", str(tmp_path)]
    for item in [*TINY, "env.curriculum_block=2"]:
        args += ["--set", item]
    assert main(args) == 2
    assert "has no reward curriculum" in capsys.readouterr().err
    assert not any(tmp_path.iterdir()) or all(p.name.startswith(".") for p in tmp_path.iterdir())


def test_declared_eval_info_is_read_from_the_registered_class_of_any_id_form():
    from spikerl.experiments.evaluation import eval_info_keys, eval_info_labels

    assert eval_info_labels("spikerl/Quadrotor-v0") == {
        "position_error": "position error (m)",
        "crashed": "crash rate",
    }
    assert eval_info_keys("tests.experiments.crashing_env:CrashOnce-v0") == {}  # imports it
    assert eval_info_keys("Pendulum-v1") == {}


def test_reports_carry_and_plot_the_declared_eval_info(tmp_path):
    from spikerl.experiments.report import summarize
    from spikerl.experiments.run_records import collect_runs

    result = train(load_config(None, QUAD), tmp_path / "runs")
    (record,) = collect_runs(tmp_path / "runs").records
    assert set(record.info) == {"position error (m)", "crash rate"}
    rows = read_metrics(result.run_dir)
    assert record.info["crash rate"] == tuple(float(r["eval/crashed"]) for r in rows)
    pytest.importorskip("matplotlib")
    from spikerl.experiments.report_plots import write_plots

    paths = write_plots(summarize([record]), tmp_path / "plots")
    assert paths[-1].name == "eval_info_curves.png" and paths[-1].stat().st_size > 5000
