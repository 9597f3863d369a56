"""Stable-Baselines3 TD3 with spikerl's ANN-TD3 settings, stepped like :class:`TrainLoop`.

Same networks (actor and twin critics 256-256, ReLU), batch 256, one gradient step per env
step, policy delay 2, target noise 0.2 clipped at 0.5, exploration noise N(0, 0.1), Adam 3e-4,
tau 0.005, gamma 0.99, uniform random actions for ``learning_starts`` steps. SB3 (the
``bench`` extra) is imported only here.
"""

from __future__ import annotations

import numpy as np

from ..envs import make_env
from ..errors import SpikerlError

__all__ = ["SB3TrainLoop", "sb3_available"]


def sb3_available() -> bool:
    try:
        import stable_baselines3  # noqa: F401
    except ImportError:
        return False
    return True


class SB3TrainLoop:
    """SB3 TD3 on ``env_id``; ``prefill`` runs the random warm-up, ``train(n)`` n steps."""

    def __init__(self, env_id: str, learning_starts: int, capacity: int, seed: int, device: str):
        try:
            from stable_baselines3 import TD3
            from stable_baselines3.common.noise import NormalActionNoise
        except ImportError as err:
            raise SpikerlError(
                "the SB3 comparison needs stable-baselines3: pip install 'spikerl[bench]'"
            ) from err
        env = make_env(env_id, seed=seed)
        act_dim = env.action_space.shape[0]
        self.model = TD3(
            "MlpPolicy",
            env,
            learning_rate=3e-4,
            buffer_size=capacity,
            learning_starts=learning_starts,
            batch_size=256,
            tau=0.005,
            gamma=0.99,
            train_freq=1,
            gradient_steps=1,
            policy_delay=2,
            target_policy_noise=0.2,
            target_noise_clip=0.5,
            action_noise=NormalActionNoise(np.zeros(act_dim), np.full(act_dim, 0.1)),
            policy_kwargs={"net_arch": [256, 256]},
            seed=seed,
            device=device,
            verbose=0,
        )
        self.learning_starts = learning_starts

    def prefill(self) -> None:
        self.model.learn(total_timesteps=self.learning_starts, progress_bar=False)

    def train(self, steps: int) -> None:
        self.model.learn(total_timesteps=steps, reset_num_timesteps=False, progress_bar=False)
