"""Cost of a spiking actor: SNN-TD3 training throughput and inference latency against ANN-TD3.

Two measurements, both on CPU in one process, with ``--threads`` torch intra-op threads:

1. **Training throughput.** For each variant (``--variants``):

   * ``ann``: ANN-TD3, Polyak target actor (plain TD3, the baseline);
   * ``lif-polyak``: LIF spiking actor with a Polyak-averaged target actor (vanilla SNN-TD3);
   * ``lif-proxy-k3``: LIF actor with the proxy target, K = 3, proxy 512-512, lr 1e-3 (paper);
   * ``lif-proxy-k1``: the same with K = 1, lr 3e-3 (the reference README's faster variant).

   Every variant gets its own env, learner and buffer, filled with ``--learning-starts``
   uniform-random steps and trained ``--warmup`` iterations untimed. Then timed windows of
   ``--window`` training iterations (exploring actor action at batch 1 + ``env.step`` + buffer
   insert + one ``TD3.update``, no evaluation) run round-robin over the variants, ``--repeats``
   times; a variant's figure is the median of its windows in env steps/s, and its ratio is that
   median divided by the ANN median (1.0 = as fast as ANN-TD3; below 1 = slower).

2. **Inference latency per decision.** For each actor kind (``--latency-actors``), an untrained
   actor of the paper's size for the env (SNN: 256-256, T = 5, populations of 10) in eval mode
   computes one action at a time, exactly as the training loop and deployment do: a NumPy
   observation (batch 1) converted to a tensor, an inference-mode forward, the action back as NumPy
   (``spikerl.nets.policy.ActingPolicy``). Observations come from a random-action rollout; after
   ``--latency-warmup`` untimed calls each of ``--latency-calls`` calls is timed on its own.
   Reported: median and 90th percentile in microseconds, and the median's ratio to the ANN's.
   The cost of a dense SNN forward does not depend on the weights, so untrained actors suffice.

Usage::

    python benchmarks/snn_vs_ann.py                       # HalfCheetah-v4, 1 thread
    python benchmarks/snn_vs_ann.py --env HalfCheetah-v5 --window 2000 --repeats 3 --json out.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from _bench import (
    TrainLoop,
    add_training_window_args,
    non_negative_int,
    percentile_us,
    positive_int,
    quiet_warnings,
    timed_steps_per_sec,
    write_results,
)

from spikerl.bench.suite import decision_latencies_ns
from spikerl.bench.timing import torch_threads
from spikerl.envs import env_dims, make_env
from spikerl.experiments.config import Config, load_config
from spikerl.experiments.report import format_table
from spikerl.nets import build_actor

# variant name -> config overrides on top of TD3 defaults
VARIANTS: dict[str, list[str]] = {
    "ann": ["actor.kind=ann", "algo.target=polyak"],
    "lif-polyak": ["actor.kind=lif", "algo.target=polyak"],
    "lif-proxy-k3": [
        "actor.kind=lif",
        "algo.target=proxy",
        "algo.proxy.hidden=[512,512]",
        "algo.proxy.lr=0.001",
        "algo.proxy.updates=3",
    ],
    "lif-proxy-k1": [
        "actor.kind=lif",
        "algo.target=proxy",
        "algo.proxy.hidden=[512,512]",
        "algo.proxy.lr=0.003",
        "algo.proxy.updates=1",
    ],
}
LATENCY_ACTORS = ("ann", "lif", "clif", "dn", "plif")
LATENCY_DEFAULT = ("ann", "lif", "clif", "dn")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="SNN-TD3 vs ANN-TD3: training speed and latency.")
    p.add_argument("--env", default="HalfCheetah-v4", help="Gymnasium env id")
    p.add_argument("--threads", type=positive_int, default=1, help="torch intra-op threads")
    add_baselined_list(p, "--variants", VARIANTS, VARIANTS, "training variants")
    add_training_window_args(p, warmup_default=100, window_default=1000)
    add_baselined_list(p, "--latency-actors", LATENCY_ACTORS, LATENCY_DEFAULT, "actor kinds")
    p.add_argument(
        "--latency-calls", type=positive_int, default=2000, help="timed batch-1 calls per actor"
    )
    p.add_argument(
        "--latency-warmup", type=non_negative_int, default=200, help="untimed calls before timing"
    )
    p.add_argument("--skip-training", action="store_true", help="only measure latency")
    p.add_argument("--skip-latency", action="store_true", help="only measure training")
    args = p.parse_args(argv)
    args.variants = with_baseline(args.variants)
    args.latency_actors = with_baseline(args.latency_actors)
    return args


def add_baselined_list(
    parser: argparse.ArgumentParser,
    flag: str,
    choices: Iterable[str],
    default: Iterable[str],
    what: str,
) -> None:
    """A list flag of names to time; :func:`with_baseline` adds 'ann' to it after parsing."""
    help_text = f"{what} to time ('ann' is always added as the baseline)"
    parser.add_argument(
        flag, nargs="+", choices=list(choices), default=list(default), help=help_text
    )


def with_baseline(names: list[str]) -> list[str]:
    """``names`` without duplicates, with 'ann' first."""
    return ["ann", *dict.fromkeys(n for n in names if n != "ann")]


def variant_config(name: str, args: argparse.Namespace) -> Config:
    return load_config(
        None,
        [
            f"env.id={args.env}",
            "algo.name=td3",
            f"algo.learning_starts={args.learning_starts}",
            f"run.seed={args.seed}",
            *VARIANTS[name],
        ],
    )


# --------------------------------------------------------------------------------------------
# Training throughput


def measure_training(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Round-robin timed windows over the variants; one row per variant."""
    capacity = args.learning_starts + args.warmup + args.window * args.repeats
    loops = {}
    for name in args.variants:
        loops[name] = TrainLoop(variant_config(name, args), capacity)
        loops[name].prefill()
        loops[name].train(args.warmup)
    windows: dict[str, list[float]] = {name: [] for name in args.variants}
    for _ in range(args.repeats):
        for name, loop in loops.items():
            windows[name].append(timed_steps_per_sec(loop, args.window))
    base = statistics.median(windows["ann"])
    rows = []
    for name in args.variants:
        sps = statistics.median(windows[name])
        rows.append(
            {
                "variant": name,
                "steps_per_sec": sps,
                "ratio_to_ann": sps / base,
                "ms_per_step": 1e3 / sps,
                "windows": windows[name],
            }
        )
    return rows


def training_table(rows: list[dict[str, Any]]) -> str:
    return format_table(
        ["variant", "train steps/s", "ratio to ANN", "ms/step"],
        [[r["variant"], r["steps_per_sec"], r["ratio_to_ann"], r["ms_per_step"]] for r in rows],
    )


# --------------------------------------------------------------------------------------------
# Inference latency


def rollout_observations(env_id: str, count: int, seed: int) -> np.ndarray:
    """``count`` observations visited by uniform random actions (resets included)."""
    env = make_env(env_id, seed=seed)
    obs, _ = env.reset(seed=seed)
    out = []
    for _ in range(count):
        out.append(obs)
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    return np.stack(out).astype(np.float32)


def measure_latency(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Median and p90 latency per actor kind; one row per kind."""
    env = make_env(args.env)
    obs_dim, act_dim = env_dims(env)
    env.close()
    observations = rollout_observations(args.env, args.latency_calls, args.seed)
    rows = []
    for kind in args.latency_actors:
        torch.manual_seed(args.seed)
        cfg = load_config(None, [f"actor.kind={kind}"])
        actor = build_actor(cfg.actor, "td3", obs_dim, act_dim).eval()
        samples = decision_latencies_ns(actor, observations, args.latency_warmup)
        rows.append(
            {
                "actor": kind,
                "median_us": percentile_us(samples, 50),
                "p90_us": percentile_us(samples, 90),
                "parameters": sum(p.numel() for p in actor.parameters()),
            }
        )
    base = rows[0]["median_us"]
    for row in rows:
        row["median_ratio_to_ann"] = row["median_us"] / base
    return rows


def latency_table(rows: list[dict[str, Any]]) -> str:
    return format_table(
        ["actor", "median us", "p90 us", "median / ANN", "parameters"],
        [
            [r["actor"], r["median_us"], r["p90_us"], r["median_ratio_to_ann"], r["parameters"]]
            for r in rows
        ],
    )


# --------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Both measurements (unless skipped), printed as tables; returns the JSON payload."""
    threads = f"{args.threads} thread(s)"
    results: dict[str, Any] = {}
    if not args.skip_training:
        results["training"] = measure_training(args)
        window = f"window {args.window} iterations, median of {args.repeats}"
        print(f"\nTraining throughput on {args.env} ({threads}; {window})")
        print(training_table(results["training"]))
    if not args.skip_latency:
        results["latency"] = measure_latency(args)
        calls = f"batch 1, inference mode, CPU, {threads}, {args.latency_calls} calls"
        print(f"\nInference latency per decision on {args.env} ({calls})")
        print(latency_table(results["latency"]))
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_warnings()
    with torch_threads(args.threads):
        results = run(args)
    write_results(args, "snn_vs_ann", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
