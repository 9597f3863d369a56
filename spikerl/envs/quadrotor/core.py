r"""Quadrotor dynamics, written once for Python floats and for NumPy columns.

Every function here takes the 17 state numbers as separate *columns* and uses only ``+ - * /``
and the ``sqrt``/``clip``/``arccos`` of an :class:`Ops` backend. With Python floats
(:data:`SCALAR`) one drone steps in pure Python, fast at N = 1; with ``(N,)`` float64 arrays
(:data:`ARRAY`) N drones step at once. The operations and their order are the same, and IEEE
arithmetic rounds each one the same way, so drone i of a batch follows a single env bit for
bit: sums over rotors are written out (``T1 + T2 + T3 + T4``), never ``sum`` or BLAS.

State ``x = (p, q, v, w, u)``: position (m, world, z up), unit quaternion ``(w, x, y, z)``
body to world, velocity (m/s, world), angular velocity (rad/s, body), normalised rotor speeds.

.. math::

    T_i &= c_0 + c_1 u_i + c_2 u_i^2, \qquad F = (0, 0, \textstyle\sum_i T_i)\ \text{(body)}\\
    \tau &= \big(\textstyle\sum_i y_i T_i,\ -\sum_i x_i T_i,\ k_m \sum_i d_i T_i\big)\\
    \dot p &= v, \quad \dot v = R(q) F / m - g e_z, \quad \dot q = \tfrac12 q \otimes (0, w)\\
    \dot w &= J^{-1} (\tau - w \times J w), \quad \dot u = (u_\mathrm{des} - u) / \tau_m

integrated by one classical RK4 step of ``dt``, then ``q <- q / |q|`` and ``u <- clip(u, 0, 1)``
(arXiv 2311.13081's L2F simulator; no drag, ground effect or rotor gyroscopic terms).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .params import QuadrotorError, QuadrotorParams, RewardCoefficients

__all__ = [
    "ARRAY",
    "SCALAR",
    "Ops",
    "Physics",
    "finite",
    "outside",
    "reward_terms",
    "rk4_step",
    "rotation",
]

Column = Any  # a float, or an (N,) float64 array
State = tuple  # 17 columns: px py pz qw qx qy qz vx vy vz wx wy wz u1 u2 u3 u4


@dataclass(frozen=True)
class Ops:
    """The few non-arithmetic operations, for one numeric backend."""

    sqrt: Callable[[Column], Column]
    clip: Callable[[Column, float, float], Column]
    arccos: Callable[[Column], Column]
    absolute: Callable[[Column], Column]
    isfinite: Callable[[Column], Column]


def _clip_scalar(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


def _arccos_scalar(x: float) -> float:
    # numpy's arccos for both backends: the libm and SIMD versions may differ in the last bit
    return float(np.arccos(np.array([x]))[0])


def _clip_array(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.minimum(np.maximum(x, lo), hi)


SCALAR = Ops(math.sqrt, _clip_scalar, _arccos_scalar, abs, math.isfinite)
ARRAY = Ops(np.sqrt, _clip_array, np.arccos, np.abs, np.isfinite)


@dataclass(frozen=True)
class Physics:
    """Per-drone physical constants as columns (floats, or arrays when randomised)."""

    mass: Column
    c0: Column
    c1: Column
    c2: Column
    motor_tau: Column
    params: QuadrotorParams

    @classmethod
    def nominal(cls, params: QuadrotorParams) -> Physics:
        c0, c1, c2 = params.thrust_coefficients
        return cls(params.mass, c0, c1, c2, params.motor_tau, params)


def _derivative(s: State, u_des: tuple, ph: Physics) -> State:
    """``dx/dt`` of the 17 columns (module docstring)."""
    _, _, _, qw, qx, qy, qz, vx, vy, vz, wx, wy, wz, u1, u2, u3, u4 = s
    prm = ph.params
    c0, c1, c2 = ph.c0, ph.c1, ph.c2
    t1 = c0 + c1 * u1 + c2 * (u1 * u1)
    t2 = c0 + c1 * u2 + c2 * (u2 * u2)
    t3 = c0 + c1 * u3 + c2 * (u3 * u3)
    t4 = c0 + c1 * u4 + c2 * (u4 * u4)
    (x1, y1, _), (x2, y2, _), (x3, y3, _), (x4, y4, _) = prm.rotor_positions
    d1, d2, d3, d4 = prm.rotor_directions
    jx, jy, jz = prm.inertia
    tau_x = y1 * t1 + y2 * t2 + y3 * t3 + y4 * t4
    tau_y = -(x1 * t1 + x2 * t2 + x3 * t3 + x4 * t4)
    tau_z = prm.torque_constant * (d1 * t1 + d2 * t2 + d3 * t3 + d4 * t4)
    accel = (t1 + t2 + t3 + t4) / ph.mass  # thrust along R(q) e_z
    dvx = 2.0 * (qx * qz + qw * qy) * accel
    dvy = 2.0 * (qy * qz - qw * qx) * accel
    dvz = (1.0 - 2.0 * (qx * qx + qy * qy)) * accel - prm.gravity
    dqw = 0.5 * (-qx * wx - qy * wy - qz * wz)
    dqx = 0.5 * (qw * wx + qy * wz - qz * wy)
    dqy = 0.5 * (qw * wy - qx * wz + qz * wx)
    dqz = 0.5 * (qw * wz + qx * wy - qy * wx)
    hx, hy, hz = jx * wx, jy * wy, jz * wz  # angular momentum J w
    dwx = (tau_x - (wy * hz - wz * hy)) / jx
    dwy = (tau_y - (wz * hx - wx * hz)) / jy
    dwz = (tau_z - (wx * hy - wy * hx)) / jz
    tau_m = ph.motor_tau
    ud1, ud2, ud3, ud4 = u_des
    du1, du2, du3, du4 = (
        (ud1 - u1) / tau_m,
        (ud2 - u2) / tau_m,
        (ud3 - u3) / tau_m,
        (ud4 - u4) / tau_m,
    )
    return (vx, vy, vz, dqw, dqx, dqy, dqz, dvx, dvy, dvz, dwx, dwy, dwz, du1, du2, du3, du4)


def _axpy(s: State, h: float, k: State) -> State:
    return tuple([x + h * dx for x, dx in zip(s, k, strict=True)])


def rk4_step(s: State, u_des: tuple, ph: Physics, ops: Ops) -> State:
    """One RK4 step of ``dt`` with the rotor setpoint held; then unit q and u in [0, 1]."""
    dt = ph.params.dt
    k1 = _derivative(s, u_des, ph)
    k2 = _derivative(_axpy(s, 0.5 * dt, k1), u_des, ph)
    k3 = _derivative(_axpy(s, 0.5 * dt, k2), u_des, ph)
    k4 = _derivative(_axpy(s, dt, k3), u_des, ph)
    sixth = dt / 6.0
    out = [
        x + sixth * (a + 2.0 * b + 2.0 * c + d)
        for x, a, b, c, d in zip(s, k1, k2, k3, k4, strict=True)
    ]
    qw, qx, qy, qz = out[3:7]
    norm = ops.sqrt(qw * qw + qx * qx + qy * qy + qz * qz)
    out[3:7] = qw / norm, qx / norm, qy / norm, qz / norm
    out[13:17] = [ops.clip(u, 0.0, 1.0) for u in out[13:17]]
    return tuple(out)


def finite(s: State, ops: Ops) -> Column:
    """True where every state entry is finite (a NaN or inf in any entry makes their sum
    non-finite; one check per drone instead of 17)."""
    total = s[0]
    for x in s[1:]:
        total = total + x
    return ops.isfinite(total)


def outside(s: State, limits: tuple[float, float, float], ops: Ops) -> Column:
    """True where the drone left the box: any ``|p_i|`` above the position limit (m), or any
    ``|v_i|`` (m/s) or ``|w_i|`` (rad/s) above its limit (``limits`` in that order; inf = off)."""
    out: Column = False
    for cols, limit in zip((s[0:3], s[7:10], s[10:13]), limits, strict=True):
        for col in cols:
            out = out | (ops.absolute(col) > limit)
    return out


def rotation(qw: Column, qx: Column, qy: Column, qz: Column) -> tuple:
    """The 9 entries of R(q), body to world, row-major."""
    return (
        1.0 - 2.0 * (qy * qy + qz * qz),
        2.0 * (qx * qy - qw * qz),
        2.0 * (qx * qz + qw * qy),
        2.0 * (qx * qy + qw * qz),
        1.0 - 2.0 * (qx * qx + qz * qz),
        2.0 * (qy * qz - qw * qx),
        2.0 * (qx * qz - qw * qy),
        2.0 * (qy * qz + qw * qx),
        1.0 - 2.0 * (qx * qx + qy * qy),
    )


def orientation_error(qw: Column, qz: Column, kind: str, ops: Ops) -> Column:
    """``e_q``: ``qz`` = 2 acos(clip(1 - qz^2, -1, 1)) (the reference wrapper), ``qz_abs`` =
    2 acos(1 - |qz|) (L2F's C++), ``angle`` = 2 acos(min(1, |qw|)) (total rotation angle)."""
    if kind == "qz":
        return 2.0 * ops.arccos(ops.clip(1.0 - qz * qz, -1.0, 1.0))
    if kind == "qz_abs":
        return 2.0 * ops.arccos(ops.clip(1.0 - ops.absolute(qz), -1.0, 1.0))
    return 2.0 * ops.arccos(ops.clip(ops.absolute(qw), -1.0, 1.0))


def reward_terms(s: State, action: tuple, a_hover: float, kind: str, ops: Ops) -> tuple:
    """The unweighted terms ``(|p|^2, |v|^2, e_q, |a - a_h|^2, |w|^2)`` of the new state."""
    px, py, pz, qw, _, _, qz, vx, vy, vz, wx, wy, wz = s[:13]
    a1, a2, a3, a4 = (a - a_hover for a in action)
    return (
        px * px + py * py + pz * pz,
        vx * vx + vy * vy + vz * vz,
        orientation_error(qw, qz, kind, ops),
        a1 * a1 + a2 * a2 + a3 * a3 + a4 * a4,
        wx * wx + wy * wy + wz * wz,
    )


def weighted_reward(terms: tuple, c: RewardCoefficients) -> Column:
    """``C_r - C_p |p|^2 - C_v |v|^2 - C_q e_q - C_a |a - a_h|^2 - C_w |w|^2``."""
    pos, vel, ori, act, ang = terms
    return (
        c.survival
        - c.position * pos
        - c.velocity * vel
        - c.orientation * ori
        - c.action * act
        - c.angular_velocity * ang
    )


def curriculum(rho: float, start: RewardCoefficients, end: RewardCoefficients, cw: float):
    """The linear schedule ``C(rho) = C_start + rho (C_end - C_start)``, with ``C_w = cw``."""
    if not (isinstance(rho, int | float) and 0.0 <= rho <= 1.0):
        raise QuadrotorError(f"quadrotor curriculum rho: expected a number in [0, 1], got {rho!r}")
    mix = {
        name: getattr(start, name) + rho * (getattr(end, name) - getattr(start, name))
        for name in ("position", "velocity", "orientation", "action", "survival")
    }
    return RewardCoefficients(**mix, angular_velocity=cw)
