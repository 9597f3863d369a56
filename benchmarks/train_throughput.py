"""Training throughput of TD3 (ANN actor, Fujimoto defaults) against raw environment stepping.

What is measured, per torch thread count (``--threads``, default 1 and 2):

* **train steps/s**: env steps per wall-clock second of the TD3 training loop after warm-up.
  Untimed first: ``--learning-starts`` uniform-random env steps that fill the replay buffer,
  then ``--warmup`` training iterations (allocator and Adam state warm-up). Timed: a window of
  ``--window`` iterations, each = exploring actor action (batch 1, no grad) + ``env.step`` +
  buffer insert (+ reset on episode end) + one ``TD3.update`` (critic step on a 256 batch, actor
  and target updates every 2nd iteration). No evaluation, checkpoints or logging: the figure is
  the loop's cost alone, so a ``spikerl train`` run is slightly slower (evaluation adds about
  10 x 1000 actor+env steps every 5000 steps).
* **raw env steps/s**: ``env.step`` with uniform random actions (resets included, same wrappers
  as training: actions rescaled to [-1, 1], float32 observations), ``--raw-steps`` steps,
  single-threaded MuJoCo; measured in the same process.
* **train/raw**: train steps/s divided by raw env steps/s, the fraction of raw simulation speed
  that training keeps (its inverse is the slowdown caused by learning).

With ``--repeats R`` the thread settings are measured round-robin R times on the same learner
(the windows continue training) and the median of the R windows is reported.

Usage::

    python benchmarks/train_throughput.py                          # HalfCheetah-v5, threads 1 2
    python benchmarks/train_throughput.py --window 5000 --repeats 3 --json out/throughput.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
from typing import Any

import torch
from _bench import (
    TrainLoop,
    add_training_window_args,
    positive_int,
    quiet_warnings,
    raw_env_steps_per_sec,
    timed_steps_per_sec,
    write_results,
)

from spikerl.experiments.config import Config, load_config
from spikerl.experiments.report import format_table


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="TD3 training throughput vs raw env stepping.")
    p.add_argument("--env", default="HalfCheetah-v5", help="Gymnasium env id")
    add_training_window_args(p, warmup_default=200, window_default=3000)
    p.add_argument(
        "--raw-steps", type=positive_int, default=10_000, help="env steps of the random-action run"
    )
    p.add_argument(
        "--threads", type=positive_int, nargs="+", default=[1, 2], help="torch intra-op threads"
    )
    return p.parse_args(argv)


def td3_config(args: argparse.Namespace) -> Config:
    """Default config = TD3 with Fujimoto's settings and an ANN actor, on ``--env``."""
    return load_config(
        None,
        [
            f"env.id={args.env}",
            "actor.kind=ann",
            "algo.name=td3",
            "algo.target=polyak",
            f"algo.learning_starts={args.learning_starts}",
            f"run.seed={args.seed}",
        ],
    )


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Round-robin windows over thread counts; one result row per thread count."""
    cfg = td3_config(args)
    total = args.learning_starts + args.warmup + args.window * args.repeats * len(args.threads)
    loop = TrainLoop(cfg, capacity=total)
    loop.prefill()
    loop.train(args.warmup)
    train: dict[int, list[float]] = {n: [] for n in args.threads}
    raw: dict[int, list[float]] = {n: [] for n in args.threads}
    for _ in range(args.repeats):
        for n in args.threads:
            torch.set_num_threads(n)
            train[n].append(timed_steps_per_sec(loop, args.window))
            raw[n].append(raw_env_steps_per_sec(args.env, args.raw_steps, args.seed))
    return [summarize(n, train[n], raw[n]) for n in args.threads]


def summarize(threads: int, train: list[float], raw: list[float]) -> dict[str, Any]:
    train_sps, raw_sps = statistics.median(train), statistics.median(raw)
    return {
        "threads": threads,
        "train_steps_per_sec": train_sps,
        "raw_env_steps_per_sec": raw_sps,
        "train_over_raw": train_sps / raw_sps,
        "ms_per_train_step": 1e3 / train_sps,
        "train_windows": train,
        "raw_windows": raw,
    }


def table(rows: list[dict[str, Any]]) -> str:
    headers = ["torch threads", "train steps/s", "raw env steps/s", "train/raw", "ms/train step"]
    return format_table(
        headers,
        [
            [
                r["threads"],
                r["train_steps_per_sec"],
                r["raw_env_steps_per_sec"],
                r["train_over_raw"],
                r["ms_per_train_step"],
            ]
            for r in rows
        ],
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_warnings()
    threads_before = torch.get_num_threads()
    try:
        rows = measure(args)
    finally:
        torch.set_num_threads(threads_before)
    print(
        f"TD3 (ANN actor) on {args.env}: window {args.window} iterations after "
        f"{args.learning_starts} warm-up steps, median of {args.repeats}"
    )
    print(table(rows))
    write_results(args, "train_throughput", {"results": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
