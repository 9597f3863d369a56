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


def test_sequence_training_never_draws_from_global_generators():
    """Spec Sec. 12 (12), no global state: guided collection with exploration, the sequence
    buffer's sampling and a TD3BC update draw only from their own generators."""
    from spikerl.algos.guided import guided_rollouts
    from spikerl.buffers import EpisodeSequenceBuffer
    from tests.algos.test_guided import HoverGuide, _actor, _env
    from tests.algos.test_sequence import _batch, _learner

    learner, batch, actor, env = _learner(), _batch(), _actor(), _env(3, max_steps=40)
    torch.manual_seed(11)  # the helpers seed the global generator; the state after is checked
    np.random.seed(11)
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()[1].copy()
    rollouts = guided_rollouts(
        env, actor, HoverGuide(), 10, store_steps=60, min_len=10,
        explore_std=0.1, rng=np.random.default_rng(0), seed=2,
    )  # fmt: skip
    assert rollouts.episodes  # the buffer below samples stored windows
    buffer = EpisodeSequenceBuffer(146, 4, capacity=1000, window=10, stride=5, min_len=10, seed=1)
    for episode in rollouts.episodes:
        buffer.add_episode(**episode)
    buffer.sample(4, gamma=0.99)
    for _ in range(2):
        learner.update(batch, bc_weight=0.2)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], numpy_state)
