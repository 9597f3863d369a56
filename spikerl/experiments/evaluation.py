"""The evaluation protocol used everywhere (proxy-target spec Sec. 6).

Each evaluation builds a fresh env, calls ``reset(seed=eval_seed)`` once and discards that
state (as the reference code does), then runs ``episodes`` deterministic episodes from the next
unseeded resets, so every evaluation of a run sees the same start states. ``eval_seed`` is the
run seed's ``evaluation`` stream (:class:`~spikerl.seeding.SeedStreams`); the reference code
uses ``seed + 100``, which is the training seed of run ``seed + 100``, so spikerl's evaluation
starts never coincide with any run's training stream. A training run's observation-normaliser
statistics are copied into the evaluation env and kept frozen. A stateful actor's state is
reset at the start of every episode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from ..envs import ObservationNormalizer, find_wrapper, make_env, missing_dependency
from ..errors import MissingDependencyError
from ..nets.policy import ActingPolicy
from ..seeding import SeedStreams

__all__ = ["EvalResult", "evaluate_policy", "summarize_curve"]


class EvalResult(NamedTuple):
    """Returns and lengths per episode and up to ``keep_obs`` visited observations ``[N, n]``."""

    returns: np.ndarray
    lengths: np.ndarray
    observations: np.ndarray

    def metrics(self) -> dict[str, float]:
        return {
            "eval/return_mean": float(self.returns.mean()),
            "eval/return_std": float(self.returns.std()),
            "eval/length_mean": float(self.lengths.mean()),
        }


def evaluate_policy(
    actor: nn.Module,
    env_id: str,
    seed: int,
    episodes: int = 10,
    normalizer_state: dict[str, Any] | None = None,
    device: str | torch.device = "cpu",
    keep_obs: int = 256,
    video_dir: str | Path | None = None,
) -> EvalResult:
    """Run ``episodes`` deterministic episodes of ``actor`` under the protocol above.

    With ``video_dir``, every episode is rendered and written there as MP4 (needs ``moviepy``).
    """
    if video_dir is not None:
        _require_moviepy()  # before any env is built or episode run
    render_mode = "rgb_array" if video_dir is not None else None
    env = make_env(env_id, normalize_obs=normalizer_state is not None, render_mode=render_mode)
    if normalizer_state is not None:
        norm = find_wrapper(env, ObservationNormalizer)
        norm.load_state_dict(normalizer_state)
        norm.update = False
    if video_dir is not None:
        env = _record_video(env, Path(video_dir))
    policy = ActingPolicy(actor, device)
    returns, lengths, seen = [], [], []
    was_training = actor.training
    actor.eval()
    try:
        _rollouts(env, policy, seed, episodes, returns, lengths, seen)
    except gym.error.DependencyNotInstalled as err:  # rendering without pygame, for example
        raise missing_dependency(env_id, err) from None
    finally:
        actor.train(was_training)
        env.close()
    stride = max(1, len(seen) // keep_obs)
    return EvalResult(np.array(returns), np.array(lengths), np.stack(seen[::stride][:keep_obs]))


def _rollouts(
    env: Any,
    policy: ActingPolicy,
    seed: int,
    episodes: int,
    returns: list[float],
    lengths: list[int],
    seen: list[np.ndarray],
) -> None:
    """One discarded seeded reset, then ``episodes`` episodes; appends to the three lists."""
    env.reset(seed=SeedStreams(seed).integer("evaluation"))
    for _ in range(episodes):
        obs, _ = env.reset()
        policy.reset()
        done, total, length = False, 0.0, 0
        while not done:
            seen.append(obs)
            obs, reward, terminated, truncated, _ = env.step(policy(obs))
            total, length, done = total + float(reward), length + 1, terminated or truncated
        returns.append(total)
        lengths.append(length)


def _require_moviepy() -> None:
    """Raise :class:`MissingDependencyError` unless moviepy (RecordVideo's writer) imports."""
    try:
        import moviepy  # noqa: F401  (gymnasium's RecordVideo writes through moviepy)
    except ImportError:
        raise MissingDependencyError(
            "recording videos needs moviepy: pip install moviepy"
        ) from None


def _record_video(env: Any, video_dir: Path) -> Any:
    """Wrap ``env`` so every episode is written to ``video_dir`` as MP4."""
    _require_moviepy()
    return gym.wrappers.RecordVideo(
        env, str(video_dir), episode_trigger=lambda _: True, disable_logger=True
    )


def summarize_curve(returns: list[float]) -> dict[str, float]:
    """Per-seed summary of an evaluation curve: max average return and final return."""
    if not returns:
        return {"max_return": float("nan"), "final_return": float("nan")}
    return {"max_return": float(max(returns)), "final_return": float(returns[-1])}
