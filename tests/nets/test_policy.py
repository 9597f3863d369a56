"""ActingPolicy: step-by-step acting that carries a stateful network's state."""

from __future__ import annotations

import numpy as np
import torch

from spikerl.nets import DeterministicActor
from spikerl.nets.policy import ActingPolicy
from spikerl.nets.spiking import SpikingActor, stateful_controller


def _controller():
    torch.manual_seed(0)
    net = stateful_controller(3, 1, (12, 6), slope=5.0)
    with torch.no_grad():
        for lin in net.linears:
            lin.weight.mul_(3.0)
    return net


def _obs(steps: int, batch: int | None = None) -> np.ndarray:
    shape = (steps, 3) if batch is None else (steps, batch, 3)
    return np.random.default_rng(1).normal(size=shape).astype(np.float32)


def test_stateless_policy_equals_calling_the_actor():
    for actor in (DeterministicActor(3, 1, (8,)), SpikingActor(3, 1, "lif", hidden=(8,))):
        policy = ActingPolicy(actor)
        assert not policy.stateful
        for obs in _obs(3):
            with torch.no_grad():
                expected = actor(torch.as_tensor(obs).unsqueeze(0))[0].numpy()
            assert np.array_equal(policy(obs), expected)
        assert policy.state is None


def test_stateful_policy_carries_state_and_resets():
    net = _controller()
    policy = ActingPolicy(net)
    assert policy.stateful
    seq = _obs(10)
    first = np.stack([policy(o) for o in seq])
    with torch.no_grad():
        state, expected = None, []
        for o in seq:
            a, state = net.step(torch.as_tensor(o).unsqueeze(0), state)
            expected.append(a[0].numpy())
    assert np.array_equal(first, np.stack(expected))
    policy.reset()
    assert policy.state is None
    assert np.array_equal(np.stack([policy(o) for o in seq]), first)  # same as a fresh episode
    fresh = [ActingPolicy(net)(o) for o in seq]  # no carried state: differs
    assert not np.array_equal(np.stack(fresh), first)


def test_batched_policy_resets_only_finished_rows():
    net = _controller()
    seq = _obs(6, batch=4)
    policy = ActingPolicy(net)
    for o in seq[:3]:
        policy(o)
    policy.reset(np.array([True, False, False, True]))
    after_reset = np.stack([policy(o) for o in seq[3:]])
    fresh = ActingPolicy(net)
    fresh_actions = np.stack([fresh(o) for o in seq[3:]])
    carried = ActingPolicy(net)
    for o in seq[:3]:
        carried(o)
    carried_actions = np.stack([carried(o) for o in seq[3:]])
    assert np.array_equal(after_reset[:, [0, 3]], fresh_actions[:, [0, 3]])
    assert np.array_equal(after_reset[:, [1, 2]], carried_actions[:, [1, 2]])


def test_state_dict_round_trip_continues_identically():
    net = _controller()
    seq = _obs(8)
    a = ActingPolicy(net)
    for o in seq[:4]:
        a(o)
    saved = a.state_dict()
    b = ActingPolicy(net)
    b.load_state_dict(saved)
    assert [a(o).tolist() for o in seq[4:]] == [b(o).tolist() for o in seq[4:]]
    assert ActingPolicy(net).state_dict() == {"state": None}
