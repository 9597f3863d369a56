r"""Guided rollouts of a stateful spiking actor on a batch of drones (jump-start RL; arXiv
2510.24461 Sec. 7, spec ``surrogate-sequence.md``).

Every drone of a vector env (``autoreset_mode`` SAME_STEP) runs its own episode; the actor keeps
one state row per drone, zeroed when that drone's episode starts. At episode step :math:`t`:

- the actor is stepped on :math:`x_t` (its encoder reads the 18-d state) whoever flies, so its state
  is warm at the handover; its action :math:`a^\pi_t` (plus optional exploration noise
  :math:`N(0, \sigma^2)`, clipped to [-1, 1]) is discarded while the guide flies;
- the privileged guide :math:`G` (an ANN on the whole 146-d observation :math:`x_t`) flies for
  :math:`t < L_g`, the actor from then on; the executed action and who produced it are
  recorded (the env's action history records the executed, clipped action either way);
- an episode that reaches the time limit gets the bootstrap action :math:`a_T`: the policy that
  would act at :math:`T` queried on :math:`x_T` (for the actor: one more step from its state,
  which is then discarded), without an env step.

:func:`guided_rollouts` collects episodes for the sequence buffer (stopping once ``store_steps``
steps of episodes of at least ``min_len`` steps are stored, or once finished episodes, kept or
not, add up to ``3 * store_steps`` steps; episodes still in flight then are dropped) or
evaluates (``episodes``: each drone flies one episode; ``L_g = W``
evaluates with the guide's warm-up, ``L_g = 0`` is the guide-free deployment case).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from torch import nn

from ..buffers.sequence import EpisodeWriter

__all__ = ["RolloutResult", "guided_rollouts"]

ATTEMPT_FACTOR = 3  # collection gives up after this many times the steps it should store


@dataclass
class RolloutResult:
    """Finished episodes (``add_episode`` keyword arguments of those kept when collecting) and
    per-episode statistics of every finished episode, kept or not."""

    episodes: list[dict[str, Any]] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    crashed: list[bool] = field(default_factory=list)
    position_error: list[float] = field(default_factory=list)  # m, mean over the episode
    drones: list[int] = field(default_factory=list)  # which drone flew each finished episode
    env_steps: int = 0  # drone-steps taken, finished episodes or not

    @property
    def stored_steps(self) -> int:
        return sum(len(ep["rewards"]) for ep in self.episodes)

    def metrics(self, prefix: str) -> dict[str, float]:
        """Means over episodes: return, length, position error (m), crash rate."""
        return {
            f"{prefix}/return_mean": float(np.mean(self.returns)),
            f"{prefix}/length_mean": float(np.mean(self.lengths)),
            f"{prefix}/position_error": float(np.mean(self.position_error)),
            f"{prefix}/crashed": float(np.mean(self.crashed)),
        }


@torch.no_grad()
def guided_rollouts(
    env: Any,
    actor: nn.Module,
    guide: nn.Module | None,
    guide_steps: int,
    *,
    episodes: int | None = None,
    store_steps: int | None = None,
    min_len: int = 0,
    explore_std: float = 0.0,
    rng: np.random.Generator | None = None,
    seed: int | None = None,
    device: str | torch.device = "cpu",
    keep_episodes: bool = False,
) -> RolloutResult:
    """Fly ``actor`` (handing over from ``guide`` at step ``guide_steps``) on the drones of
    ``env``; give exactly one of ``episodes`` (evaluation: one episode per drone, so at most
    ``num_envs``) and ``store_steps`` (collection). ``seed`` reseeds the env (drone i gets
    ``seed + i``); ``rng`` draws the exploration noise. An evaluation with ``keep_episodes``
    also keeps its episodes (``result.episodes``, as collection does)."""
    _check_args(env, guide, guide_steps, episodes, store_steps, explore_std, rng)
    n = env.num_envs
    obs, _ = env.reset(seed=seed)
    writer = EpisodeWriter(n, obs.shape[1], env.single_action_space.shape[0])
    writer.begin_all(obs)
    result = RolloutResult()
    recording = np.ones(n, bool) if episodes is None else np.arange(n) < episodes
    t, total, errors = np.zeros(n, np.int64), np.zeros(n), np.zeros(n)
    state = None
    budget = None if store_steps is None else ATTEMPT_FACTOR * store_steps
    while recording.any():
        x = torch.as_tensor(obs, dtype=torch.float32, device=device)
        a_pi, state = actor.step(x, state)
        actions = _explore(a_pi.cpu().numpy(), explore_std, rng)
        guided = t < guide_steps
        _guide_flies(actions, guide, x, guided)
        obs, reward, terminated, truncated, info = env.step(actions)
        done = terminated | truncated
        final = np.where(done[:, None], info.get("final_obs", obs), obs) if done.any() else obs
        t += 1
        total += reward
        errors += np.nan_to_num(info["position_error"], nan=0.0, posinf=0.0)  # a NaN state
        result.env_steps += int(recording.sum())
        ended = writer.append(final, actions, reward, terminated, truncated, guided, recording)
        boot = None
        if truncated[ended].any():
            boot = _bootstrap_actions(actor, guide, final, state, t, guide_steps, device)
        for i in ended:
            ep = writer.finish(i, boot[i] if truncated[i] else None)
            keep = keep_episodes if store_steps is None else t[i] >= min_len
            _record(result, ep if keep else None, i, total[i], t[i], bool(terminated[i]),
                    errors[i] / t[i])  # fmt: skip
        if done.any():
            state = actor.reset_rows(state, torch.as_tensor(done, device=device))
            t[done], total[done], errors[done] = 0, 0.0, 0.0
        if episodes is not None:  # evaluation: one episode per drone
            recording &= ~done
        for i in np.flatnonzero(done & recording):
            writer.begin(i, obs[i])
        if store_steps is not None and (
            result.stored_steps >= store_steps or sum(result.lengths) >= budget
        ):
            break
    return result


def _check_args(env, guide, guide_steps, episodes, store_steps, explore_std, rng) -> None:
    if env.metadata.get("autoreset_mode") != AutoresetMode.SAME_STEP:
        raise ValueError("guided rollouts need a vector env with autoreset_mode SAME_STEP")
    if (episodes is None) == (store_steps is None):
        raise ValueError("give exactly one of episodes (evaluation) and store_steps (collection)")
    if episodes is not None and not 1 <= episodes <= env.num_envs:
        raise ValueError(f"episodes must be in [1, num_envs={env.num_envs}], got {episodes}")
    if guide_steps > 0 and guide is None:
        raise ValueError(f"guide_steps={guide_steps} needs a guide policy")
    if explore_std > 0 and rng is None:
        raise ValueError("exploration noise needs an rng")


def _explore(actions: np.ndarray, std: float, rng: np.random.Generator | None) -> np.ndarray:
    if std <= 0:
        return actions
    return np.clip(actions + rng.normal(0.0, std, actions.shape), -1.0, 1.0).astype(np.float32)


def _bootstrap_actions(actor, guide, final, state, t, guide_steps, device):
    """``a_T`` for every drone: the guide on ``x_T`` where it would still fly at ``T``, else
    the actor's next action from its current state (that state is not kept)."""
    x = torch.as_tensor(final, dtype=torch.float32, device=device)
    actions = actor.step(x, state)[0].cpu().numpy()
    _guide_flies(actions, guide, x, t < guide_steps)
    return actions


def _guide_flies(actions: np.ndarray, guide, x: torch.Tensor, guided: np.ndarray) -> None:
    """Overwrite, in place, the actions of the drones where ``guided`` with the guide's on
    their observations ``x``."""
    if guided.any():
        actions[guided] = guide(x[torch.as_tensor(guided, device=x.device)]).cpu().numpy()


def _record(result, kept, drone, ret, length, crashed, error) -> None:
    result.drones.append(int(drone))
    result.returns.append(float(ret))
    result.lengths.append(int(length))
    result.crashed.append(crashed)
    result.position_error.append(float(error))
    if kept is not None:
        result.episodes.append(kept)
