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


@pytest.mark.parametrize("on_device", [False, True])
@pytest.mark.parametrize("added", [3, 5, 8])  # part full, full, wrapped
def test_a_smaller_checkpoint_loads_oldest_first_into_a_larger_buffer(added, on_device):
    """A run extended on resume (its capacity is its budget) keeps every transition: stored
    oldest first, the next one after them, as a buffer this large from the start holds them."""
    small, large = (
        ReplayBuffer(2, 1, 5, seed=1),
        ReplayBuffer(2, 1, 12, seed=2, on_device=on_device),
    )
    fill(small, added)
    large.load_state_dict(small.state_dict())
    kept = list(range(max(0, added - 5), added))
    assert len(large) == len(kept) and large.capacity == 12 and large.ptr == len(kept)
    assert large.stored("rewards").tolist() == kept
    assert large.rng.bit_generator.state == small.rng.bit_generator.state
    fill(large, 1, start=added)
    assert large.stored("rewards").tolist() == [*kept, added]


def test_a_larger_checkpoint_makes_the_buffer_that_large():
    big, small = ReplayBuffer(2, 1, 8, seed=1), ReplayBuffer(2, 1, 4, seed=2)
    fill(big, 10)
    small.load_state_dict(big.state_dict())
    assert (small.capacity, len(small), small.ptr) == (8, 8, big.ptr)
    assert torch.equal(small.stored("obs"), big.stored("obs"))


def _same_batches(a, b, n=5, batch=16):
    for _ in range(n):
        x, y = a.sample(batch), b.sample(batch)
        for fx, fy in zip(x, y, strict=True):
            assert fx.is_contiguous() and fy.is_contiguous()
            assert fx.shape == fy.shape and torch.equal(fx, fy)


def test_device_storage_gives_the_host_buffers_batches():
    rng = np.random.default_rng(0)
    host, device = ReplayBuffer(3, 2, 40, seed=7), ReplayBuffer(3, 2, 40, seed=7, on_device=True)
    assert device.rows.shape == (40, 3 + 2 + 1 + 3 + 1) and not hasattr(device, "obs")
    assert device.rows.dtype == torch.float32
    for i in range(57):  # wraps around
        obs, act, nxt = rng.normal(size=3), rng.uniform(-1, 1, 2), rng.normal(size=3)
        reward = rng.normal()
        for buf in (host, device):
            buf.add(obs, act, reward, nxt, terminated=i % 5 == 0)
    assert device.ptr == host.ptr and len(device) == len(host)
    _same_batches(host, device)


def test_storages_share_the_checkpoint_format():
    host, device = ReplayBuffer(2, 1, 30, seed=3), ReplayBuffer(2, 1, 30, seed=3, on_device=True)
    fill(host, 45)
    fill(device, 45)
    saved = host.state_dict()
    for f, tensor in device.state_dict()["data"].items():
        assert torch.equal(tensor, saved["data"][f]) and tensor.is_contiguous(), f
    into_device, into_host = ReplayBuffer(2, 1, 30, on_device=True), ReplayBuffer(2, 1, 30)
    into_device.load_state_dict(saved)
    into_host.load_state_dict(device.state_dict())
    _same_batches(into_host, into_device)


def test_device_storage_refuses_a_transition_of_the_wrong_shape():
    buf = ReplayBuffer(3, 2, 10, on_device=True)
    with pytest.raises(ValueError, match="transition shapes"):
        buf.add(np.zeros(2), np.zeros(3), 0.0, np.zeros(3), False)  # right total, wrong split
