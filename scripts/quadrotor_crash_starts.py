"""Where do quadrotor guides crash? Flies each guide from the same N start states (drone i of a
vector env reset with ``--seed``, one episode each, deterministic) and prints its return and
crash rate, the crash rate by start tilt and by start vertical velocity, the length of the
crashed episodes, and the share of starts on which every guide crashes::

    .venv/bin/python scripts/quadrotor_crash_starts.py builtin-v1 builtin-v2 --starts 2000

``--rotor-speeds`` replaces the drawn start rotor speeds (the spec's U[0, 1]) on the same
starts: ``low`` draws U[0, 0.5] (below hover, as we read L2F's ``init_90_deg``), ``high``
U[0.5, 1], ``hover`` sets all four to the hover speed.

A guide is a shipped name (``builtin-v1``, ``builtin-v2``) or a checkpoint of an ANN actor on
the 146-d observation (``runs/<guide run>/best.pt``, ``.../policies/step-<N>.pt``).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from gymnasium.utils import seeding

from spikerl.envs.quadrotor import TaskOptions
from spikerl.envs.quadrotor.env import sample_start, state_to_mapping
from spikerl.envs.quadrotor.vector import QuadrotorVectorEnv
from spikerl.experiments.sequence_run import load_guide

TILT_BINS = ((0, 30), (30, 60), (60, 75), (75, 91))  # degrees of the body z-axis from vertical
VZ_BINS = ((-1.0, -0.5), (-0.5, 0.0), (0.0, 0.5), (0.5, 1.01))  # m/s
ROTOR_SPEEDS = ("drawn", "low", "high", "hover")
OPTIONS = TaskOptions()  # the env's defaults, which the census flies


def drawn_start(seed: int) -> np.ndarray:
    """The 17 state numbers that an env reset with ``seed`` starts from."""
    return np.array(sample_start(seeding.np_random(seed)[0], OPTIONS)[0])


def starts_with_rotor_speeds(starts: int, seed: int, rotor_speeds: str) -> list[dict]:
    """The drawn starts of drones ``seed + i`` as explicit states, rotor speeds replaced."""
    hover = OPTIONS.params.hover_rotor_speed
    replace = np.random.default_rng(seed)
    states = []
    for i in range(starts):
        start = drawn_start(seed + i)
        if rotor_speeds == "low":
            start[13:17] = replace.uniform(0.0, 0.5, 4)
        elif rotor_speeds == "high":
            start[13:17] = replace.uniform(0.5, 1.0, 4)
        elif rotor_speeds == "hover":
            start[13:17] = hover
        states.append(state_to_mapping(start))
    return states


def fly(
    guide: str, starts: int, seed: int, rho: float, rotor_speeds: str = "drawn"
) -> dict[str, np.ndarray]:
    """One episode from each start: returns, crash flags, lengths and the start features."""
    env = QuadrotorVectorEnv(starts, autoreset_mode="SameStep")
    env.set_curriculum(rho)
    if rotor_speeds == "drawn":
        obs, _ = env.reset(seed=seed)
    else:
        explicit = starts_with_rotor_speeds(starts, seed, rotor_speeds)
        obs, _ = env.reset(seed=seed, options={"state": explicit})
    policy = load_guide(guide, obs.shape[1], 4, torch.device("cpu"))
    tilt = np.degrees(np.arccos(np.clip(obs[:, 11], -1.0, 1.0)))  # R[2, 2], row-major at 3:12
    vz = obs[:, 14].copy()
    done, crashed = np.zeros(starts, bool), np.zeros(starts, bool)
    returns, lengths = np.zeros(starts), np.zeros(starts, int)
    with torch.inference_mode():
        while not done.all():
            obs, reward, terminated, truncated, _ = env.step(policy(torch.as_tensor(obs)).numpy())
            live = ~done
            returns[live] += reward[live]
            lengths[live] += 1
            crashed |= live & terminated
            done |= terminated | truncated
    env.close()
    return {"returns": returns, "crashed": crashed, "lengths": lengths, "tilt": tilt, "vz": vz}


def _by_bins(values: np.ndarray, crashed: np.ndarray, bins: tuple, unit: str) -> str:
    parts = []
    for lo, hi in bins:
        inside = (values >= lo) & (values < hi)
        parts.append(f"{lo:g}..{min(hi, 90 if unit == 'deg' else 1):g} {unit}: "
                     f"{crashed[inside].mean():.2f} ({inside.mean():.0%} of starts)")  # fmt: skip
    return "; ".join(parts)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("guides", nargs="+", help="shipped guide names or checkpoints")
    p.add_argument("--starts", type=int, default=2000)
    p.add_argument("--seed", type=int, default=4242, help="drone i starts from seed + i")
    p.add_argument("--curriculum", type=float, default=1.0, help="reward curriculum rho")
    p.add_argument("--rotor-speeds", choices=ROTOR_SPEEDS, default="drawn",
                   help="replace the start rotor speeds (module docstring)")  # fmt: skip
    args = p.parse_args()
    crashes = []
    for guide in args.guides:
        r = fly(guide, args.starts, args.seed, args.curriculum, args.rotor_speeds)
        crashed = r["crashed"]
        crashes.append(crashed)
        q = np.percentile(r["lengths"][crashed], [10, 50, 90]) if crashed.any() else [0, 0, 0]
        print(f"{guide}: return {r['returns'].mean():.1f}, crash rate {crashed.mean():.3f}, "
              f"crashed episodes {q[0]:.0f}/{q[1]:.0f}/{q[2]:.0f} steps (10/50/90%)")  # fmt: skip
        print(f"  by start tilt: {_by_bins(r['tilt'], crashed, TILT_BINS, 'deg')}")
        print(f"  by start vertical velocity: {_by_bins(r['vz'], crashed, VZ_BINS, 'm/s')}")
    every, some = np.logical_and.reduce(crashes), np.logical_or.reduce(crashes)
    print(f"{args.starts} starts (seed {args.seed}, rho {args.curriculum:g}, rotor speeds "
          f"{args.rotor_speeds}): every guide crashes "
          f"on {every.mean():.3f}, at least one on {some.mean():.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
