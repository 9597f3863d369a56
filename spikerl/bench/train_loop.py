"""A bare training loop for timing: the loop of :mod:`spikerl.experiments.run` without
evaluation, checkpoints, metrics or the progress bar.

Act (uniform random during warm-up, the exploring actor after), step the env, store the
transition, reset on episode end, and one learner update per env step once
``algo.learning_starts`` transitions are stored.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..algos import build_learner
from ..buffers import ReplayBuffer
from ..envs import env_dims, make_env
from ..experiments.checkpoint import seed_everything
from ..experiments.config import Config
from ..experiments.process import keep_freed_memory

__all__ = ["SeedsTrainLoop", "TrainLoop", "raw_env_steps_per_sec", "timed_steps_per_sec"]


class TrainLoop:
    """Env, learner and replay buffer of one config, stepped on demand.

    Args:
        cfg: the run config (env, actor, algo; ``run.seed`` seeds everything).
        capacity: replay capacity; enough for every step the benchmark takes.
        device: where the networks and sampled batches live.
    """

    def __init__(self, cfg: Config, capacity: int, device: str = "cpu") -> None:
        keep_freed_memory()  # as in a training run (spikerl.experiments.process)
        seed_everything(cfg.run.seed)
        self.cfg = cfg
        self.env = make_env(cfg.env.id, seed=cfg.run.seed)
        obs_dim, act_dim = env_dims(self.env)
        self.learner = build_learner(cfg, obs_dim, act_dim, device)
        self.buffer = ReplayBuffer(
            obs_dim, act_dim, capacity, cfg.run.seed, device, on_device=cfg.run.replay_on_device
        )
        self.obs, _ = self.env.reset(seed=cfg.run.seed)
        self.step_count = 0

    def _env_step(self, action: np.ndarray) -> None:
        next_obs, reward, terminated, truncated, _ = self.env.step(action)
        self.buffer.add(self.obs, action, float(reward), next_obs, terminated)
        if terminated or truncated:
            next_obs, _ = self.env.reset()
        self.obs = next_obs
        self.step_count += 1

    def prefill(self) -> None:
        """The uniform-random warm-up: ``algo.learning_starts`` steps, no updates."""
        while self.step_count < self.cfg.algo.learning_starts:
            self._env_step(self.env.action_space.sample())

    def train(self, steps: int) -> None:
        """``steps`` training iterations: exploring action, env step, store, one update."""
        for _ in range(steps):
            self._env_step(self.learner.act(self.obs, explore=True))
            self.learner.update(self.buffer)


class SeedsTrainLoop:
    """S :class:`TrainLoop` s of one config (``run.seed`` = ``cfg.run.seed + i``) whose
    learners are stacked (:func:`~spikerl.algos.seeds.stack_learners`): one iteration acts
    for every seed with one batched forward, steps the S envs and runs one batched update;
    it is S env steps. What ``spikerl train --seeds`` does, without evaluation or files."""

    def __init__(self, cfg: Config, seeds: int, capacity: int, device: str = "cpu") -> None:
        from ..algos.seeds import SeedBuffers, stack_learners
        from ..experiments.seeds_run import seed_configs

        first = cfg.run.seed
        cfgs = seed_configs(cfg, list(range(first, first + seeds)))
        self.cfg, self.seeds = cfg, seeds
        self.loops = [TrainLoop(c, capacity, device) for c in cfgs]
        self.buffers = SeedBuffers([loop.buffer for loop in self.loops])
        self.learner = stack_learners([loop.learner for loop in self.loops], cfg)

    def prefill(self) -> None:
        """Every seed's uniform-random warm-up (the learners are not used in it)."""
        for loop in self.loops:
            loop.prefill()

    def train(self, steps: int) -> None:
        """``steps`` iterations (``steps * seeds`` env steps)."""
        for _ in range(steps):
            obs = np.stack([loop.obs for loop in self.loops])
            for loop, action in zip(self.loops, self.learner.act(obs, explore=True), strict=True):
                loop._env_step(action)
            self.learner.update(self.buffers)


def timed_steps_per_sec(loop: Any, steps: int, device: str = "cpu") -> float:
    """Wall-clock env steps per second of ``loop.train(steps)`` (any loop with ``train``: a
    :class:`TrainLoop` or the SB3 one), queued GPU work included."""
    from .timing import sync

    start = time.perf_counter()
    loop.train(steps)
    sync(device)
    return steps / (time.perf_counter() - start)


def raw_env_steps_per_sec(env_id: str, steps: int, seed: int = 0) -> float:
    """Env steps per second with uniform random actions (resets included), no learning."""
    env = make_env(env_id, seed=seed)
    env.reset(seed=seed)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    elapsed = time.perf_counter() - start
    env.close()
    return steps / elapsed
