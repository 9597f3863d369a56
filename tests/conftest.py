"""Shared fixtures: tiny configs that train in seconds."""

from __future__ import annotations

import pytest
import torch

from spikerl.experiments.config import load_config

TINY = [
    "env.id=Pendulum-v1",
    "actor.hidden=[32, 32]",
    "algo.critic_hidden=[32, 32]",
    "algo.proxy.hidden=[32, 32]",
    "algo.batch_size=32",
    "algo.learning_starts=100",
    "run.total_steps=400",
    "run.eval_every=200",
    "run.eval_episodes=1",
    "run.progress=false",
    "run.threads=1",
]


@pytest.fixture(autouse=True)
def _restore_torch_state():
    """One torch thread per test (small tensors; CI has 2 cores), and the default dtype back."""
    dtype, threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_default_dtype(dtype)
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_config():
    """``tiny_config(*overrides)`` -> a validated Config for a seconds-long Pendulum run."""

    def build(*overrides: str):
        return load_config(None, [*TINY, *overrides])

    return build
