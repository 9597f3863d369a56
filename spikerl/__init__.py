"""spikerl: spiking neural network policies for continuous-control reinforcement learning.

Importing the package registers its Gymnasium environments (``spikerl/Quadrotor-v0``); the
environment code itself loads only when an env is made. Without Gymnasium installed (a
deployment host running :mod:`spikerl.runtime` on NumPy alone) nothing is registered.

Subpackages: :mod:`spikerl.snn` (neurons, surrogates, coding, energy), :mod:`spikerl.nets`
(actors, critics, :class:`~spikerl.nets.SpikingNetwork`), :mod:`spikerl.algos` (TD3, SAC,
sequence TD3+BC), :mod:`spikerl.buffers`, :mod:`spikerl.envs`, :mod:`spikerl.convert`,
:mod:`spikerl.experiments` (configs, training runs, evaluation, sweeps, reports),
:mod:`spikerl.export` and :mod:`spikerl.runtime` (deployment), :mod:`spikerl.bench`.
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("spikerl")
except _metadata.PackageNotFoundError:  # run from a source tree that is not installed
    __version__ = "unknown"


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
