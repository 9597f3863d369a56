"""``QuadrotorEnv``: one drone, stepped in pure Python floats (fast at N = 1).

The dynamics are :mod:`~spikerl.envs.quadrotor.core` on the :data:`~.core.SCALAR` backend;
the vector env runs the same functions on NumPy columns. Start states are drawn by
:func:`sample_start`, shared by both, from the drone's own generator in a fixed order.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import gymnasium as gym
import numpy as np

from .core import (
    SCALAR,
    Physics,
    curriculum,
    finite,
    outside,
    reward_terms,
    rk4_step,
    rotation,
    weighted_reward,
)
from .params import (
    CURRICULUM_END,
    CURRICULUM_START,
    L2F_V1_OBS_NOISE,
    QuadrotorError,
    QuadrotorParams,
    RewardCoefficients,
    TaskOptions,
)

__all__ = ["QuadrotorEnv", "make_options", "sample_start"]

STATE_KEYS = ("position", "quaternion", "velocity", "angular_velocity", "rotor_speeds")
MAX_TILT_COS = math.cos(math.pi / 4)  # total rotation angle 2 acos|q_w| <= 90 degrees


def make_options(kwargs: dict[str, Any]) -> TaskOptions:
    """:class:`TaskOptions` from env kwargs; ``params`` may be a mapping of overrides."""
    kwargs = dict(kwargs)
    params = kwargs.pop("params", None)
    if isinstance(params, dict):
        kwargs["params"] = _build(QuadrotorParams, params, "params.")
    elif params is not None:
        kwargs["params"] = params
    if kwargs.get("obs_noise") == "l2f_v1":
        kwargs["obs_noise"] = L2F_V1_OBS_NOISE
    return _build(TaskOptions, kwargs, "")


def _build(cls, kwargs: dict[str, Any], prefix: str):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(kwargs) - names)
    if unknown:
        raise QuadrotorError(
            f"quadrotor: unknown option '{prefix}{unknown[0]}'; allowed: {sorted(names)}"
        )
    values = {k: tuple(map(tuple, v)) if k == "rotor_positions" else v for k, v in kwargs.items()}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return cls(**values)


SHOEMAKE_BATCH = 8  # candidate attitudes per draw; about 18% of uniform rotations pass 90 deg


def _shoemake(u0: float, u1: float, u2: float) -> tuple[float, float, float, float]:
    """A uniformly random unit quaternion (w, x, y, z) from three uniforms (Shoemake 1992)."""
    a, b = math.sqrt(1.0 - u0), math.sqrt(u0)
    angle2, angle3 = 2 * math.pi * u1, 2 * math.pi * u2
    return b * math.cos(angle3), a * math.sin(angle2), a * math.cos(angle2), b * math.sin(angle3)


def _start_attitude(rng: np.random.Generator, init: str) -> tuple[float, ...]:
    """Identity (``0deg``), any attitude (``180deg``), or a uniform one re-drawn until its
    total rotation angle ``2 acos|q_w|`` is at most 90 degrees (``90deg``; candidates are drawn
    :data:`SHOEMAKE_BATCH` at a time and the first that passes is taken).

    Scalar ``math`` on Python floats, so a start depends only on the drone's generator, never
    on how many drones reset together (NumPy's vector kernels may round differently by array
    length)."""
    if init == "0deg":
        return (1.0, 0.0, 0.0, 0.0)
    if init == "180deg":
        return _shoemake(*rng.random(3).tolist())
    while True:
        for u0, u1, u2 in rng.random((SHOEMAKE_BATCH, 3)).tolist():
            if abs(math.sqrt(u0) * math.cos(2 * math.pi * u2)) >= MAX_TILT_COS:
                return _shoemake(u0, u1, u2)


def sample_start(rng: np.random.Generator, opt: TaskOptions) -> tuple[tuple, dict[str, float]]:
    """A start state (17 floats) and the drone's randomised constants, drawn in a fixed order
    (L2F ``init_90_deg``): 14 uniforms (guidance coin, position, velocity, angular velocity,
    rotor speeds), then the attitude unless it is a guidance start, then mass, motor time
    constant and thrust scale where randomised. With probability 0.1 (always for ``rest``)
    the drone starts at the target, level and at rest; otherwise p ~ U[-0.5, 0.5]^3 m,
    v ~ U[-1, 1]^3 m/s, w ~ U[-1, 1]^3 rad/s. Rotor speeds are U[0, 1]^4 in both cases
    (``rest``: u_h)."""
    prm = opt.params
    d = rng.random(14).tolist()
    if opt.init == "rest" or d[0] < 0.1:  # "guidance" start at the target, at rest
        pvw, q = [0.0] * 9, (1.0, 0.0, 0.0, 0.0)
    else:
        pvw = [x - 0.5 for x in d[1:4]] + [2.0 * x - 1.0 for x in d[4:10]]
        q = _start_attitude(rng, opt.init)
    u = (prm.hover_rotor_speed,) * 4 if opt.init == "rest" else tuple(d[10:14])
    drone = {}
    if opt.randomize_mass is not None:
        drone["mass"] = float(rng.uniform(*opt.randomize_mass))
    if opt.motor_tau_range is not None:
        drone["motor_tau"] = float(rng.uniform(*opt.motor_tau_range))
    if opt.thrust_scale_range is not None:
        drone["thrust_scale"] = float(rng.uniform(*opt.thrust_scale_range))
    return (*pvw[0:3], *q, *pvw[3:9], *u), drone


def drone_physics(opt: TaskOptions, drone: dict[str, float]) -> Physics:
    """The constants of one drone: nominal, or randomised mass, motor lag and thrust scale
    (``mass_scales_thrust`` scales c0..c2 by m / m_nominal, keeping thrust-to-weight)."""
    prm = opt.params
    mass = drone.get("mass", prm.mass)
    scale = drone.get("thrust_scale", 1.0)
    if opt.mass_scales_thrust:
        scale *= mass / prm.mass
    c0, c1, c2 = (c * scale for c in prm.thrust_coefficients)
    return Physics(mass, c0, c1, c2, drone.get("motor_tau", prm.motor_tau), prm)


def state_from_mapping(state: dict[str, Any], opt: TaskOptions) -> tuple:
    """``reset(options={"state": {...}})``: explicit position, quaternion (normalised),
    velocity, angular velocity and rotor speeds; missing entries are zero / identity / u_h."""
    unknown = sorted(set(state) - set(STATE_KEYS))
    if unknown:
        raise QuadrotorError(
            f"quadrotor state: unknown key {unknown[0]!r}; allowed {list(STATE_KEYS)}"
        )
    hover = opt.params.hover_rotor_speed
    defaults = {
        "position": (0.0,) * 3,
        "quaternion": (1.0, 0.0, 0.0, 0.0),
        "velocity": (0.0,) * 3,
        "angular_velocity": (0.0,) * 3,
        "rotor_speeds": (hover,) * 4,
    }
    values = []
    for key, default in defaults.items():
        expected = f"quadrotor state {key}: expected {len(default)} finite numbers"
        try:
            entry = tuple(float(x) for x in np.ravel(np.asarray(state.get(key, default), float)))
        except (TypeError, ValueError):
            raise QuadrotorError(f"{expected}, got {state.get(key)!r}") from None
        if len(entry) != len(default) or not all(map(math.isfinite, entry)):
            raise QuadrotorError(expected)
        values.append(entry)
    qw, qx, qy, qz = values[1]
    norm = math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz)
    if norm == 0:
        raise QuadrotorError("quadrotor state quaternion: must not be zero")
    values[1] = (qw / norm, qx / norm, qy / norm, qz / norm)
    return tuple(x for entry in values for x in entry)


def state_to_mapping(state: tuple | np.ndarray) -> dict[str, list[float]]:
    """The 17 state numbers as the mapping of ``reset(options={"state": ...})`` (m, unit
    quaternion w x y z, m/s, rad/s, normalised rotor speeds)."""
    values = [float(x) for x in np.ravel(state)]
    if len(values) != 17:
        raise QuadrotorError(f"quadrotor state: expected 17 numbers, got {len(values)}")
    bounds = (0, 3, 7, 10, 13, 17)
    return {
        key: values[lo:hi] for key, lo, hi in zip(STATE_KEYS, bounds[:-1], bounds[1:], strict=True)
    }


def observation_space(opt: TaskOptions) -> gym.spaces.Box:
    return gym.spaces.Box(-np.inf, np.inf, (18 + 4 * opt.history_length,), np.float32)


ACTION_SPACE = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)


class QuadrotorEnv(gym.Env):
    """A Crazyflie-like quadrotor that flies to and holds the origin (``spikerl/Quadrotor-v0``).

    Observation (float32, ``18 + 4 H``): position (m; also the error to the target), R(q)
    row-major, velocity (m/s), angular velocity (rad/s), then the last ``H`` executed actions,
    oldest first. Action: 4 rotor commands in [-1, 1], rotor setpoint ``(a + 1) / 2``.
    Reward: ``C_r - C_p |p|^2 - C_v |v|^2 - C_q e_q - C_a |a - a_h|^2 - C_w |w|^2``, at most 1
    per step; the trainer moves the curriculum with :meth:`set_curriculum`. Terminates when
    any ``|p_i|`` exceeds ``position_limit`` (0.6 m) or the state is not finite; truncates at
    ``max_steps`` (500). Options: :class:`~spikerl.envs.quadrotor.params.TaskOptions`.
    """

    #: ``eval_info``: what evaluations report beside the return (``spikerl evaluate``,
    #: metrics.csv): mean distance to the target (m) and whether the episode crashed.
    metadata = {
        "render_modes": [],
        "render_fps": 100,
        "trajectory_obs": (0, 3),  # position (m) relative to the target: evaluate --video
        "eval_info": {
            "position_error": ("mean", "position error (m)"),
            "crashed": ("last", "crash rate"),
        },
    }

    def __init__(self, render_mode: str | None = None, **kwargs: Any) -> None:
        if render_mode is not None:
            raise QuadrotorError(
                f"quadrotor render_mode: {render_mode!r} is not available (the env draws no "
                "frames); `spikerl evaluate RUN --video DIR` plots flown trajectories instead"
            )
        self.render_mode = None
        self.options = make_options(kwargs)
        self.observation_space = observation_space(self.options)
        self.action_space = ACTION_SPACE
        self.coefficients = CURRICULUM_START
        self.set_curriculum(0.0)
        self._physics = drone_physics(self.options, {})
        self._drone: dict[str, float] = {}
        self._state: tuple = ()
        self._history: list[float] = []
        self._steps = 0
        self._a_hover = self.options.action_hover

    # -- curriculum ------------------------------------------------------------------------
    def set_curriculum(self, rho: float) -> None:
        """Reward coefficients at curriculum progress ``rho`` in [0, 1] (linear schedule)."""
        self.coefficients = curriculum(
            rho, CURRICULUM_START, CURRICULUM_END, self.options.angular_velocity_cost
        )

    def set_reward_coefficients(self, **coefficients: float) -> None:
        """Set single coefficients (``position``, ``velocity``, ``orientation``, ``action``,
        ``survival``, ``angular_velocity``); validated, the others kept."""
        try:
            self.coefficients = dataclasses.replace(self.coefficients, **coefficients)
        except TypeError:
            allowed = [f.name for f in dataclasses.fields(RewardCoefficients)]
            raise QuadrotorError(
                f"quadrotor reward coefficients: unknown name in {sorted(coefficients)}; "
                f"allowed {allowed}"
            ) from None

    # -- gymnasium API -----------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if options and "state" in options:
            self._state, self._drone = state_from_mapping(options["state"], self.options), {}
        else:
            self._state, self._drone = sample_start(self.np_random, self.options)
        self._physics = drone_physics(self.options, self._drone)
        self._history = [2.0 * u - 1.0 for u in self._state[13:17]] * self.options.history_length
        self._steps = 0
        return self._observation(), self._info(None)

    def step(self, action: Any):
        a = self._executed_action(action)
        u_des = tuple((x + 1.0) / 2.0 for x in a)
        self._state = state = rk4_step(self._state, u_des, self._physics, SCALAR)
        self._steps += 1
        if self.options.history_length:
            self._history = self._history[4:] + list(a)
        nonfinite = not finite(state, SCALAR)
        terms = reward_terms(state, a, self._a_hover, self.options.orientation_cost, SCALAR)
        terminated = nonfinite or outside(state, self.options.box_limits, SCALAR)
        truncated = not terminated and self._steps >= self.options.max_steps
        reward = float(weighted_reward(terms, self.coefficients))
        info = self._info(terms)
        info["crashed"] = terminated
        if nonfinite:
            info["nonfinite"] = True
            reward = 0.0 if not math.isfinite(reward) else reward
        return self._observation(), reward, terminated, truncated, info

    # -- snapshots (exact resume of a run mid-episode) ------------------------------------
    def get_state(self) -> dict[str, Any]:
        """Plain data: the 17 state numbers, action history, step count, randomised
        constants and reward coefficients (the generator is saved by the caller)."""
        return {
            "state": list(self._state),
            "history": list(self._history),
            "steps": self._steps,
            "drone": dict(self._drone),
            "coefficients": dataclasses.asdict(self.coefficients),
        }

    def set_state(self, snapshot: dict[str, Any]) -> None:
        """Restore :meth:`get_state`'s snapshot."""
        self._state = tuple(float(x) for x in snapshot["state"])
        self._history = [float(x) for x in snapshot["history"]]
        self._steps = int(snapshot["steps"])
        self._drone = dict(snapshot["drone"])
        self._physics = drone_physics(self.options, self._drone)
        self.coefficients = RewardCoefficients(**snapshot["coefficients"])

    # -- pieces ------------------------------------------------------------------------------
    def _executed_action(self, action: Any) -> tuple[float, ...]:
        a = np.asarray(action, dtype=np.float64).reshape(4)
        if not np.all(np.isfinite(a)):
            raise ValueError(f"quadrotor action must be finite, got {a.tolist()}")
        clipped = [(-1.0 if x < -1.0 else 1.0 if x > 1.0 else x) for x in a.tolist()]
        if self.options.action_noise_std > 0:
            noise = self.np_random.normal(0.0, self.options.action_noise_std, 4)
            clipped = [
                min(1.0, max(-1.0, x + n)) for x, n in zip(clipped, noise.tolist(), strict=True)
            ]
        return tuple(clipped)

    def _observation(self) -> np.ndarray:
        """float32 observation; entries that are not finite as float32 (a NaN or inf state, or
        beyond float32's range) become finite numbers (``nan_to_num``)."""
        s = self._state
        values = [*s[0:3], *rotation(*s[3:7]), *s[7:13], *self._history]
        obs = np.array(values, dtype=np.float64)
        noise = self.options.obs_noise
        if any(noise):
            obs[:18] += self.np_random.normal(0.0, 1.0, 18) * _noise_scale(noise)
        with np.errstate(over="ignore"):  # beyond float32's range: inf, made finite below
            obs = obs.astype(np.float32)
        return obs if np.isfinite(obs).all() else np.nan_to_num(obs)

    def _info(self, terms: tuple | None) -> dict[str, Any]:
        s = self._state
        info: dict[str, Any] = {
            "step": self._steps,
            "position_error": math.sqrt(s[0] * s[0] + s[1] * s[1] + s[2] * s[2]),
            "rotor_speeds": np.array(self._state[13:17]),
            "reward_terms": np.array(terms if terms is not None else (0.0,) * 5),
        }
        if "mass" in self._drone:
            info["mass"] = self._drone["mass"]
        return info


def _noise_scale(noise: tuple[float, float, float, float]) -> np.ndarray:
    """Per-entry std of the 18 state observations: position, R, velocity, angular velocity."""
    sp, sr, sv, sw = noise
    return np.array([sp] * 3 + [sr] * 9 + [sv] * 3 + [sw] * 3)
