"""spikerl: spiking neural network policies for continuous-control reinforcement learning.

Importing the package registers its Gymnasium environments (``spikerl/Quadrotor-v0``); the
environment code itself loads only when an env is made. Without Gymnasium installed (a
deployment host running :mod:`spikerl.runtime` on NumPy alone) nothing is registered.
"""


def _register_envs() -> None:
    try:
        import gymnasium as _gym
    except ImportError:
        return
    if "spikerl/Quadrotor-v0" in _gym.envs.registry:
        return
    _gym.register(
        id="spikerl/Quadrotor-v0",
        entry_point="spikerl.envs.quadrotor.env:QuadrotorEnv",
        vector_entry_point="spikerl.envs.quadrotor.vector:QuadrotorVectorEnv",
        max_episode_steps=500,
        kwargs={"history_length": 32},
    )


_register_envs()
