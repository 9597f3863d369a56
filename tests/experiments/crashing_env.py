"""Pendulum variants that crash on purpose, for the sweep's retry tests.

Imported by a training child process through the id ``tests.experiments.crashing_env:<id>``.
``CrashOnce-v0`` raises at its 250th step unless ``$SPIKERL_TEST_MARKERS/<run seed>`` exists,
creating it first, so the first attempt of a run crashes and its retry succeeds.
``CrashAlways-v0`` raises at the 150th step of every instance, so even the first evaluation
fails and every attempt crashes.
"""

from __future__ import annotations

import os
from pathlib import Path

from gymnasium.envs.classic_control.pendulum import PendulumEnv
from gymnasium.envs.registration import register

MESSAGE = "deliberate crash for the sweep tests"


class _Crashing(PendulumEnv):
    crash_at = 0

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._steps = 0

    def should_crash(self) -> bool:
        return True

    def step(self, action):
        self._steps += 1
        if self._steps == self.crash_at and self.should_crash():
            raise RuntimeError(MESSAGE)
        return super().step(action)


class CrashOnce(_Crashing):
    crash_at = 250

    def should_crash(self) -> bool:
        marker = Path(os.environ["SPIKERL_TEST_MARKERS"]) / "crashed-once"
        if marker.exists():
            return False
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        return True


class CrashAlways(_Crashing):
    crash_at = 150


for name, cls in (("CrashOnce-v0", CrashOnce), ("CrashAlways-v0", CrashAlways)):
    register(id=name, entry_point=cls, max_episode_steps=200)
