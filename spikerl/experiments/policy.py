"""Loading trained policies from run folders, and re-evaluating them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..envs import env_dims, make_env
from ..nets import build_actor
from .checkpoint import CheckpointError, load_checkpoint
from .config import Config, config_from_dict
from .evaluation import EvalResult, evaluate_policy
from .run import CHECKPOINT_NAME, CONFIG_NAME, POLICIES_DIR, RunError, load_run_config

__all__ = ["evaluate_loaded", "evaluate_run", "load_policy"]


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
    ``spikerl convert`` (its config is the source's, with the conversion's name and seed)."""
    from ..convert.build import CONVERTED_FORMAT, converted_from_saved

    run_dir, ckpt_path = _locate(path)
    if Path(path).is_file():  # a run's checkpoint, a kept policy or a converted policy
        ckpt = load_checkpoint(ckpt_path, "cpu")
        if ckpt.get("kind") == CONVERTED_FORMAT:
            snn, record = converted_from_saved(ckpt, ckpt_path, device)
            return snn, config_from_dict(record["config"]), record.get("normalizer")
        cfg = load_run_config(run_dir)
    else:
        cfg = load_run_config(run_dir)
        ckpt = load_checkpoint(ckpt_path, "cpu")
    env = make_env(cfg.env.id)
    actor = build_actor(cfg.actor, cfg.algo.name, *env_dims(env)).to(device)
    env.close()
    try:
        actor.load_state_dict(ckpt["learner"]["actor"])
    except (KeyError, RuntimeError) as err:
        raise CheckpointError(
            f"{ckpt_path}: actor weights do not match the config: {err}"
        ) from None
    normalizer = ckpt["env"].get("normalizer")
    if normalizer is not None:
        normalizer = {
            k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in normalizer.items()
        }
    actor.eval()
    return actor, cfg, normalizer


def evaluate_run(
    path: str | Path,
    episodes: int | None = None,
    video_dir: str | Path | None = None,
    device: str = "cpu",
    curriculum: float | None = None,
    seed: int | None = None,
) -> tuple[EvalResult, Config]:
    """Evaluate a run's checkpoint under the standard protocol (:func:`evaluate_loaded`)."""
    actor, cfg, normalizer = load_policy(path, device)
    result = evaluate_loaded(
        (actor, cfg, normalizer), episodes, video_dir, device, curriculum=curriculum, seed=seed
    )
    return result, cfg


def evaluate_loaded(
    policy: tuple[nn.Module, Config, Any],
    episodes: int | None = None,
    video_dir: str | Path | None = None,
    device: str = "cpu",
    curriculum: float | None = None,
    seed: int | None = None,
) -> EvalResult:
    """Evaluate a policy from :func:`load_policy` under the standard protocol: ``episodes``
    (None: the run's ``run.eval_episodes``) deterministic episodes; ``curriculum``: the reward
    curriculum rho of an env that has one, None leaves the env's default, the start;
    ``seed``: whose evaluation stream gives the start states, None for the run's own seed."""
    actor, cfg, normalizer = policy
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
