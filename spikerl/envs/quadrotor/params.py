"""Physical parameters and task options of ``spikerl/Quadrotor-v0`` (Crazyflie 2.1, L2F).

The constants are those of the Learning-to-Fly simulator's Crazyflie model (arXiv 2311.13081,
as pinned by arXiv 2510.24461's code); every field can be overridden, and a value that cannot
describe a drone (a non-positive mass, inertia, motor constant or time step, a non-finite
number, a box that excludes the start states) is refused at construction with a message
naming the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from ...errors import UsageError

__all__ = [
    "CURRICULUM_END",
    "CURRICULUM_START",
    "INITS",
    "L2F_V1_OBS_NOISE",
    "ORIENTATION_COSTS",
    "QuadrotorError",
    "QuadrotorParams",
    "RewardCoefficients",
    "TaskOptions",
]

INITS = ("90deg", "0deg", "180deg", "rest")
ORIENTATION_COSTS = ("qz", "qz_abs", "angle")
#: Observation noise std of the l2f < 2.0 build: position (m), rotation-matrix entry,
#: velocity (m/s), angular velocity (rad/s).
L2F_V1_OBS_NOISE = (0.05, 0.001, 0.1, 0.2)


class QuadrotorError(UsageError):
    """A quadrotor parameter or option is invalid; the message names it."""


def _finite(name: str, value: float) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise QuadrotorError(f"quadrotor {name}: expected a finite number, got {value!r}")


def _positive(name: str, value: float) -> None:
    _finite(name, value)
    if value <= 0:
        raise QuadrotorError(f"quadrotor {name}: must be > 0, got {value!r}")


def _range(name: str, value: tuple[float, float] | None, positive: bool = True) -> None:
    if value is None:
        return
    if len(value) != 2 or value[0] > value[1]:
        raise QuadrotorError(f"quadrotor {name}: expected (lo, hi) with lo <= hi, got {value!r}")
    for bound in value:
        (_positive if positive else _finite)(name, bound)


@dataclass(frozen=True)
class QuadrotorParams:
    """Crazyflie 2.1 constants (SI units). Rotor ``i`` sits at ``rotor_positions[i]`` (body
    frame, X layout), pushes along +z_body with thrust ``T(u) = c0 + c1 u + c2 u^2`` (N) at
    normalised speed ``u`` in [0, 1], and adds yaw torque ``torque_constant * d_i * T``."""

    mass: float = 0.027  # kg
    gravity: float = 9.81  # m/s^2, along -z
    inertia: tuple[float, float, float] = (1.029e-5, 1.105e-5, 2.005e-5)  # kg m^2, diagonal
    rotor_positions: tuple[tuple[float, float, float], ...] = (
        (0.028, -0.028, 0.0),
        (-0.028, -0.028, 0.0),
        (-0.028, 0.028, 0.0),
        (0.028, 0.028, 0.0),
    )
    thrust_coefficients: tuple[float, float, float] = (0.0213, -0.0112, 0.1201)  # N
    torque_constant: float = 4.665e-3  # m: yaw torque per newton of thrust (k_m)
    rotor_directions: tuple[float, float, float, float] = (-1.0, 1.0, -1.0, 1.0)
    motor_tau: float = 0.072  # s, first-order motor lag
    dt: float = 0.01  # s, one RK4 step per control step (100 Hz)
    hover_rotor_speed: float = 0.667  # L2F's nominal hover speed u_h (action 2 u_h - 1)

    def __post_init__(self) -> None:
        _positive("mass", self.mass)
        _finite("gravity", self.gravity)
        if self.gravity < 0:
            raise QuadrotorError(f"quadrotor gravity: must be >= 0, got {self.gravity!r}")
        if len(self.inertia) != 3:
            raise QuadrotorError(
                f"quadrotor inertia: expected 3 diagonal entries, got {self.inertia!r}"
            )
        for value in self.inertia:
            _positive("inertia", value)
        if len(self.rotor_positions) != 4 or any(len(r) != 3 for r in self.rotor_positions):
            raise QuadrotorError("quadrotor rotor_positions: expected 4 rotors of (x, y, z)")
        for rotor in self.rotor_positions:
            for value in rotor:
                _finite("rotor_positions", value)
        if len(self.thrust_coefficients) != 3:
            raise QuadrotorError("quadrotor thrust_coefficients: expected (c0, c1, c2)")
        for value in self.thrust_coefficients:
            _finite("thrust_coefficients", value)
        _finite("torque_constant", self.torque_constant)
        if len(self.rotor_directions) != 4:
            raise QuadrotorError("quadrotor rotor_directions: expected 4 signs")
        _positive("motor_tau", self.motor_tau)
        _positive("dt", self.dt)
        _finite("hover_rotor_speed", self.hover_rotor_speed)

    def thrust(self, u: float) -> float:
        """Thrust of one rotor (N) at normalised speed ``u``."""
        c0, c1, c2 = self.thrust_coefficients
        return c0 + c1 * u + c2 * (u * u)

    def hover_speed(self) -> float:
        """The exact hover root u* of ``4 T(u) = m g`` (0.6600 for the defaults)."""
        c0, c1, c2 = self.thrust_coefficients
        rhs = c0 - self.mass * self.gravity / 4
        if c2 == 0:
            return -rhs / c1
        return (-c1 + math.sqrt(c1 * c1 - 4 * c2 * rhs)) / (2 * c2)


@dataclass(frozen=True)
class RewardCoefficients:
    """``r = C_r - C_p |p|^2 - C_v |v|^2 - C_q e_q - C_a |a - a_h|^2 - C_w |w|^2``."""

    position: float = 1.0  # C_p
    velocity: float = 0.005  # C_v
    orientation: float = 0.25  # C_q
    action: float = 0.01  # C_a
    survival: float = 1.0  # C_r
    angular_velocity: float = 0.0  # C_w

    def __post_init__(self) -> None:
        for f in fields(self):
            _finite(f"reward coefficient {f.name}", getattr(self, f.name))


#: The paper's curriculum rows (rho = 0 and rho = 1; arXiv 2510.24461).
CURRICULUM_START = RewardCoefficients()
CURRICULUM_END = RewardCoefficients(position=2.0, velocity=0.2, action=0.03)


@dataclass(frozen=True)
class TaskOptions:
    """Observation, reward, termination and randomisation options (all documented in
    :mod:`spikerl.envs.quadrotor`)."""

    history_length: int = 32
    init: str = "90deg"
    orientation_cost: str = "qz"
    action_baseline: str = "nominal"  # a_h = 2 u_h - 1 = 0.334; "exact": 2 u* - 1 = 0.320
    angular_velocity_cost: float = 0.0  # C_w of both curriculum rows ("cw=1e-4" option)
    obs_noise: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    position_limit: float = 0.6  # m, |p_i| beyond it terminates
    velocity_limit: float = math.inf
    angular_velocity_limit: float = math.inf
    max_steps: int = 500
    randomize_mass: tuple[float, float] | None = None
    mass_scales_thrust: bool = False
    motor_tau_range: tuple[float, float] | None = None
    thrust_scale_range: tuple[float, float] | None = None
    action_noise_std: float = 0.0
    params: QuadrotorParams = field(default_factory=QuadrotorParams)

    def __post_init__(self) -> None:
        if not isinstance(self.history_length, int) or self.history_length < 0:
            raise QuadrotorError(
                f"quadrotor history_length: expected an integer >= 0, got {self.history_length!r}"
            )
        _choice("init", self.init, INITS)
        _choice("orientation_cost", self.orientation_cost, ORIENTATION_COSTS)
        _choice("action_baseline", self.action_baseline, ("nominal", "exact"))
        _finite("angular_velocity_cost", self.angular_velocity_cost)
        if len(self.obs_noise) != 4 or any(not math.isfinite(s) or s < 0 for s in self.obs_noise):
            raise QuadrotorError(
                f"quadrotor obs_noise: expected 4 finite stds >= 0, got {self.obs_noise!r}"
            )
        for name in ("position_limit", "velocity_limit", "angular_velocity_limit"):
            value = getattr(self, name)
            if not value > 0:
                raise QuadrotorError(f"quadrotor {name}: must be > 0, got {value!r}")
        start_box = 0.0 if self.init == "rest" else 0.5
        if self.position_limit <= start_box:
            raise QuadrotorError(
                f"quadrotor position_limit: {self.position_limit} m excludes start positions up "
                f"to {start_box} m of init {self.init!r}; choose a limit above {start_box}"
            )
        if not isinstance(self.max_steps, int) or self.max_steps < 1:
            raise QuadrotorError(
                f"quadrotor max_steps: expected an integer >= 1, got {self.max_steps!r}"
            )
        _range("randomize_mass", self.randomize_mass)
        _range("motor_tau_range", self.motor_tau_range)
        _range("thrust_scale_range", self.thrust_scale_range)
        _finite("action_noise_std", self.action_noise_std)
        if self.action_noise_std < 0:
            raise QuadrotorError(
                f"quadrotor action_noise_std: must be >= 0, got {self.action_noise_std!r}"
            )

    @property
    def action_hover(self) -> float:
        """The reward's action baseline a_h."""
        p = self.params
        u = p.hover_rotor_speed if self.action_baseline == "nominal" else p.hover_speed()
        return 2 * u - 1

    @property
    def box_limits(self) -> tuple[float, float, float]:
        """Termination limits: position (m), velocity (m/s), angular velocity (rad/s)."""
        return (self.position_limit, self.velocity_limit, self.angular_velocity_limit)

    @property
    def randomized(self) -> bool:
        return any(
            r is not None
            for r in (self.randomize_mass, self.motor_tau_range, self.thrust_scale_range)
        )


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise QuadrotorError(
            f"quadrotor {name}: {value!r} is not allowed; choose one of {list(allowed)}"
        )
