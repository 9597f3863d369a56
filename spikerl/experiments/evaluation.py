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

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from ..envs import ObservationNormalizer, check_env_id, find_wrapper, make_env, missing_dependency
from ..errors import MissingDependencyError, UsageError
from ..nets.policy import ActingPolicy
from ..seeding import SeedStreams

__all__ = [
    "EvalResult",
    "eval_info_keys",
    "eval_info_labels",
    "evaluate_policy",
    "BatchedEpisodes",
    "episode_seeds",
    "evaluate_batched",
    "evaluation_mode",
    "make_frozen_env",
    "plot_trajectories",
    "run_batched_episodes",
    "summarize_curve",
    "trajectory_env",
]


class EvalResult(NamedTuple):
    """Returns and lengths per episode, up to ``keep_obs`` visited observations ``[N, n]``,
    and the per-episode values of the env's declared evaluation info (:func:`eval_info_keys`)."""

    returns: np.ndarray
    lengths: np.ndarray
    observations: np.ndarray
    info: dict[str, np.ndarray] = {}

    def __repr__(self) -> str:  # not every stored observation
        return (
            f"EvalResult(episodes={len(self.returns)}, return_mean={self.returns.mean():.2f}, "
            f"length_mean={self.lengths.mean():.1f}, observations={self.observations.shape}, "
            f"info={sorted(self.info)})"
        )

    def metrics(self) -> dict[str, float]:
        """The means logged as a run's evaluation row: ``eval/return_mean``, ``_std``,
        ``eval/length_mean`` and ``eval/<key>`` for every declared info key."""
        out = {
            "eval/return_mean": float(self.returns.mean()),
            "eval/return_std": float(self.returns.std()),
            "eval/length_mean": float(self.lengths.mean()),
        }
        out.update({f"eval/{key}": float(values.mean()) for key, values in self.info.items()})
        return out


def eval_info_keys(env_id: str) -> dict[str, tuple[str, str]]:
    """Info entries an env asks evaluations to report, ``metadata["eval_info"]`` of its
    registered class (no env is built): key -> (how an episode's steps reduce to one number,
    ``mean`` or ``last``; the label of its mean over episodes). The quadrotor's:
    ``position_error`` (mean, "position error (m)") and ``crashed`` (0/1, last, "crash rate")."""
    return dict(_env_class_metadata(env_id).get("eval_info", {}))


def evaluate_policy(
    actor: nn.Module,
    env_id: str,
    seed: int,
    episodes: int = 10,
    normalizer_state: dict[str, Any] | None = None,
    device: str | torch.device = "cpu",
    keep_obs: int = 256,
    video_dir: str | Path | None = None,
    curriculum: float | None = None,
) -> EvalResult:
    """Run ``episodes`` deterministic episodes of ``actor`` under the protocol above.

    With ``video_dir``, every episode is rendered and written there as MP4 (needs ``moviepy``);
    an env without frames that declares ``metadata["trajectory_obs"]`` gets a trajectory plot
    (:mod:`~spikerl.experiments.trajectory_plot`) there instead. ``curriculum`` sets the
    reward curriculum of an env that has one (``set_curriculum(rho)``), as in training.
    """
    trajectory = _trajectory_slice(env_id) if video_dir is not None else None
    if video_dir is not None and trajectory is None:
        _require_moviepy()  # before any env is built or episode run
    render_mode = "rgb_array" if video_dir is not None and trajectory is None else None
    env = make_frozen_env(env_id, normalizer_state, render_mode)
    if curriculum is not None:
        if not hasattr(env.unwrapped, "set_curriculum"):
            env.close()
            raise UsageError(f"{env_id} has no reward curriculum to set (curriculum={curriculum})")
        env.unwrapped.set_curriculum(curriculum)
    if video_dir is not None and trajectory is None:
        env = _record_video(env, Path(video_dir))
    policy = ActingPolicy(actor, device)
    returns, lengths, seen = [], [], []
    reduce = eval_info_keys(env_id)
    info: dict[str, list[float]] = {key: [] for key in reduce}
    try:
        with evaluation_mode(actor):
            _rollouts(env, policy, seed, episodes, reduce, (returns, lengths, seen, info))
    except gym.error.DependencyNotInstalled as err:  # rendering without pygame, for example
        raise missing_dependency(env_id, err) from None
    finally:
        env.close()
    if trajectory is not None:
        ends = np.cumsum([0, *lengths])
        episodes_seen = [np.stack(seen[a:b]) for a, b in zip(ends[:-1], ends[1:], strict=True)]
        plot_trajectories(episodes_seen, env_id, Path(video_dir))
    stride = max(1, len(seen) // keep_obs)
    per_episode = {key: np.array(values) for key, values in info.items()}
    observations = np.stack(seen[::stride][:keep_obs])
    return EvalResult(np.array(returns), np.array(lengths), observations, per_episode)


def episode_seeds(seed: int, episodes: int) -> list[int]:
    """Reset seeds of the ``episodes`` episodes of a batched evaluation from ``seed``: drawn
    from the seed's ``evaluation`` stream, so every policy evaluated with ``seed`` starts from
    the same states (paired comparisons), apart from the calibration stream."""
    state = SeedStreams(seed).sequence("evaluation").generate_state(episodes)
    return [int(x) for x in state]


class BatchedEpisodes(NamedTuple):
    """Per-episode returns and lengths, and per step ``[K, B, ...]`` the observations and
    executed actions (K the longest episode; rows past their episode end are padded with the
    last values and masked by ``alive [K, B]``)."""

    returns: np.ndarray
    lengths: np.ndarray
    observations: np.ndarray
    actions: np.ndarray
    alive: np.ndarray


def run_batched_episodes(
    env_id: str,
    seeds: list[int],
    act: Any,
    normalizer_state: dict[str, Any] | None = None,
    record: bool = False,
) -> BatchedEpisodes:
    """One episode per seed, all stepped together: env ``i`` is reset with ``seeds[i]`` and
    ``act(obs [B, n]) -> actions [B, m]`` acts for every row at every step (rows whose episode
    ended get their last observation again and their actions are dropped, so a stateful
    policy's rows stay aligned). Actions are clipped to the action bounds. With ``record`` the
    visited observations and executed actions are kept.

    Equals running each seed's episode on its own (a test checks it), up to float rounding of
    batched matrix products."""
    envs = [make_frozen_env(env_id, normalizer_state) for _ in seeds]
    low, high = envs[0].action_space.low, envs[0].action_space.high
    try:
        obs = np.stack([env.reset(seed=seed)[0] for env, seed in zip(envs, seeds, strict=True)])
        done = np.zeros(len(seeds), dtype=bool)
        returns, lengths = np.zeros(len(seeds)), np.zeros(len(seeds), dtype=int)
        trace: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        while not done.all():
            actions = np.clip(np.asarray(act(obs.astype(np.float32))), low, high)
            if record:
                trace.append((obs.copy(), actions.copy(), ~done))
            for i in np.flatnonzero(~done):
                o, r, terminated, truncated, _ = envs[i].step(actions[i])
                obs[i], returns[i], lengths[i] = o, returns[i] + float(r), lengths[i] + 1
                done[i] = terminated or truncated
    finally:
        for env in envs:
            env.close()
    if not record:
        empty = np.zeros((0, len(seeds)))
        return BatchedEpisodes(returns, lengths, empty, empty, empty.astype(bool))
    observations, actions, alive = (np.stack(x) for x in zip(*trace, strict=True))
    return BatchedEpisodes(returns, lengths, observations, actions, alive)


def evaluate_batched(
    actor: nn.Module,
    env_id: str,
    seed: int,
    episodes: int = 10,
    normalizer_state: dict[str, Any] | None = None,
    device: str | torch.device = "cpu",
    record: bool = False,
) -> BatchedEpisodes:
    """``episodes`` deterministic episodes of ``actor`` stepped as one batch, from the start
    states of :func:`episode_seeds` (``seed``); a stateful actor's state starts at zero in
    every row. The fast protocol of conversion grids; :func:`evaluate_policy` stays the
    training-time protocol."""
    policy = ActingPolicy(actor, device)
    with evaluation_mode(actor):
        return run_batched_episodes(
            env_id, episode_seeds(seed, episodes), policy, normalizer_state, record
        )


@contextmanager
def evaluation_mode(actor: nn.Module) -> Iterator[None]:
    """``actor`` in eval mode for the block, its train/eval mode restored after it."""
    was_training = actor.training
    actor.eval()
    try:
        yield
    finally:
        actor.train(was_training)


def make_frozen_env(
    env_id: str, normalizer_state: dict[str, Any] | None = None, render_mode: str | None = None
) -> gym.Env:
    """An env for acting with a trained policy: a training run's observation-normaliser
    statistics (if any) copied in and frozen."""
    env = make_env(env_id, normalize_obs=normalizer_state is not None, render_mode=render_mode)
    if normalizer_state is not None:
        norm = find_wrapper(env, ObservationNormalizer)
        norm.load_state_dict(normalizer_state)
        norm.update = False
    return env


def _env_class_metadata(env_id: str) -> dict[str, Any]:
    """``metadata`` of the class registered for ``env_id`` (no env is built; the module of a
    ``"module:EnvName-v0"`` id is imported first)."""
    check_env_id(env_id)
    entry = gym.spec(env_id.rpartition(":")[2]).entry_point
    cls = gym.envs.registration.load_env_creator(entry) if isinstance(entry, str) else entry
    return getattr(cls, "metadata", {})


def _trajectory_slice(env_id: str) -> tuple[int, int] | None:
    """Where a frameless env's position lies in its observation, or None (it renders)."""
    meta = _env_class_metadata(env_id)
    return None if meta.get("render_modes") else meta.get("trajectory_obs")


def trajectory_env(env_id: str) -> bool:
    """Whether ``env_id`` is frameless and declares where its position lies in the observation
    (``metadata["trajectory_obs"]``): ``--video`` then plots trajectories instead."""
    return _trajectory_slice(env_id) is not None


def plot_trajectories(episodes: list[np.ndarray], env_id: str, out: Path) -> None:
    """The trajectory plot of a :func:`trajectory_env` into folder ``out``, from each episode's
    observations ``[T_i, n]``."""
    from .trajectory_plot import write_trajectory_plot

    start, stop = _trajectory_slice(env_id)
    paths = [np.asarray(obs)[:, start:stop].astype(np.float64) for obs in episodes]
    dt = 1.0 / _env_class_metadata(env_id).get("render_fps", 1)
    write_trajectory_plot(paths, dt, out, f"{env_id}: {len(paths)} evaluation episodes")


def eval_info_labels(env_id: str) -> dict[str, str]:
    """Summary labels of the env's :func:`eval_info_keys` (from its registered class, no env
    is built)."""
    return {key: label for key, (_, label) in eval_info_keys(env_id).items()}


def _rollouts(
    env: Any, policy: ActingPolicy, seed: int, episodes: int, reduce: dict, out: tuple
) -> None:
    """One discarded seeded reset, then ``episodes`` episodes; appends to the lists of ``out``
    (returns, lengths, observations, and the info entries of ``reduce`` per episode)."""
    returns, lengths, seen, info = out
    env.reset(seed=SeedStreams(seed).integer("evaluation"))
    for _ in range(episodes):
        obs, _ = env.reset()
        policy.reset()
        done, total, length = False, 0.0, 0
        sums = dict.fromkeys(reduce, 0.0)
        while not done:
            seen.append(obs)
            obs, reward, terminated, truncated, step_info = env.step(policy(obs))
            total, length, done = total + float(reward), length + 1, terminated or truncated
            for key, (how, _) in reduce.items():
                value = float(step_info[key])
                sums[key] = value if how == "last" else sums[key] + value
        returns.append(total)
        lengths.append(length)
        for key, (how, _) in reduce.items():
            info[key].append(sums[key] if how == "last" else sums[key] / length)


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
