"""``scripts/quadrotor_crash_starts.py``: the starts with replaced rotor speeds keep everything
else of the drawn starts."""

from __future__ import annotations

import numpy as np
import pytest

from spikerl.envs.quadrotor import QuadrotorEnv

SCRIPT = "quadrotor_crash_starts"


def _columns(states: list[dict], key: str) -> np.ndarray:
    return np.array([state[key] for state in states])


@pytest.mark.parametrize(("kind", "lo", "hi"), [("low", 0.0, 0.5), ("high", 0.5, 1.0)])
def test_replaced_rotor_speeds_lie_in_their_range_and_the_rest_is_the_drawn_start(
    script, kind, lo, hi
):
    drawn = script.starts_with_rotor_speeds(50, 7, "drawn")
    replaced = script.starts_with_rotor_speeds(50, 7, kind)
    u = _columns(replaced, "rotor_speeds")
    assert u.min() >= lo and u.max() <= hi and np.unique(u).size == u.size
    for key in ("position", "quaternion", "velocity", "angular_velocity"):
        assert np.array_equal(_columns(drawn, key), _columns(replaced, key))


def test_hover_rotor_speeds(script):
    hover = QuadrotorEnv().options.params.hover_rotor_speed
    states = script.starts_with_rotor_speeds(4, 7, "hover")
    assert (_columns(states, "rotor_speeds") == hover).all()
