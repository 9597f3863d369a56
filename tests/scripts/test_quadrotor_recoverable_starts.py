"""The recovery planner of ``scripts/quadrotor_recoverable_starts.py``: its replay check flies
the same start as the crash census, and a found prefix survives its replay."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

SCRIPT = "quadrotor_recoverable_starts"


@pytest.fixture(scope="module")
def guide(script):
    return script.load_guide("builtin-v2", 146, 4, torch.device("cpu"))


def test_replay_without_a_prefix_is_the_guides_own_episode_of_the_census(script, guide):
    flown = script.fly("builtin-v2", 8, 4242, 1.0)
    for i in range(8):
        survived, ret, length = script.verify(guide, 4242 + i, np.zeros((0, 4)), 1)
        assert survived == (not flown["crashed"][i]) and length == flown["lengths"][i]
        # the guide's batch-1 and batch-8 products round differently: returns drift apart slowly
        assert ret == pytest.approx(flown["returns"][i], rel=2e-2)


def test_attempts_parse_and_refuse_bad_text(script):
    assert script._attempts("20:1.5,30:1") == [(20, 1.5), (30, 1.0)]
    for bad in ("20", "20:x", "0:1.0", "20:-1"):
        with pytest.raises(argparse.ArgumentTypeError):
            script._attempts(bad)


def test_the_start_is_the_one_an_env_reset_with_the_seed_flies(script):
    state, mapping = script.start_state(4277)
    env = script.QuadrotorEnv()
    env.reset(seed=4277)
    assert env.get_state()["state"] == state.tolist()
    explicit = script.QuadrotorEnv()
    explicit.reset(options={"state": mapping})
    assert np.allclose(explicit.get_state()["state"], state, rtol=0, atol=1e-15)


def test_planner_finds_and_the_replay_confirms_a_recovery(script, guide):
    seed = 4277  # the guide crashes here after 27 steps (tilted 76 degrees, 0.12 m from a wall)
    assert not script.verify(guide, seed, np.zeros((0, 4)), 1)[0]
    args = argparse.Namespace(attempts=[(20, 1.5), (30, 1.0)], block=1, horizon=120,
                              candidates=512, iterations=30, elite=0.05)  # fmt: skip
    start = script.start_state(seed)[1]
    prefix, searched, attempt = script.search(guide, start, args, np.random.default_rng(0))
    steps = args.attempts[attempt - 1][0]
    assert searched == 120 and prefix.shape == (steps, 4) and np.abs(prefix).max() <= 1
    survived, _, length = script.verify(guide, seed, prefix, 1)
    assert survived and length == 500
