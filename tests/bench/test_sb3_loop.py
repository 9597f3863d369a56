"""The Stable-Baselines3 comparison loop (the ``bench`` extra) steps and trains."""

import pytest

pytest.importorskip("stable_baselines3")

from spikerl.bench.sb3_loop import SB3TrainLoop  # noqa: E402


def test_sb3_loop_counts_its_steps():
    loop = SB3TrainLoop("Pendulum-v1", learning_starts=100, capacity=500, seed=0, device="cpu")
    loop.prefill()
    assert loop.model.num_timesteps == 100
    loop.train(20)
    assert loop.model.num_timesteps == 120
    assert loop.model._n_updates >= 19
