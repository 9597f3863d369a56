import numpy as np
import pytest
import torch

from spikerl.buffers import EpisodeSequenceBuffer, EpisodeWriter

OBS, ACT = 3, 2


def episode(eid, length, terminated=True, rng=None, k=0):
    """An episode whose obs rows are ``(eid, step, noise)`` and actions ``(eid, step)``."""
    rng = rng or np.random.default_rng(eid)
    steps = np.arange(length + 1, dtype=np.float32)
    obs = np.stack([np.full(length + 1, eid), steps, rng.normal(size=length + 1)], 1)
    ep = {
        "obs": obs.astype(np.float32),
        "actions": np.stack([np.full(length, eid), steps[:-1]], 1).astype(np.float32),
        "rewards": rng.normal(size=length).astype(np.float32),
        "terminated": terminated,
        "truncated": not terminated,
        "bootstrap_action": None if terminated else np.array([eid, -1.0], np.float32),
        "who": rng.random(length) < 0.5,
    }
    if k:
        ep["reward_terms"] = rng.normal(size=(length, k)).astype(np.float32)
    return ep


def check_windows(batch, episodes, buf, gamma):
    """Every field of every window against the episodes it claims to come from (vectorised)."""
    window, n = buf.window, buf.lookahead
    ids = sorted(episodes)
    cat = {f: np.concatenate([episodes[i][f] for i in ids]) for f in ("obs", "actions", "rewards")}
    length = np.zeros(max(ids) + 1, int)
    length[ids] = [len(episodes[i]["rewards"]) for i in ids]
    off = np.zeros_like(length)  # row of x_0 in cat["obs"]; off - position gives the others
    off[ids] = np.cumsum(length[ids] + 1) - (length[ids] + 1)
    pos = np.zeros_like(length)
    pos[ids] = np.arange(len(ids))
    crashed = np.zeros(len(length), bool)
    crashed[ids] = [episodes[i]["terminated"] for i in ids]
    cat["who"] = np.concatenate([episodes[i]["who"] for i in ids])
    obs, mask = batch.obs.numpy(), batch.mask.numpy()
    eid, s = obs[:, 0, 0].astype(int), obs[:, :1, 1].astype(int)
    T = length[eid][:, None]
    end = np.maximum(T - window, 0)
    assert np.all(((s % buf.stride == 0) & (s <= end)) | (s == end))  # allowed starts only
    t = s + np.arange(window)
    assert np.array_equal(mask, t < T)
    tc = np.minimum(t, T)
    o, a = off[eid][:, None], (off - pos)[eid][:, None]
    m3 = mask[..., None]
    assert np.array_equal(obs, cat["obs"][o + tc] * m3)  # one episode, consecutive rows
    assert np.array_equal(batch.actions.numpy(), cat["actions"][a + np.minimum(tc, T - 1)] * m3)
    assert np.array_equal(batch.who.numpy(), cat["who"][a + np.minimum(tc, T - 1)] & mask)
    n_eff = np.minimum(n, T - tc)
    assert np.array_equal(batch.bootstrap_obs.numpy(), cat["obs"][o + tc + n_eff] * m3)
    index = batch.bootstrap_index.numpy()  # x_{t+n'} is window step i + n' (maybe past it)
    assert np.array_equal(index, (np.arange(window) + n_eff) * mask)
    inside = mask & (index < window)
    rows, cols = np.nonzero(inside)
    ahead = index[rows, cols]
    own = mask[rows, ahead]  # a step of the window, not the episode end x_T
    assert np.array_equal(obs[rows[own], ahead[own]], batch.bootstrap_obs.numpy()[rows, cols][own])
    j = np.arange(n)
    r = cat["rewards"][a[..., None] + np.minimum(tc[..., None] + j, T[..., None] - 1)]
    ret = (r * gamma**j * (j < n_eff[..., None])).sum(-1)
    np.testing.assert_allclose(batch.nstep_return.numpy(), ret, rtol=1e-5, atol=1e-6)
    crash = crashed[eid][:, None] & (tc + n_eff == T)
    disc = np.where(mask & ~crash, gamma**n_eff, 0.0)
    np.testing.assert_allclose(batch.bootstrap_discount.numpy(), disc, rtol=1e-6)


def test_windows_never_cross_episode_ends_property():
    rng = np.random.default_rng(0)
    buf = EpisodeSequenceBuffer(
        OBS, ACT, capacity=6000, window=20, lookahead=3, stride=7, min_len=5, seed=1
    )
    episodes, kept = {}, []
    for eid in range(120):  # ~9k steps: the oldest are evicted, the ring wraps
        ep = episode(eid, int(rng.integers(1, 150)), bool(rng.random() < 0.5), rng)
        episodes[eid] = ep
        if buf.add_episode(**ep):
            kept.append(eid)
        else:
            assert len(ep["rewards"]) < 5
    assert len(buf) <= 6000 and buf.num_episodes < len(kept)
    batch = buf.sample(10_000, gamma=0.95)
    assert batch.obs.shape == (10_000, 20, OBS) and batch.mask.dtype == torch.bool
    assert batch.nstep_return.dtype == torch.float32
    stored = kept[-buf.num_episodes :]
    assert sum(len(episodes[i]["rewards"]) for i in stored) == len(buf)
    assert set(batch.obs[:, 0, 0].int().tolist()) == set(stored)  # evicted ones never come back
    assert (~batch.mask).any()  # some short (padded) episodes were drawn
    check_windows(batch, episodes, buf, 0.95)


@pytest.mark.parametrize(
    "length, stride, starts",
    [
        (100, 50, [0]),
        (150, 50, [0, 50]),
        (175, 50, [0, 50, 75]),
        (260, 50, [0, 50, 100, 150, 160]),
        (103, 1, [0, 1, 2, 3]),
    ],
)
def test_stride_and_end_aligned_starts(length, stride, starts):
    buf = EpisodeSequenceBuffer(OBS, ACT, capacity=1000, stride=stride, seed=0)
    assert buf.add_episode(**episode(0, length))
    assert buf.num_windows == len(starts)
    seen = buf.sample(400, gamma=0.99).obs[:, 0, 1].int().tolist()
    assert sorted(set(seen)) == starts


def test_sampling_is_uniform_over_windows_across_episodes():
    buf = EpisodeSequenceBuffer(OBS, ACT, capacity=1000, window=10, stride=5, seed=3)
    buf.add_episode(**episode(0, 10))  # 1 window
    buf.add_episode(**episode(1, 25))  # 4 windows: 0, 5, 10, 15
    first = buf.sample(5000, gamma=0.9).obs[:, 0, :2].numpy()
    _, counts = np.unique(first, axis=0, return_counts=True)
    assert len(counts) == 5 and np.all(np.abs(counts - 1000) < 150)


def test_padding_and_mask_with_short_min_len():
    buf = EpisodeSequenceBuffer(OBS, ACT, capacity=100, window=10, lookahead=2, min_len=3)
    assert not buf.add_episode(**episode(0, 2))  # shorter than min_len: refused
    assert len(buf) == 0 and buf.num_episodes == 0
    ep = episode(1, 4)
    assert buf.add_episode(**ep)
    b = buf.sample(2, gamma=0.5)
    assert b.mask[0].tolist() == [True] * 4 + [False] * 6
    assert torch.equal(b.obs[0, :4], torch.from_numpy(ep["obs"][:4]))
    for f in ("obs", "actions", "rewards", "nstep_return", "bootstrap_obs", "bootstrap_discount"):
        assert not getattr(b, f)[:, 4:].any(), f
    assert not b.who[:, 4:].any()
    r = ep["rewards"]
    np.testing.assert_allclose(b.nstep_return[0, :4], [*(r[:3] + 0.5 * r[1:4]), r[3]], rtol=1e-6)


def test_crash_gives_no_bootstrap_at_the_end():
    buf = EpisodeSequenceBuffer(OBS, ACT, capacity=100, window=5, lookahead=2)
    ep = episode(0, 5, terminated=True)
    ep["rewards"] = np.arange(1, 6, dtype=np.float32)
    buf.add_episode(**ep)
    b = buf.sample(1, gamma=0.9)
    np.testing.assert_allclose(b.nstep_return[0], [2.8, 4.7, 6.6, 8.5, 5.0], rtol=1e-6)
    np.testing.assert_allclose(b.bootstrap_discount[0], [0.81, 0.81, 0.81, 0.0, 0.0], rtol=1e-6)
    assert torch.equal(b.bootstrap_obs[0], torch.from_numpy(ep["obs"][[2, 3, 4, 5, 5]]))
    assert torch.equal(b.bootstrap_action[0, :3], torch.from_numpy(ep["actions"][2:5]))
    assert not b.bootstrap_action[0, 3:].any()


def test_truncation_bootstraps_from_final_obs_with_stored_action():
    buf = EpisodeSequenceBuffer(OBS, ACT, capacity=100, window=5, lookahead=2)
    ep = episode(0, 5, terminated=False)  # reached the time limit: kept
    ep["rewards"] = np.arange(1, 6, dtype=np.float32)
    assert buf.add_episode(**ep) and len(buf) == 5
    b = buf.sample(1, gamma=0.9)
    np.testing.assert_allclose(b.nstep_return[0], [2.8, 4.7, 6.6, 8.5, 5.0], rtol=1e-6)
    np.testing.assert_allclose(b.bootstrap_discount[0], [0.81, 0.81, 0.81, 0.81, 0.9], rtol=1e-6)
    assert torch.equal(b.bootstrap_obs[0, 3:], torch.from_numpy(ep["obs"][[5, 5]]))
    a_t = torch.from_numpy(ep["bootstrap_action"])
    assert torch.equal(b.bootstrap_action[0, 3], a_t) and torch.equal(b.bootstrap_action[0, 4], a_t)


def test_last_window_steps_use_lookahead_beyond_the_window():
    buf = EpisodeSequenceBuffer(OBS, ACT, capacity=100, window=4, lookahead=3, stride=6)
    ep = episode(0, 12)
    buf.add_episode(**ep)  # windows at 0, 6, 8
    b = buf.gather(np.array([0, 0]), np.array([0, 6]), gamma=0.8)
    r = ep["rewards"]
    # t = 3 (last window step): r_3 + 0.8 r_4 + 0.64 r_5, bootstrap x_6 with a_6
    np.testing.assert_allclose(b.nstep_return[0, 3], r[3] + 0.8 * r[4] + 0.64 * r[5], rtol=1e-6)
    assert torch.equal(b.bootstrap_obs[0, 3], torch.from_numpy(ep["obs"][6]))
    assert torch.equal(b.bootstrap_action[0, 3], torch.from_numpy(ep["actions"][6]))
    np.testing.assert_allclose(b.bootstrap_discount[0, 3], 0.512, rtol=1e-6)
    # t = 9 of the window at 6: look-ahead r_10, r_11 then the crash at T = 12
    np.testing.assert_allclose(b.nstep_return[1, 3], r[9] + 0.8 * r[10] + 0.64 * r[11], rtol=1e-6)
    assert b.bootstrap_discount[1, 3] == 0.0 and buf.num_windows == 3


def test_fifo_eviction_by_whole_episodes():
    buf = EpisodeSequenceBuffer(OBS, ACT, capacity=25, window=5, stride=5, seed=2)
    eps = {i: episode(i, n, terminated=i % 2 == 0) for i, n in enumerate([10, 8, 6, 7, 9])}
    for i in range(3):
        buf.add_episode(**eps[i])
    assert len(buf) == 24 and buf.num_episodes == 3
    buf.add_episode(**eps[3])  # does not fit: episode 0 evicted whole; the ring wraps
    assert len(buf) == 21 and buf.num_episodes == 3
    assert set(buf.sample(300, gamma=0.9).obs[:, 0, 0].int().tolist()) == {1, 2, 3}
    buf.add_episode(**eps[4])  # evicts 1 only
    assert len(buf) == 22 and buf.num_windows == 2 + 2 + 2
    batch = buf.sample(300, gamma=0.9)
    assert set(batch.obs[:, 0, 0].int().tolist()) == {2, 3, 4}
    check_windows(batch, eps, buf, 0.9)
    with pytest.raises(ValueError, match="capacity"):
        buf.add_episode(**episode(9, 26))


def test_reward_relabelling_from_stored_terms():
    buf = EpisodeSequenceBuffer(OBS, ACT, capacity=100, window=6, lookahead=2, reward_terms=2)
    ep = episode(0, 6, terminated=False, k=2)
    buf.add_episode(**ep)
    b = buf.sample(1, gamma=0.5, coefficients=(1.0, 0.5, 2.0))
    r = 1.0 - ep["reward_terms"] @ np.array([0.5, 2.0])
    np.testing.assert_allclose(b.rewards[0], r, rtol=1e-5)
    np.testing.assert_allclose(b.nstep_return[0, :5], r[:5] + 0.5 * r[1:], rtol=1e-5)
    np.testing.assert_allclose(b.nstep_return[0, 5], r[5], rtol=1e-5)
    plain = buf.sample(1, gamma=0.5)
    assert torch.equal(plain.rewards[0], torch.from_numpy(ep["rewards"]))
    with pytest.raises(ValueError, match="coefficients"):
        buf.sample(1, gamma=0.5, coefficients=(1.0, 0.5))
    no_terms = EpisodeSequenceBuffer(OBS, ACT, capacity=100, window=6)
    no_terms.add_episode(**episode(0, 6))
    with pytest.raises(ValueError, match="reward terms"):
        no_terms.sample(1, gamma=0.5, coefficients=(1.0,))


def filled(seed):
    buf = EpisodeSequenceBuffer(OBS, ACT, capacity=300, window=10, stride=3, min_len=4, seed=seed)
    rng = np.random.default_rng(5)
    for eid in range(12):  # evictions and a wrapped ring
        buf.add_episode(**episode(eid, int(rng.integers(4, 60)), eid % 3 == 0, rng))
    return buf


def test_state_dict_round_trip_gives_identical_samples():
    a = filled(seed=1)
    a.sample(16, gamma=0.9)
    b = EpisodeSequenceBuffer(OBS, ACT, capacity=300, window=10, stride=3, min_len=4, seed=99)
    b.load_state_dict(a.state_dict())
    assert (len(b), b.num_episodes, b.num_windows) == (len(a), a.num_episodes, a.num_windows)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa["rng"] == sb["rng"]
    assert all(torch.equal(sa["data"][k], sb["data"][k]) for k in sa["data"])
    for _ in range(2):
        for x, y in zip(a.sample(64, gamma=0.9), b.sample(64, gamma=0.9), strict=True):
            assert torch.equal(x, y)
        ep = episode(50, 40, terminated=False)
        a.add_episode(**ep)
        b.add_episode(**ep)
    a, c = filled(seed=1), filled(seed=7)
    c.load_state_dict(a.state_dict(include_data=False))  # the generator only
    assert len(c) == len(a) and "data" not in a.state_dict(include_data=False)
    assert all(
        np.array_equal(x, y) for x, y in zip(a.sample_windows(8), c.sample_windows(8), strict=True)
    )
    with pytest.raises(ValueError, match="stride"):
        EpisodeSequenceBuffer(OBS, ACT, capacity=300, window=10, min_len=4).load_state_dict(sa)


def test_writer_reproduces_episodes_of_three_drones():
    rng = np.random.default_rng(0)
    n, k = 3, 1
    writer = EpisodeWriter(n, OBS, ACT, reward_terms=k)
    x0 = rng.normal(size=(n, OBS)).astype(np.float32)
    writer.begin_all(x0)
    keys = ("obs", "actions", "rewards", "who", "reward_terms")
    expect = {i: {key: [] for key in keys} for i in range(n)}
    for i in range(n):
        expect[i]["obs"].append(x0[i])
    ends = {
        3: ([0], [True, False, False], [False] * 3),
        5: ([1], [False] * 3, [False, True, False]),
    }
    ends[4] = ([2], [False, False, True], [False, False, True])  # both: counts as a crash
    finished = {}
    for step in range(1, 6):
        active = np.array([i not in finished for i in range(n)])
        active[2] &= step != 2  # drone 2 idle at step 2: nothing appended
        rows = [rng.normal(size=(n, OBS)), rng.normal(size=(n, ACT)), rng.normal(size=n)]
        who, terms = rng.random(n) < 0.5, rng.normal(size=(n, k))
        done, term, trunc = ends.get(step, ([], [False] * 3, [False] * 3))
        out = writer.append(*rows, term, trunc, who, active, reward_terms=terms)
        assert out == done
        for i in np.flatnonzero(active):
            for key, v in zip(keys, (*rows, who, terms), strict=True):
                expect[i][key].append(v[i])
        for i in out:
            boot = np.full(ACT, 0.5) if i == 1 else None
            finished[i] = writer.finish(i, bootstrap_action=boot)
    assert [len(finished[i]["rewards"]) for i in range(n)] == [3, 5, 3]
    assert [(finished[i]["terminated"], finished[i]["truncated"]) for i in range(n)] == [
        (True, False),
        (False, True),
        (True, False),
    ]
    for i in range(n):
        for key in keys:
            np.testing.assert_allclose(finished[i][key], np.array(expect[i][key]), rtol=1e-6)
    assert np.array_equal(finished[1]["bootstrap_action"], np.full(ACT, 0.5, np.float32))
    assert finished[0]["bootstrap_action"] is None
    buf = EpisodeSequenceBuffer(OBS, ACT, capacity=50, window=3, reward_terms=k)
    assert all(buf.add_episode(**finished[i]) for i in range(n)) and len(buf) == 11


def test_writer_errors_and_clearing():
    writer = EpisodeWriter(2, OBS, ACT)
    z, both = np.zeros, [True, True]

    def step(term, trunc, act=ACT):
        return z((2, OBS)), z((2, act)), z(2), term, trunc, [False, False]

    with pytest.raises(RuntimeError, match="begin"):
        writer.append(*step([False] * 2, [False] * 2), both)
    writer.begin_all(z((2, OBS)))
    assert writer.append(*step([False, True], [False] * 2), both) == [1]
    with pytest.raises(RuntimeError, match="no ended episode"):
        writer.finish(0)
    with pytest.raises(RuntimeError, match="finish"):  # drone 1 ended: nothing is appended
        writer.append(*step([False] * 2, [False] * 2), both)
    ep1 = writer.finish(1)
    assert len(ep1["rewards"]) == 1 and ep1["terminated"] and ep1["bootstrap_action"] is None
    with pytest.raises(RuntimeError, match="no ended episode"):  # cleared
        writer.finish(1)
    assert writer.append(*step([False] * 2, [True, False]), [True, False]) == [0]
    with pytest.raises(ValueError, match="bootstrap_action"):
        writer.finish(0)
    assert len(writer.finish(0, np.zeros(ACT))["rewards"]) == 2  # not 3: the failed append
    with pytest.raises(ValueError, match="actions"):
        writer.append(*step([False] * 2, [False] * 2, act=ACT + 1), both)
    with pytest.raises(ValueError, match="reward_terms"):
        writer.append(*step([False] * 2, [False] * 2), both, reward_terms=z((2, 1)))


def test_buffer_errors():
    buf = EpisodeSequenceBuffer(OBS, ACT, capacity=100, window=5)
    with pytest.raises(RuntimeError, match="empty"):
        buf.sample(1, gamma=0.9)
    ep = episode(0, 6, terminated=False)
    with pytest.raises(ValueError, match="bootstrap_action"):
        buf.add_episode(**{**ep, "bootstrap_action": None})
    with pytest.raises(ValueError, match="bootstrap_action"):
        buf.add_episode(**{**ep, "bootstrap_action": np.zeros(ACT + 1)})
    with pytest.raises(ValueError, match="obs"):
        buf.add_episode(**{**ep, "obs": ep["obs"][:-1]})  # x_T missing
    with pytest.raises(ValueError, match="actions"):
        buf.add_episode(**{**ep, "actions": ep["actions"][:, :1]})
    with pytest.raises(ValueError, match="who"):
        buf.add_episode(**{**ep, "who": ep["who"][:-1]})
    with pytest.raises(ValueError, match="exactly one"):
        buf.add_episode(**{**ep, "terminated": True})
    with pytest.raises(ValueError, match="reward_terms"):
        buf.add_episode(**ep, reward_terms=np.zeros((6, 1)))
    assert len(buf) == 0
    buf.add_episode(**ep)
    with pytest.raises(ValueError, match="gamma"):
        buf.sample(1, gamma=1.5)
    with pytest.raises(ValueError, match="min_len"):
        EpisodeSequenceBuffer(OBS, ACT, capacity=10, window=20)


def test_bytes_per_step_and_devices():
    buf = EpisodeSequenceBuffer(OBS, ACT, capacity=40, window=4, reward_terms=2)
    assert buf.bytes_per_step == 4 * (OBS + ACT + 1 + 2) + 1
    per_row = sum(getattr(buf, f).nbytes for f in ("obs", "actions", "rewards", "who", "terms"))
    assert per_row == buf.bytes_per_step * (40 + 40 // 4)
    table = ("ep_start", "ep_len", "ep_windows", "ep_terminated", "ep_truncated")
    assert buf.nbytes == per_row + sum(getattr(buf, f).nbytes for f in table)
    every_length = EpisodeSequenceBuffer(OBS, ACT, capacity=40, window=4, min_len=1)
    assert every_length.nbytes == every_length.bytes_per_step * 80 + 26 * 40
    buf.add_episode(**episode(0, 4, k=2))
    b = buf.sample(3, gamma=0.9)
    assert all(x.device == torch.device("cpu") for x in b)
    assert {x.dtype for x in b} == {torch.float32, torch.bool, torch.int64}
    assert b.who.dtype == torch.bool and b.bootstrap_index.dtype == torch.int64
