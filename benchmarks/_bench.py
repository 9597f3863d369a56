"""Shared pieces of the benchmark scripts: a bare training loop, timers, environment facts.

The training loop here is the one of :mod:`spikerl.experiments.run` without evaluation,
checkpoints, metrics or the progress bar: act (uniform random during warm-up, the exploring
actor after), step the env, store the transition, reset on episode end, and one learner update
per env step once ``learning_starts`` transitions are stored.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from spikerl.algos import build_learner
from spikerl.buffers import ReplayBuffer
from spikerl.envs import env_dims, make_env
from spikerl.experiments.argtypes import non_negative_int, positive_int
from spikerl.experiments.checkpoint import seed_everything
from spikerl.experiments.config import Config

__all__ = [
    "TrainLoop",
    "add_training_window_args",
    "environment_info",
    "non_negative_int",
    "percentile_us",
    "positive_int",
    "quiet_warnings",
    "raw_env_steps_per_sec",
    "timed_steps_per_sec",
    "write_json",
    "write_results",
]


class TrainLoop:
    """Env, learner and replay buffer of one config, stepped on demand.

    Args:
        cfg: the run config (env, actor, algo; ``run.seed`` seeds everything).
        capacity: replay capacity; enough for every step the benchmark takes.
    """

    def __init__(self, cfg: Config, capacity: int) -> None:
        seed_everything(cfg.run.seed)
        self.cfg = cfg
        self.env = make_env(cfg.env.id, seed=cfg.run.seed)
        obs_dim, act_dim = env_dims(self.env)
        self.learner = build_learner(cfg, obs_dim, act_dim, "cpu")
        self.buffer = ReplayBuffer(obs_dim, act_dim, capacity, seed=cfg.run.seed)
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


#: Help of the flags that :func:`add_training_window_args` adds, by flag.
_WINDOW_HELP = {
    "--learning-starts": "uniform-random env steps before updates (untimed)",
    "--warmup": "training iterations after learning starts, untimed",
    "--window": "timed training iterations per window",
    "--repeats": "round-robin windows of each setting; the median is reported",
    "--seed": "seed of env, networks and buffer",
}


def add_training_window_args(
    parser: argparse.ArgumentParser, *, warmup_default: int, window_default: int
) -> None:
    """The flags shared by the training benchmarks; the env and thread flags are their own.

    ``--learning-starts`` uniform-random env steps and ``--warmup`` training iterations run
    untimed, then ``--repeats`` round-robin windows of ``--window`` timed iterations each;
    ``--seed`` seeds env, networks and buffer, and ``--json PATH`` also writes the results.
    """
    for flag, kind, default in (
        ("--learning-starts", positive_int, 1000),
        ("--warmup", non_negative_int, warmup_default),
        ("--window", positive_int, window_default),
        ("--repeats", positive_int, 1),
        ("--seed", non_negative_int, 0),
    ):
        parser.add_argument(flag, type=kind, default=default, help=_WINDOW_HELP[flag])
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write JSON")


def timed_steps_per_sec(loop: TrainLoop, steps: int) -> float:
    """Wall-clock env steps per second of ``loop.train(steps)``."""
    start = time.perf_counter()
    loop.train(steps)
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


def percentile_us(samples_ns: list[int], q: float) -> float:
    """The ``q``-th percentile of nanosecond samples, in microseconds."""
    return float(np.percentile(np.asarray(samples_ns, dtype=np.float64), q)) / 1e3


def environment_info() -> dict[str, Any]:
    """Library versions and machine facts to store next to the numbers."""
    import mujoco

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "gymnasium": gym.__version__,
        "mujoco": mujoco.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def quiet_warnings() -> None:
    """Hide Gymnasium's deprecation (v4 envs) and dtype warnings, which clutter the tables."""
    warnings.filterwarnings("ignore", module=r"gymnasium(\..*)?")
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` as indented JSON, creating the parent folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")


def write_results(args: argparse.Namespace, benchmark: str, results: dict[str, Any]) -> None:
    """With ``--json PATH``: write the settings, :func:`environment_info` and ``results``."""
    if args.json is None:
        return
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    payload = {"benchmark": benchmark, "settings": settings, "environment": environment_info()}
    write_json(args.json, {**payload, **results})
    print(f"wrote {args.json}")
