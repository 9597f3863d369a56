"""Independent random streams: spawned from one SeedSequence, owned by their consumers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spikerl.algos import build_learner
from spikerl.seeding import STREAMS, SeedStreams
from tests.algos.test_td3 import filled_buffer


def test_streams_are_the_spawned_children_of_the_seed():
    children = np.random.SeedSequence(7).spawn(len(STREAMS))
    for name, child in zip(STREAMS, children, strict=True):
        seq = SeedStreams(7).sequence(name)
        assert np.array_equal(seq.generate_state(4), child.generate_state(4))


def test_streams_differ_from_each_other_and_from_other_seeds():
    ints = {(seed, name): SeedStreams(seed).integer(name) for seed in range(3) for name in STREAMS}
    assert len(set(ints.values())) == len(ints)
    assert SeedStreams(2).integer("env") == SeedStreams(2).integer("env")
    a = SeedStreams(1).torch("target_noise")
    b = SeedStreams(1).torch("target_noise")
    assert torch.equal(torch.randn(5, generator=a), torch.randn(5, generator=b))
    with pytest.raises(ValueError, match="unknown random stream"):
        SeedStreams(0).sequence("no_such_stream")
    with pytest.raises(ValueError, match=">= 0"):
        SeedStreams(-1)


def test_network_init_neither_reads_nor_moves_the_global_generator(tiny_config):
    cfg = tiny_config("actor.kind=lif", "algo.target=proxy")
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = build_learner(cfg, 3, 1, "cpu")
    assert torch.equal(torch.get_rng_state(), before)
    torch.randn(1000)  # whatever else the process draws does not change the next build
    second = build_learner(cfg, 3, 1, "cpu")
    for p, q in zip(first.actor.parameters(), second.actor.parameters(), strict=True):
        assert torch.equal(p, q)
    for p, q in zip(first.proxy.parameters(), second.proxy.parameters(), strict=True):
        assert torch.equal(p, q)


CASES = [
    ("actor.kind=ann",),
    ("actor.kind=lif", "algo.target=proxy"),
    ("actor.kind=dn", "algo.policy_delay=1"),
    ("algo.name=sac",),
]


@pytest.mark.parametrize("overrides", CASES)
def test_learners_never_draw_from_global_generators(tiny_config, overrides):
    learner = build_learner(tiny_config(*overrides), 3, 1, "cpu")
    buf = filled_buffer()
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()[1].copy()
    for _ in range(4):
        learner.update(buf)
        learner.act(np.zeros(3, np.float32), explore=True)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], numpy_state)


@pytest.mark.parametrize("overrides", CASES)
def test_two_learners_in_one_process_do_not_disturb_each_other(tiny_config, overrides):
    def make(seed):
        return build_learner(tiny_config(*overrides, f"run.seed={seed}"), 3, 1, "cpu")

    alone, buf_alone = make(0), filled_buffer(seed=5)
    for _ in range(6):
        alone.update(buf_alone)
        alone.act(np.ones(3, np.float32), explore=True)
    first, other = make(0), make(1)
    buf_first, buf_other = filled_buffer(seed=5), filled_buffer(seed=9)
    for _ in range(6):
        other.update(buf_other)
        first.update(buf_first)
        other.act(np.ones(3, np.float32), explore=True)
        first.act(np.ones(3, np.float32), explore=True)
    for p, q in zip(alone.actor.parameters(), first.actor.parameters(), strict=True):
        assert torch.equal(p, q)
    for p, q in zip(alone.critic.parameters(), first.critic.parameters(), strict=True):
        assert torch.equal(p, q)


def test_checkpoint_holds_every_learner_generator(tiny_config):
    td3 = build_learner(tiny_config("actor.kind=lif"), 3, 1, "cpu").state_dict()
    sac = build_learner(tiny_config("algo.name=sac"), 3, 1, "cpu").state_dict()
    assert set(td3["generators"]) == {"exploration", "target_noise"}
    assert set(sac["generators"]) == {"exploration", "policy_sample"}
    assert td3["policy"] == {"state": None}


def test_checkpoint_from_before_the_streams_is_refused_for_resume(tiny_config):
    learner = build_learner(tiny_config(), 3, 1, "cpu")
    old = learner.state_dict()
    del old["generators"], old["policy"]
    old["rng"] = np.random.default_rng(0).bit_generator.state
    with pytest.raises(KeyError, match="before independent random streams"):
        learner.load_state_dict(old)
