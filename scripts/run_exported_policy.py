"""Fly an exported policy with the NumPy runtime or its compiled C step in a plain Gymnasium
loop (no torch).

    python scripts/run_exported_policy.py policy.npz --env HalfCheetah-v4 --episodes 10 \
        --reset-seed 123 [--dtype float32]
    python scripts/run_exported_policy.py c_folder/ --env HalfCheetah-v4 ...   # C export

A folder is a ``spikerl export --format c`` output: it is compiled with the system C compiler
(float32 ``spk_real``, or ``double`` with ``--dtype float64``) and ``spikerl_step`` is called
through ctypes.

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
from pathlib import Path

import gymnasium as gym
import numpy as np

from spikerl.runtime import compile_policy, load_policy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policy")
    parser.add_argument("--env", required=True)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--reset-seed", type=int, default=0)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float64")
    args = parser.parse_args()
    if Path(args.policy).is_dir():
        policy, runner = compile_policy(args.policy, double=args.dtype == "float64"), "compiled C"
    else:
        policy, runner = load_policy(args.policy, args.dtype), "NumPy runtime"
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
          f"with the {args.dtype} {runner}; torch imported: {torch_loaded}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
