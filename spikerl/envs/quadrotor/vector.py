"""``QuadrotorVectorEnv``: N drones stepped at once on NumPy columns.

It runs the dynamics of :mod:`~spikerl.envs.quadrotor.core` on ``(N,)`` float64 columns, the
same functions and operation order as the single env, so drone ``i`` after
``reset(seed=s)`` reproduces a :class:`~spikerl.envs.quadrotor.env.QuadrotorEnv` reset with
``seed=s + i`` bit for bit, autoresets included. Each drone has its own generator.

Autoreset (Gymnasium >= 1.1, declared in ``metadata["autoreset_mode"]``):

- ``NEXT_STEP`` (default): the step after a drone terminated or truncated resets it; that
  step ignores its action and returns its first observation with reward 0 and both flags
  False (as calling ``reset()`` on a single env).
- ``SAME_STEP``: a drone that ends is reset within the same step; the observation returned is
  its new first one, the last one is in ``info["final_obs"]`` (rows masked by
  ``info["_final_obs"]``) and its info in ``info["final_info"]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv

from .core import (
    ARRAY,
    Physics,
    finite,
    outside,
    reward_terms,
    rk4_step,
    rotation,
    weighted_reward,
)
from .env import (
    ACTION_SPACE,
    QuadrotorEnv,
    _noise_scale,
    drone_physics,
    observation_space,
    sample_start,
    state_from_mapping,
)
from .params import QuadrotorError

__all__ = ["QuadrotorVectorEnv"]

_PHYSICS_FIELDS = ("mass", "c0", "c1", "c2", "motor_tau")


def _fields(physics) -> tuple[float, ...]:
    """The per-drone physics constants that the vector env keeps as columns."""
    return tuple(getattr(physics, name) for name in _PHYSICS_FIELDS)


class QuadrotorVectorEnv(VectorEnv):
    """``num_envs`` quadrotors; options as :class:`~spikerl.envs.quadrotor.env.QuadrotorEnv`."""

    def __init__(self, num_envs: int, autoreset_mode: str | AutoresetMode = "NextStep", **kwargs):
        if not isinstance(num_envs, int) or num_envs < 1:
            raise QuadrotorError(f"quadrotor num_envs: expected an integer >= 1, got {num_envs!r}")
        mode = AutoresetMode(autoreset_mode) if isinstance(autoreset_mode, str) else autoreset_mode
        if mode not in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP):
            raise QuadrotorError(
                f"quadrotor autoreset_mode: {mode} is not supported; choose NEXT_STEP or SAME_STEP"
            )
        limit = kwargs.pop("max_episode_steps", None)  # make_vec passes the spec's limit
        if limit is not None:
            kwargs.setdefault("max_steps", limit)
        self._template = QuadrotorEnv(**kwargs)  # validates the options once
        self.options = self._template.options
        self.num_envs = n = num_envs
        self.metadata = {"render_modes": [], "render_fps": 100, "autoreset_mode": mode}
        self.single_observation_space = observation_space(self.options)
        self.single_action_space = ACTION_SPACE
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, n)
        self.action_space = gym.vector.utils.batch_space(ACTION_SPACE, n)
        self._generators = [seeding.np_random(None)[0] for _ in range(n)]
        self._state = tuple(np.zeros(n) for _ in range(17))
        self._physics_columns = {name: np.zeros(n) for name in _PHYSICS_FIELDS}
        self._mass = np.full(n, self.options.params.mass)
        # the action history, float32 as observed (its entries are clipped actions, which the
        # single env also stores as they are and casts with the observation), as a ring: each
        # step overwrites the oldest row of 4 in place; the oldest row starts at _oldest
        width = 4 * self.options.history_length
        self._history = np.zeros((n, width), dtype=np.float32)
        self._oldest = 0
        self._steps = np.zeros(n, dtype=np.int64)
        self._needs_reset = np.zeros(n, dtype=bool)
        self._a_hover = self.options.action_hover
        self._nominal = _fields(drone_physics(self.options, {}))

    # -- curriculum: the same coefficients for every drone ------------------------------------
    @property
    def coefficients(self):
        return self._template.coefficients

    def set_curriculum(self, rho: float) -> None:
        self._template.set_curriculum(rho)

    def set_reward_coefficients(self, **coefficients: float) -> None:
        self._template.set_reward_coefficients(**coefficients)

    # -- reset -------------------------------------------------------------------------------
    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None):
        """Reset every drone; ``seed=s`` seeds drone i with ``s + i`` (a list: one each).

        ``options={"state": {...}}`` starts every drone from that explicit state (keys as the
        single env's option, nominal physics); a list of ``num_envs`` mappings gives one each.
        Nothing is drawn for an explicit start, and later autoresets draw as usual."""
        if seed is not None:
            seeds = seed if isinstance(seed, list) else [seed + i for i in range(self.num_envs)]
            self._generators = [seeding.np_random(s)[0] for s in seeds]
        every = np.arange(self.num_envs)
        self._reset_drones(every, self._explicit_starts(options))
        self._needs_reset[:] = False
        return self._observations(every), self._info(None, np.zeros(self.num_envs, bool))

    def _explicit_starts(self, options: dict[str, Any] | None) -> list | None:
        """``(state, {})`` per drone from ``options["state"]``, or None to draw the starts."""
        if not options or "state" not in options:
            return None
        given = options["state"]
        mappings = [given] * self.num_envs if isinstance(given, Mapping) else given
        if (
            not isinstance(mappings, list | tuple)
            or len(mappings) != self.num_envs
            or not all(isinstance(m, Mapping) for m in mappings)
        ):
            raise QuadrotorError(
                f"quadrotor reset state: expected one mapping or a list of {self.num_envs} "
                "mappings (one per drone)"
            )
        return [(state_from_mapping(m, self.options), {}) for m in mappings]

    def _reset_drones(self, idx: np.ndarray, draws: list | None = None) -> None:
        """New start states for drones ``idx``: ``draws`` (explicit ``(state, constants)``
        pairs) or drawn from their own generators (a Python loop over the few drones that
        reset, drawing each start as the single env does); the columns are then written once."""
        opt = self.options
        if draws is None:
            draws = [sample_start(self._generators[i], opt) for i in idx.tolist()]
        starts = np.array([start for start, _ in draws], dtype=np.float64).reshape(-1, 17)
        columns = [np.array(c) for c in self._state]
        for col, values in zip(columns, starts.T, strict=True):
            col[idx] = values
        self._state = tuple(columns)
        physics = np.array(
            [_fields(drone_physics(opt, drone)) if drone else self._nominal for _, drone in draws]
        ).reshape(-1, len(_PHYSICS_FIELDS))
        for name, values in zip(_PHYSICS_FIELDS, physics.T, strict=True):
            self._physics_columns[name][idx] = values
        self._mass[idx] = self._physics_columns["mass"][idx]
        self._history[idx] = np.tile(2.0 * starts[:, 13:17] - 1.0, self.options.history_length)
        self._steps[idx] = 0

    # -- step --------------------------------------------------------------------------------
    def step(self, actions: Any):
        a = np.asarray(actions, dtype=np.float64).reshape(self.num_envs, 4)
        if not np.all(np.isfinite(a)):
            raise ValueError("quadrotor actions must be finite")
        a = np.minimum(np.maximum(a, -1.0), 1.0)
        resetting = self._needs_reset.copy()
        a = self._with_action_noise(a, ~resetting)
        cols = tuple(a[:, j] for j in range(4))
        u_des = tuple((c + 1.0) / 2.0 for c in cols)
        self._state = state = rk4_step(self._state, u_des, self._physics(), ARRAY)
        self._steps += 1
        if self.options.history_length:  # the newest action replaces the oldest row
            self._history[:, self._oldest : self._oldest + 4] = a
            self._oldest = (self._oldest + 4) % self._history.shape[1]
        nonfinite = ~finite(state, ARRAY)
        terms = reward_terms(state, cols, self._a_hover, self.options.orientation_cost, ARRAY)
        terminated = nonfinite | outside(state, self.options.box_limits, ARRAY)
        truncated = ~terminated & (self._steps >= self.options.max_steps)
        reward = np.asarray(weighted_reward(terms, self.coefficients), dtype=np.float64)
        reward = np.where(nonfinite & ~np.isfinite(reward), 0.0, reward)
        return self._finish_step(
            resetting, reward, terminated, truncated, np.stack(terms, axis=1), nonfinite
        )

    def _finish_step(self, resetting, reward, terminated, truncated, terms, nonfinite):
        mode = self.metadata["autoreset_mode"]
        if mode == AutoresetMode.NEXT_STEP and resetting.any():
            idx = np.flatnonzero(resetting)
            self._reset_drones(idx)
            reward[idx], terminated[idx], truncated[idx] = 0.0, False, False
            terms[idx] = 0.0
            nonfinite[idx] = False
        every = np.arange(self.num_envs)
        obs = self._observations(every)
        info = self._info(terms, nonfinite)
        info["crashed"] = terminated.copy()
        done = terminated | truncated
        if mode == AutoresetMode.SAME_STEP and done.any():
            idx = np.flatnonzero(done)
            info["final_obs"], info["_final_obs"] = obs.copy(), done.copy()
            info["final_info"] = {k: v.copy() for k, v in info.items() if not k.startswith("final")}
            self._reset_drones(idx)
            obs[idx] = self._observations(idx)
        self._needs_reset = (
            done if mode == AutoresetMode.NEXT_STEP else np.zeros(self.num_envs, bool)
        )
        return obs, reward, terminated, truncated, info

    def _with_action_noise(self, a: np.ndarray, stepping: np.ndarray) -> np.ndarray:
        std = self.options.action_noise_std
        if std <= 0:
            return a
        for i in np.flatnonzero(stepping).tolist():
            a[i] = np.minimum(np.maximum(a[i] + self._generators[i].normal(0.0, std, 4), -1.0), 1.0)
        return a

    def _physics(self) -> Physics:
        c = self._physics_columns
        return Physics(c["mass"], c["c0"], c["c1"], c["c2"], c["motor_tau"], self.options.params)

    def _observations(self, idx: np.ndarray) -> np.ndarray:
        """float32 observations of drones ``idx``: the state columns (observation noise added
        in float64; entries not finite as float32 made finite, as in the single env), then the
        action history, oldest row first."""
        s = self._state
        cols = [*s[0:3], *rotation(*s[3:7]), *s[7:13]]
        every = len(idx) == self.num_envs
        obs = np.empty((len(idx), self.single_observation_space.shape[0]), dtype=np.float32)
        with np.errstate(over="ignore"):  # beyond float32's range: inf, made finite below
            if any(self.options.obs_noise):
                obs[:, :18] = self._noisy_state(cols, idx)
            else:  # each column cast straight into the observation
                for j, col in enumerate(cols):
                    obs[:, j] = col if every else col[idx]
        if not np.isfinite(obs[:, :18]).all():
            obs[:, :18] = np.nan_to_num(obs[:, :18])
        history = self._history if every else self._history[idx]
        split = obs.shape[1] - self._oldest  # oldest first: the ring from _oldest, then its start
        obs[:, 18:split] = history[:, self._oldest :]
        obs[:, split:] = history[:, : self._oldest]
        return obs

    def _noisy_state(self, cols: list, idx: np.ndarray) -> np.ndarray:
        """The float64 state observations of drones ``idx`` plus each drone's own noise."""
        state = np.stack([col[idx] for col in cols], axis=1)
        scale = _noise_scale(self.options.obs_noise)
        for row, i in enumerate(idx.tolist()):
            state[row] += self._generators[i].normal(0.0, 1.0, 18) * scale
        return state

    def _info(self, terms: np.ndarray | None, nonfinite: np.ndarray) -> dict[str, Any]:
        px, py, pz = self._state[0:3]
        info: dict[str, Any] = {
            "step": self._steps.copy(),
            "position_error": np.sqrt(px * px + py * py + pz * pz),
            "rotor_speeds": np.stack(self._state[13:17], axis=1),
            "reward_terms": terms if terms is not None else np.zeros((self.num_envs, 5)),
            "nonfinite": nonfinite,
        }
        if self.options.randomize_mass is not None:
            info["mass"] = self._mass.copy()
        return info
