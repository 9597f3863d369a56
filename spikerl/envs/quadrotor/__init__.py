"""``spikerl/Quadrotor-v0``: a Crazyflie-2.1-like quadrotor that flies to and holds a position.

A pure-NumPy re-implementation of the Learning-to-Fly simulator's Crazyflie model (arXiv
2311.13081) with the task of arXiv 2510.24461: 100 Hz RK4 dynamics with first-order motor lag,
the ``init_90_deg`` start distribution, an 18-d state observation plus a 32-step action history
(146-d, the privileged observation of guide and critic), a curriculum-weighted reward, and
termination outside a 0.6 m box. ``gymnasium.make("spikerl/Quadrotor-v0")`` gives one drone;
``gymnasium.make_vec("spikerl/Quadrotor-v0", num_envs=N, vectorization_mode="vector_entry_point")``
steps N drones at once, bit-identical to N single envs seeded ``s + i``.
"""

from .env import QuadrotorEnv, sample_start
from .params import (
    CURRICULUM_END,
    CURRICULUM_START,
    QuadrotorError,
    QuadrotorParams,
    RewardCoefficients,
    TaskOptions,
)
from .vector import QuadrotorVectorEnv

__all__ = [
    "CURRICULUM_END",
    "CURRICULUM_START",
    "ENV_ID",
    "QuadrotorEnv",
    "QuadrotorError",
    "QuadrotorParams",
    "QuadrotorVectorEnv",
    "RewardCoefficients",
    "TaskOptions",
    "sample_start",
]

ENV_ID = "spikerl/Quadrotor-v0"
