"""Loading trained policies from run folders, and re-evaluating them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from ..envs import ObservationNormalizer, env_dims, find_wrapper, make_env, make_env_wrappers
from ..errors import UsageError
from ..nets import build_actor
from ..nets.policy import ActingPolicy
from .checkpoint import (
    POLICY_ENTRIES,
    CheckpointError,
    check_entries,
    load_checkpoint,
    nonfinite_entry,
)
from .config import Config, config_from_dict
from .evaluation import EvalResult, evaluate_policy, plot_trajectories, trajectory_env
from .run import (
    CHECKPOINT_NAME,
    CONFIG_NAME,
    POLICIES_DIR,
    RunError,
    load_run_config,
    resolve_device,
)

__all__ = ["EnvPolicy", "evaluate_loaded", "evaluate_run", "load_policy"]


def _locate(path: str | Path) -> tuple[Path, Path]:
    """(run directory, checkpoint file) for a run folder, a checkpoint inside one, or a kept
    policy ``policies/step-<N>.pt`` (``run.keep_policies``) of one."""
    path = Path(path)
    if not path.exists():
        raise RunError(f"{path} does not exist (expected a run directory or a checkpoint file)")
    if path.is_dir():
        return path, path / CHECKPOINT_NAME
    path = path.resolve()  # a bare file name inside policies/ has the parent ''
    if path.parent.name == POLICIES_DIR and not (path.parent / CONFIG_NAME).exists():
        return path.parent.parent, path
    return path.parent, path


def load_policy(path: str | Path, device: str = "cpu") -> tuple[nn.Module, Config, Any]:
    """The deployed actor of a run, its config and its observation-normaliser state (or None).

    ``path`` is a run folder, a checkpoint inside one, or a converted policy written by
    ``spikerl convert`` (its config is the source's, with the conversion's name and seed).
    The actor takes observations as :func:`~spikerl.envs.make_env` gives them (normalised, if
    the run normalised) and gives actions in [-1, 1]; :class:`EnvPolicy` takes and gives the
    env's own."""
    from ..convert.build import CONVERTED_FORMAT, converted_from_saved

    device = str(resolve_device(device, "device"))
    run_dir, ckpt_path = _locate(path)
    if Path(path).is_file():  # a run's checkpoint, a kept policy or a converted policy
        ckpt = load_checkpoint(ckpt_path, "cpu")
        if ckpt.get("kind") == CONVERTED_FORMAT:
            snn, record = converted_from_saved(ckpt, ckpt_path, device)
            return snn, config_from_dict(record["config"]), _arrays(record.get("normalizer"))
        cfg = load_run_config(run_dir)
        check_entries(ckpt, ckpt_path, POLICY_ENTRIES)
    else:
        cfg = load_run_config(run_dir)
        ckpt = load_checkpoint(ckpt_path, "cpu", POLICY_ENTRIES)
    env = make_env(cfg.env.id)
    actor = build_actor(cfg.actor, cfg.algo.name, *env_dims(env)).to(device)
    env.close()
    try:
        actor.load_state_dict(ckpt["learner"]["actor"])
    except (KeyError, RuntimeError) as err:
        raise CheckpointError(
            f"{ckpt_path}: actor weights do not match the config: {err}"
        ) from None
    actor.eval()
    bad = nonfinite_entry(actor.state_dict())  # a diverged or damaged run: garbage everywhere
    if bad is not None:
        raise CheckpointError(
            f"{ckpt_path}: the actor's {bad} holds NaN or Inf values (a diverged or damaged "
            "run); nothing to evaluate, convert or export"
        )
    return actor, cfg, _arrays(ckpt["env"].get("normalizer"))


def _arrays(normalizer: dict[str, Any] | None) -> dict[str, Any] | None:
    """A normaliser state as read from a checkpoint, its tensors back as NumPy arrays."""
    if normalizer is None:
        return None
    return {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in normalizer.items()}


def evaluate_run(
    path: str | Path,
    episodes: int | None = None,
    video_dir: str | Path | None = None,
    device: str = "cpu",
    curriculum: float | None = None,
    seed: int | None = None,
    guide_steps: int | None = None,
) -> tuple[EvalResult, Config]:
    """Evaluate a run's checkpoint under its protocol (:func:`evaluate_loaded`)."""
    actor, cfg, normalizer = load_policy(path, device)
    result = evaluate_loaded((actor, cfg, normalizer), episodes, video_dir, device,
                             curriculum=curriculum, seed=seed, guide_steps=guide_steps)  # fmt: skip
    return result, cfg


def evaluate_loaded(
    policy: tuple[nn.Module, Config, Any],
    episodes: int | None = None,
    video_dir: str | Path | None = None,
    device: str = "cpu",
    curriculum: float | None = None,
    seed: int | None = None,
    guide_steps: int | None = None,
) -> EvalResult:
    """Evaluate a policy from :func:`load_policy` under the protocol of its run: ``episodes``
    (None: the run's ``run.eval_episodes``) deterministic episodes; ``curriculum``: the reward
    curriculum rho of an env that has one, None leaves the env's default, the start;
    ``seed``: whose evaluation stream gives the start states, None for the run's own seed.

    A run's policy flies the standard protocol (:func:`evaluate_policy`); a sequence run's
    (``algo.name: sequence``) flies as its in-run evaluations
    (:func:`~spikerl.experiments.sequence_run.evaluate_sequence_policy`), from their start
    states, its guide flying the first ``guide_steps`` steps (None or 0: the actor alone from
    a cold state, as the ``eval_free/*`` rows; ``algo.sequence.eval_guide_steps``: as the
    ``eval/*`` rows), so it reproduces the run's own numbers."""
    actor, cfg, normalizer = policy
    if episodes is not None and (isinstance(episodes, bool) or episodes < 1):
        raise UsageError(f"episodes: {episodes!r}; evaluate at least 1 episode")
    check_guide_steps(guide_steps, cfg)
    if cfg.algo.name == "sequence":
        return _evaluate_sequence(policy, episodes, video_dir, device, curriculum, seed,
                                  guide_steps)  # fmt: skip
    return evaluate_policy(
        actor,
        cfg.env.id,
        cfg.run.seed if seed is None else seed,
        episodes if episodes is not None else cfg.run.eval_episodes,
        normalizer_state=normalizer,
        device=device,
        video_dir=video_dir,
        curriculum=curriculum,
    )


def check_guide_steps(
    guide_steps: int | None, cfg: Config, source: str = "this policy", option: str = "guide_steps"
) -> None:
    """Refuse ``guide_steps`` (the option as ``option`` names it) unless the policy of
    ``source`` is of a sequence run with a guide: a guide flies only in its evaluation."""
    if not guide_steps:
        return
    if cfg.algo.name != "sequence":
        raise UsageError(
            f"{option} {guide_steps}: {source} is of a {cfg.algo.name} run; a guide flies only "
            "in a sequence run's evaluation (algo.name: sequence)"
        )
    if not cfg.algo.sequence.guide:
        raise UsageError(
            f"{option} {guide_steps}: {source} is of a run without a guide "
            "(algo.sequence.guide is '')"
        )


def _evaluate_sequence(policy, episodes, video_dir, device, curriculum, seed, guide_steps):
    """:func:`evaluate_loaded` of a sequence run's policy, ``video_dir`` a trajectory plot."""
    from .sequence_run import evaluate_sequence_policy

    actor, cfg, _ = policy
    if video_dir is not None and not trajectory_env(cfg.env.id):
        raise UsageError(f"video: {cfg.env.id} has no trajectory plot for a sequence run")
    n = cfg.run.eval_episodes if episodes is None else episodes
    result, paths = evaluate_sequence_policy(
        actor, cfg, guide_steps or 0, n, curriculum, seed, resolve_device(str(device), "device"),
        keep_episodes=video_dir is not None,
    )  # fmt: skip
    if video_dir is not None:
        plot_trajectories([obs[:-1] for obs in paths], cfg.env.id, Path(video_dir))
    return result


class EnvPolicy:
    """A trained or converted policy as its env sees it: the env's raw observations in, the
    env's actions out (what an exported policy's ``act`` gives, :mod:`spikerl.runtime`).

    The observation passes through the same wrappers as in training (:func:`make_env`: the
    float32 cast and, if the run normalised, its :class:`~spikerl.envs.ObservationNormalizer`
    with the run's statistics, frozen), the actor decides (:class:`ActingPolicy`, which
    carries a stateful actor's state), and the action in [-1, 1] is mapped onto the env's
    bounds by the same ``RescaleAction``. One observation ``[n]`` gives one action ``[m]``, a
    batch ``[B, n]`` gives ``[B, m]``; call :meth:`reset` at every episode start::

        policy = EnvPolicy.load("runs/td3-lif-Hopper-v4-s0")
        policy.reset()
        action = policy.act(obs)
    """

    def __init__(
        self,
        actor: nn.Module,
        env_id: str,
        normalizer: dict[str, Any] | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        device = resolve_device(str(device), "device")
        env = make_env(env_id, normalize_obs=normalizer is not None)
        if normalizer is not None:
            norm = find_wrapper(env, ObservationNormalizer)
            norm.load_state_dict(normalizer)
            norm.update = False
        self.env_id, self.obs_shape = env_id, env.observation_space.shape
        own = make_env_wrappers(env)  # not those gym.make adds: its env gives what they made
        self._observation_wrappers = [w for w in own if isinstance(w, gym.ObservationWrapper)][::-1]
        self._action_wrappers = [w for w in own if isinstance(w, gym.ActionWrapper)]
        env.close()
        self.policy = ActingPolicy(actor, device)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> EnvPolicy:
        """The policy of a run folder, a checkpoint or a converted policy (:func:`load_policy`)."""
        actor, cfg, normalizer = load_policy(path, device)
        return cls(actor, cfg.env.id, normalizer, device)

    def reset(self, mask: np.ndarray | None = None) -> None:
        """Episode start: zero a stateful actor's state (only the rows where ``mask`` is True)."""
        self.policy.reset(mask)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """The env action for the raw observation ``obs`` (``[n]`` or a batch ``[B, n]``)."""
        obs, rank = np.asarray(obs), len(self.obs_shape)
        if obs.ndim not in (rank, rank + 1) or obs.shape[-rank:] != self.obs_shape:
            raise UsageError(
                f"observation of shape {obs.shape}; {self.env_id} policies take "
                f"{self.obs_shape} or a batch (B, {', '.join(map(str, self.obs_shape))})"
            )
        for wrapper in self._observation_wrappers:  # innermost first, as the env applies them
            obs = wrapper.observation(obs)
        action = self.policy(obs)
        for wrapper in self._action_wrappers:  # outermost first
            action = wrapper.action(action)
        return action
