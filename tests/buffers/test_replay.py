import numpy as np
import pytest
import torch

from spikerl.buffers import ReplayBuffer


def fill(buf, n, start=0):
    for i in range(start, start + n):
        buf.add(np.full(2, i), np.full(1, i), float(i), np.full(2, i + 1), terminated=(i % 7 == 0))


def test_wraparound_keeps_newest():
    buf = ReplayBuffer(2, 1, capacity=5, seed=0)
    fill(buf, 8)
    assert len(buf) == 5 and buf.ptr == 3
    assert sorted(buf.rewards.tolist()) == [3.0, 4.0, 5.0, 6.0, 7.0]


def test_termination_vs_truncation():
    buf = ReplayBuffer(2, 1, capacity=10, seed=0)
    buf.add(np.zeros(2), np.zeros(1), 1.0, np.ones(2), terminated=True)
    buf.add(np.zeros(2), np.zeros(1), 1.0, np.ones(2), terminated=False)  # e.g. truncated
    assert buf.not_done[:2].tolist() == [0.0, 1.0]


def test_sample_shapes_dtype_and_consistency():
    buf = ReplayBuffer(2, 1, capacity=100, seed=0)
    fill(buf, 50)
    batch = buf.sample(16)
    assert batch.obs.shape == (16, 2) and batch.actions.shape == (16, 1)
    assert batch.rewards.shape == (16,) and batch.obs.dtype == torch.float32
    # each row's fields come from the same transition
    assert torch.equal(batch.obs[:, 0], batch.rewards)
    assert torch.equal(batch.next_obs[:, 0], batch.rewards + 1)


def test_own_generator_is_seeded_and_independent_of_global_rng():
    a, b = ReplayBuffer(2, 1, 100, seed=4), ReplayBuffer(2, 1, 100, seed=4)
    fill(a, 50)
    fill(b, 50)
    np.random.seed(0)
    ia = a.sample_indices(32)
    np.random.seed(1)
    assert np.array_equal(ia, b.sample_indices(32))


def test_state_dict_round_trip_continues_sampling():
    a = ReplayBuffer(2, 1, 100, seed=1)
    fill(a, 30)
    a.sample(8)
    state = a.state_dict()
    b = ReplayBuffer(2, 1, 100, seed=99)
    b.load_state_dict(state)
    assert len(b) == 30 and b.ptr == a.ptr
    assert torch.equal(a.sample(8).obs, b.sample(8).obs)


def test_errors():
    with pytest.raises(ValueError):
        ReplayBuffer(2, 1, 0)
    with pytest.raises(RuntimeError, match="empty"):
        ReplayBuffer(2, 1, 5).sample(1)
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(2, 1, 5).load_state_dict(ReplayBuffer(2, 1, 6).state_dict())
