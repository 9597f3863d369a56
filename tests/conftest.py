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


@pytest.fixture
def interrupt_td3(monkeypatch):
    """``restore = interrupt_td3(method, calls)``: the ``calls``-th call of ``TD3.<method>``
    (``"update"`` or ``"act"``) first sends this process SIGINT, so the running ``train``
    checkpoints and stops as after Ctrl-C; ``restore()`` puts the real method back."""
    import os
    import signal

    from spikerl.algos import TD3

    def interrupt(method: str, calls: int):
        real, seen = getattr(TD3, method), {"n": 0}

        def then_stop(self, *args, **kwargs):
            seen["n"] += 1
            if seen["n"] == calls:
                os.kill(os.getpid(), signal.SIGINT)
            return real(self, *args, **kwargs)

        monkeypatch.setattr(TD3, method, then_stop)
        return lambda: monkeypatch.setattr(TD3, method, real)

    return interrupt
