"""Drone-steps per second of ``spikerl/Quadrotor-v0``: the single env and the NumPy batch.

Timed per setting, after ``--warmup`` untimed steps, over ``--seconds`` of stepping (the median
of ``--repeats`` windows): ``env.step`` including observation, reward, termination and the
autoresets the actions cause. Two action streams:

* ``hover``: the hover command plus N(0, 0.05) noise, so drones fly for many steps (few resets);
* ``random``: uniform commands in [-1, 1], so drones crash within about a second (a reset
  every ~50-100 steps per drone: the worst case, where start-state sampling shows).

The single env is timed bare (``env.unwrapped``) and as ``gymnasium.make`` returns it (with
the order-enforcing, passive-checker and time-limit wrappers). NumPy runs one thread.

    .venv/bin/python benchmarks/quadrotor_throughput.py --json runs/bench/quadrotor.json
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
from _bench import positive_int, write_results

import spikerl  # noqa: F401  (registers the env)
from spikerl.bench.suite import HOVER, vector_stepper
from spikerl.bench.timing import rate_for

ENV_ID = "spikerl/Quadrotor-v0"


def _actions(kind: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    if kind == "hover":
        return (HOVER + rng.normal(0.0, 0.05, shape)).astype(np.float32)
    return rng.uniform(-1.0, 1.0, shape).astype(np.float32)


def _time_single(env, kind: str, seconds: float, warmup: int) -> float:
    rng = np.random.default_rng(0)
    actions = _actions(kind, (4096, 4), rng)
    env.reset(seed=0)

    def step(i: int) -> None:
        _, _, term, trunc, _ = env.step(actions[i % len(actions)])
        if term or trunc:
            env.reset()

    for i in range(warmup):
        step(i)
    steps, started = 0, time.perf_counter()
    while True:
        for _ in range(256):
            step(steps)
            steps += 1
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return steps / elapsed


def _time_vector(n: int, kind: str, seconds: float, warmup: int) -> float:
    venv = gym.make_vec(ENV_ID, num_envs=n, vectorization_mode="vector_entry_point")
    venv.reset(seed=0)
    rng = np.random.default_rng(0)
    call = vector_stepper(venv, [_actions(kind, (n, 4), rng) for _ in range(16)])
    for _ in range(warmup):
        call()
    return rate_for(call, n, seconds)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", type=positive_int, nargs="+", default=[1, 64, 1024, 4096])
    p.add_argument("--seconds", type=float, default=2.0, help="length of one timed window")
    p.add_argument("--warmup", type=positive_int, default=50, help="untimed steps first")
    p.add_argument("--repeats", type=positive_int, default=3, help="windows; the median counts")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    results: dict[str, dict[str, float]] = {}
    for kind in ("hover", "random"):
        row = {}
        for label, make in (
            ("single (unwrapped)", lambda: gym.make(ENV_ID).unwrapped),
            ("single (gym.make)", lambda: gym.make(ENV_ID)),
        ):
            runs = [
                _time_single(make(), kind, args.seconds, args.warmup) for _ in range(args.repeats)
            ]
            row[label] = statistics.median(runs)
        for n in args.sizes:
            runs = [_time_vector(n, kind, args.seconds, args.warmup) for _ in range(args.repeats)]
            row[f"vector N={n}"] = statistics.median(runs)
        results[kind] = row
    labels = list(results["hover"])
    print(f"{'setting':22s} {'hover':>14s} {'random':>14s}   drone-steps/s")
    for label in labels:
        print(f"{label:22s} {results['hover'][label]:14,.0f} {results['random'][label]:14,.0f}")
    write_results(args, "quadrotor_throughput", {"drone_steps_per_sec": results})


if __name__ == "__main__":
    main()
