"""Stateful actors in training and evaluation: state reset per episode, saved for exact resume."""

from __future__ import annotations

import pytest
import torch

import spikerl.algos
from spikerl.experiments.evaluation import evaluate_policy
from spikerl.experiments.run import train
from spikerl.nets.policy import ActingPolicy
from spikerl.nets.spiking import stateful_controller
from tests.experiments.test_run import read_metrics


def _controller(obs_dim: int = 3, act_dim: int = 1):
    net = stateful_controller(obs_dim, act_dim, (16, 8), slope=5.0)
    with torch.no_grad():
        for lin in net.linears:
            lin.weight.mul_(3.0)
    return net


def test_evaluation_resets_state_at_every_episode_start():
    net = _controller()
    fresh_at_call = []
    step = net.step

    def spy(obs, state=None):
        fresh_at_call.append(state is None)
        return step(obs, state)

    net.step = spy
    result = evaluate_policy(net, "Pendulum-v1", seed=0, episodes=2)
    assert list(result.lengths) == [200, 200]
    assert fresh_at_call == ([True] + [False] * 199) * 2


@pytest.fixture
def stateful_learners(monkeypatch):
    """Build every run's actor as a small stateful controller; record the acting policies."""
    monkeypatch.setattr(spikerl.algos, "build_actor", lambda *a, **k: _controller())
    policies, resets = [], []
    init, reset = ActingPolicy.__init__, ActingPolicy.reset

    def record_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        policies.append(self)

    def record_reset(self, mask=None):
        resets.append((self, self.state is not None))
        reset(self, mask)

    monkeypatch.setattr(ActingPolicy, "__init__", record_init)
    monkeypatch.setattr(ActingPolicy, "reset", record_reset)
    return policies, resets


def test_training_resets_the_acting_state_at_episode_ends(tiny_config, tmp_path, stateful_learners):
    policies, resets = stateful_learners
    train(tiny_config("actor.kind=lif"), tmp_path)  # 400 steps: two 200-step episodes
    training_policy = policies[0]  # built with the learner, before any evaluation
    assert training_policy.stateful
    resets_in_training = [carried for p, carried in resets if p is training_policy]
    assert resets_in_training == [True, True]  # the state was carried, then cleared


def test_interrupted_stateful_run_resumes_exactly(
    tiny_config, tmp_path, stateful_learners, interrupt_td3
):
    cfg = tiny_config("actor.kind=lif", "run.total_steps=500", "run.eval_every=250")
    train(cfg, tmp_path / "clean")
    # stop mid-episode (step 230 of 200-step episodes), while the policy carries state
    restore = interrupt_td3("act", 130)  # acting starts after the 100 warm-up steps
    result = train(cfg, tmp_path / "cut")
    restore()
    assert result.interrupted and 200 < result.steps < 250
    train(cfg, tmp_path / "cut", resume=True)
    clean, cut = tmp_path / "clean" / cfg.run_name, tmp_path / "cut" / cfg.run_name
    assert read_metrics(cut) == read_metrics(clean)


def test_provenance_is_recorded_per_session(tiny_config, tmp_path, interrupt_td3):
    import yaml

    cfg = tiny_config("run.total_steps=400", "run.eval_every=100")
    restore = interrupt_td3("update", 50)  # updates start at step 100: stop near step 150
    assert train(cfg, tmp_path).interrupted
    restore()
    train(cfg, tmp_path, resume=True)
    train(cfg, tmp_path, resume=True)  # finished: a session that trains nothing records nothing
    entries = yaml.safe_load((tmp_path / cfg.run_name / "provenance.yaml").read_text())
    assert [e["event"] for e in entries] == ["start", "resume"]
    for entry in entries:
        assert entry["torch"] == torch.__version__ and entry["torch_threads"] == 1
        assert entry["device"] == "cpu" and entry["spikerl"]
        assert {"python", "numpy", "gymnasium", "mujoco", "cpu", "git_revision"} <= set(entry)
