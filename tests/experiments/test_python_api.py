"""The library's entry points, called from Python with wrong input, raise one
:class:`~spikerl.errors.SpikerlError` naming the fault (not a torch or NumPy traceback)."""

from __future__ import annotations

import numpy as np
import pytest

from spikerl.errors import SpikerlError, UsageError
from spikerl.experiments.policy import EnvPolicy, evaluate_run, load_policy
from spikerl.experiments.run import train
from spikerl.runtime import CompileError, PolicyFileError
from spikerl.snn.functional import StateShapeError


@pytest.fixture(scope="module")
def lif_run(tmp_path_factory):
    from spikerl.experiments.config import load_config
    from tests.conftest import TINY

    cfg = load_config(None, [*TINY, "actor.kind=lif", "run.total_steps=200", "run.name=r"])
    return train(cfg, tmp_path_factory.mktemp("runs")).run_dir


def test_train_takes_a_config(tmp_path):
    for wrong in ("configs/td3_pendulum.yaml", {"env": {"id": "Pendulum-v1"}}):
        with pytest.raises(UsageError, match=r"train\(\) takes a Config \(load_config"):
            train(wrong, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_loading_and_evaluating_name_the_bad_argument(lif_run):
    with pytest.raises(SpikerlError, match="device: 'gpu' is not a torch device"):
        load_policy(lif_run, device="gpu")
    for episodes in (0, -1):
        with pytest.raises(UsageError, match=f"episodes: {episodes}; evaluate at least 1"):
            evaluate_run(lif_run, episodes=episodes)


def test_env_policy_refuses_observations_of_another_shape(lif_run):
    policy = EnvPolicy.load(lif_run)
    assert policy.act(np.zeros(3)).shape == (1,) and policy.act(np.zeros((5, 3))).shape == (5, 1)
    for bad in (np.zeros(4), np.zeros((2, 2, 3)), 1.0):
        with pytest.raises(UsageError, match=r"Pendulum-v1 policies take \(3,\)"):
            policy.act(bad)


def test_runtime_and_neuron_errors_are_spikerl_errors():
    for cls in (PolicyFileError, CompileError, StateShapeError):
        assert issubclass(cls, SpikerlError), cls
    assert issubclass(PolicyFileError, ValueError) and issubclass(StateShapeError, ValueError)
    assert issubclass(CompileError, RuntimeError)
