"""S stacked TD3 or SAC learners against S single ones: same updates, states and actions."""

import numpy as np
import pytest
import torch

from spikerl.algos import build_learner
from spikerl.algos.seeds import SeedBuffers, SeedStackedSAC, stack_learners
from spikerl.buffers import ReplayBuffer
from spikerl.experiments.config import load_config
from tests.conftest import TINY

OBS, ACT = 3, 1

VARIANTS = {
    "ann-polyak": ["actor.kind=ann", "algo.target=polyak"],
    "lif-proxy": ["actor.kind=lif", "algo.target=proxy"],
    "plif-polyak": ["actor.kind=plif", "algo.target=polyak"],
    "clif-proxy": ["actor.kind=clif", "algo.target=proxy"],
    "dn-polyak": ["actor.kind=dn", "algo.target=polyak"],
    "sac": ["algo.name=sac", "actor.kind=ann"],
    "sac-fixed-alpha": ["algo.name=sac", "actor.kind=ann", "algo.sac.autotune=false"],
}


def _learners(overrides, seeds):
    cfgs = [load_config(None, [*TINY, *overrides, f"run.seed={s}"]) for s in seeds]
    return cfgs, [build_learner(c, OBS, ACT, "cpu") for c in cfgs]


def _filled_buffers(seeds, size=300, on_device=False):
    buffers = []
    for s in seeds:
        rng = np.random.default_rng(100 + s)
        buffer = ReplayBuffer(OBS, ACT, size, seed=s, on_device=on_device)
        for _ in range(size):
            obs, nxt = rng.normal(size=OBS), rng.normal(size=OBS)
            buffer.add(obs, rng.uniform(-1, 1, ACT), rng.normal(), nxt, rng.random() < 0.05)
        buffers.append(buffer)
    return buffers


def _assert_states_close(a, b, path=""):
    if isinstance(a, torch.Tensor):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=f"{path} differs")
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            _assert_states_close(a[key], b[key], f"{path}/{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_states_close(x, y, f"{path}/{i}")
    else:
        assert a == b, f"{path}: {a} != {b}"


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_stacked_updates_equal_single_seed_updates(variant):
    seeds = [0, 1, 2]
    cfgs, singles = _learners(VARIANTS[variant], seeds)
    _, members = _learners(VARIANTS[variant], seeds)
    stacked = stack_learners(members, cfgs[0])
    single_buffers, stacked_buffers = _filled_buffers(seeds), SeedBuffers(_filled_buffers(seeds))
    obs = np.random.default_rng(7).normal(size=(len(seeds), OBS)).astype(np.float32)
    for _ in range(6):  # three actor steps at TD3's policy delay 2
        single_metrics = [
            learner.update(b) for learner, b in zip(singles, single_buffers, strict=True)
        ]
        stacked_metrics = stacked.update(stacked_buffers)
        for key, values in stacked_metrics.items():
            np.testing.assert_allclose(values, [m[key] for m in single_metrics], rtol=1e-5)
        actions = stacked.act(obs, explore=True)
        expected = np.stack(
            [learner.act(o, explore=True) for learner, o in zip(singles, obs, strict=True)]
        )
        np.testing.assert_allclose(actions, expected, rtol=1e-5, atol=1e-6)
        greedy = stacked.act(obs, explore=False)
        expected = [learner.act(o, explore=False) for learner, o in zip(singles, obs, strict=True)]
        np.testing.assert_allclose(greedy, np.stack(expected), rtol=1e-5, atol=1e-6)
    for i, learner in enumerate(singles):
        _assert_states_close(stacked.member_state_dict(i), learner.state_dict())
    assert isinstance(stacked, SeedStackedSAC) == variant.startswith("sac")


@pytest.mark.parametrize("variant", ["lif-proxy", "sac"])
def test_member_states_round_trip_and_resume_a_single_seed(variant):
    seeds = [3, 5]
    cfgs, members = _learners(VARIANTS[variant], seeds)
    stacked = stack_learners(members, cfgs[0])
    buffers = SeedBuffers(_filled_buffers(seeds))
    for _ in range(3):
        stacked.update(buffers)
    states = [stacked.member_state_dict(i) for i in range(2)]
    _, fresh = _learners(VARIANTS[variant], seeds)
    rebuilt = stack_learners(fresh, cfgs[0])
    rebuilt.load_member_states(states)
    _assert_states_close(rebuilt.state_dict(), stacked.state_dict())
    _, alone = _learners(VARIANTS[variant], seeds[1:])
    alone[0].load_state_dict(states[1])  # one seed continues as a single run
    _assert_states_close(alone[0].state_dict(), states[1])
    # the member states hold no views into the stacks
    before = stacked.member_state_dict(0)["actor"]
    for tensor in states[0]["actor"].values():
        tensor.add_(1.0)
    _assert_states_close(stacked.member_state_dict(0)["actor"], before)


def test_mismatched_member_states_are_refused():
    cfgs, members = _learners(VARIANTS["ann-polyak"], [0, 1])
    stacked = stack_learners(members, cfgs[0])
    states = [m.state_dict() for m in members]
    with pytest.raises(ValueError, match="3 learner states for 2 seeds"):
        stacked.load_member_states(states + states[:1])
    states[1]["iterations"] = 4
    with pytest.raises(ValueError, match="different iterations"):
        stacked.load_member_states(states)


def test_stacked_minibatches_from_device_buffers_equal_the_host_ones():
    host = SeedBuffers(_filled_buffers([0, 1, 2]))
    device = SeedBuffers(_filled_buffers([0, 1, 2], on_device=True))
    assert all(b.on_device for b in device.buffers)
    for _ in range(3):
        for a, b in zip(host.sample(16), device.sample(16), strict=True):
            assert a.shape[:2] == (3, 16) and torch.equal(a, b)
