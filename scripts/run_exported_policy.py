"""Fly an exported policy with the NumPy runtime in a plain Gymnasium loop (no torch).

    python scripts/run_exported_policy.py policy.npz --env HalfCheetah-v4 --episodes 10 \
        --reset-seed 123 [--dtype float32]

The env is ``gymnasium.make(ENV)`` itself, with no spikerl wrapper: the policy file carries
the observation normaliser and the action bounds. ``--reset-seed`` seeds one discarded reset
before the episodes, as spikerl's evaluation does (``spikerl evaluate`` uses the integer
``SeedStreams(run.seed).integer("evaluation")``), so the two see the same start states.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import gymnasium as gym
import numpy as np

from spikerl.runtime import load_policy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policy")
    parser.add_argument("--env", required=True)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--reset-seed", type=int, default=0)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float64")
    args = parser.parse_args()
    policy = load_policy(args.policy, args.dtype)
    env = gym.make(args.env)
    env.reset(seed=args.reset_seed)
    returns, decisions, started = [], 0, time.perf_counter()
    for _ in range(args.episodes):
        obs, _ = env.reset()
        policy.reset()
        done, total = False, 0.0
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy.act(obs).astype(np.float32))
            total, done, decisions = total + float(reward), terminated or truncated, decisions + 1
        returns.append(total)
        print(f"episode {len(returns)}: return {total:.1f}")
    seconds = time.perf_counter() - started
    mean, std = statistics.mean(returns), statistics.pstdev(returns)
    rate, torch_loaded = decisions / seconds, "torch" in sys.modules
    print(f"{args.episodes} episodes: return {mean:.1f} +- {std:.1f}; {rate:,.0f} env steps/s "
          f"with the {args.dtype} NumPy runtime; torch imported: {torch_loaded}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
