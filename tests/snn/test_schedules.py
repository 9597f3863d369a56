"""Surrogate-slope settings (arXiv 2510.24461 Sec. 3): hand-computed values, state round trips,
and a run that schedules its slope, logs it and resumes with it."""

from __future__ import annotations

import math

import pytest
import torch

from spikerl.experiments.config import ConfigError, load_config
from spikerl.experiments.run import train
from spikerl.nets import build_slope_schedule
from spikerl.snn.schedules import AdaptiveSlope, FixedSlope, SteppedSlope
from spikerl.snn.surrogate import spike
from tests.conftest import TINY
from tests.experiments.test_run import read_metrics


def test_fixed_slope_never_moves():
    schedule = FixedSlope(50.0)
    for epoch, ret in enumerate([0.0, 100.0, 400.0]):
        schedule.update(epoch, ret)
        assert schedule.value() == 50.0


def test_stepped_slope_is_a_staircase_from_start_to_end():
    schedule = SteppedSlope(start=1.0, end=100.0, stages=10, total_epochs=300)
    values = []
    for epoch in (0, 29, 30, 59, 150, 269, 270, 299, 400):
        schedule.update(epoch)
        values.append(schedule.value())
    assert values == pytest.approx([1, 1, 12, 12, 56, 89, 100, 100, 100])
    again = SteppedSlope(1.0, 100.0, 10, 300)
    again.load_state_dict(schedule.state_dict())
    assert again.value() == schedule.value()


def test_adaptive_slope_on_a_flat_return_is_k_init_plus_k_max_s_cubed():
    for ret in (0.0, 100.0, 200.0, 400.0, 800.0):
        schedule = AdaptiveSlope()
        for epoch in range(15):
            schedule.update(epoch, ret)
        s = min(ret / 400.0, 1.0)
        assert schedule.value() == pytest.approx(min(2.0 + 100.0 * s**3, 100.0))


def test_adaptive_slope_by_hand_on_a_rising_then_falling_return():
    schedule = AdaptiveSlope(window=3)
    assert schedule.value() == 2.0  # k_init before the first evaluation
    returns = [0.0, 200.0, 400.0, 100.0]
    s = [0.0, 0.5, 1.0, 0.25]
    d = [0.0, 0.5, 0.5, -0.75]
    expected = []
    for t in range(4):
        lo = max(0, t - 2)
        m = sum(0.5 * s[i] + 0.5 * d[i] for i in range(lo, t + 1)) / (t + 1 - lo)
        expected.append(min(max(2.0 + 800.0 * math.copysign(abs(m) ** 3, m), 1.0), 100.0))
    got = []
    for t, ret in enumerate(returns):
        schedule.update(t, ret)
        got.append(schedule.value())
    assert got == pytest.approx(expected)
    assert got[2] > got[1] > got[0] and got[3] < got[2]  # rising steepens, falling lowers
    restored = AdaptiveSlope(window=3)
    restored.load_state_dict(schedule.state_dict())
    schedule.update(4, 300.0)
    restored.update(4, 300.0)
    assert restored.value() == schedule.value()


def test_the_forward_pass_is_the_same_for_every_slope():
    x = torch.linspace(-1, 1, 101)
    outs = [spike(x, "fast_sigmoid", k) for k in (1.0, 2.0, 50.0, 100.0)]
    assert all(torch.equal(outs[0], o) for o in outs[1:])


def test_schedules_need_a_spiking_actor_and_sane_bounds():
    with pytest.raises(ConfigError, match="needs a spiking actor"):
        load_config(None, ["actor.slope_schedule.kind=adaptive"])
    with pytest.raises(ConfigError, match="is above"):
        load_config(None, ["actor.kind=lif", "actor.slope_schedule.min=200"])
    cfg = load_config(
        None, ["actor.kind=lif", "actor.slope=2", "actor.slope_schedule.kind=stepped"]
    )
    schedule = build_slope_schedule(cfg.actor, total_epochs=10)
    assert isinstance(schedule, SteppedSlope) and schedule.value() == 2.0


def test_a_run_applies_logs_and_resumes_its_slope_schedule(tmp_path):
    overrides = [
        *TINY,
        "actor.kind=lif",
        "actor.surrogate=fast_sigmoid",
        "actor.slope=2",
        "actor.slope_schedule.kind=adaptive",
        "actor.slope_schedule.return_ref=1",  # Pendulum's returns are negative: s = 0
        "run.total_steps=400",
        "run.eval_every=100",
    ]
    cfg = load_config(None, overrides)
    result = train(cfg, tmp_path / "whole")
    slopes = [float(r["snn/slope"]) for r in read_metrics(result.run_dir)]
    assert slopes == [2.0] * 5  # negative returns: s = 0, m = 0, k = k_init
    staircase = ["kind=stepped", "stages=4", "end=8"]
    stepped = load_config(None, [*overrides, *(f"actor.slope_schedule.{o}" for o in staircase)])
    run = train(stepped, tmp_path / "stepped")
    logged = [float(r["snn/slope"]) for r in read_metrics(run.run_dir)]
    assert logged == [2.0, 4.0, 6.0, 8.0, 8.0]
    # the learner's actor carries the last slope; a resumed session re-applies it
    assert all(s.slope == 8.0 for s in _surrogates(tmp_path / "stepped", stepped))


def _surrogates(runs_root, cfg):
    """The surrogates of the actor of a session built by resuming a finished run."""
    from spikerl.experiments import run as run_module

    session = run_module._build_session(cfg, runs_root / cfg.run_name, torch.device("cpu"))
    state = run_module.load_checkpoint(runs_root / cfg.run_name / "checkpoint.pt", "cpu")
    run_module._restore(session, state)
    return session.learner.actor.surrogates
