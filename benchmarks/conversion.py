"""Converted-policy decisions per second per neuron model, against the ANN; calibration time.

A 17-256-256-6 ReLU actor (HalfCheetah's sizes) with random weights, converted with thresholds
from 512 random observations (the speed does not depend on the weights' values, only on the
sizes, T and the neuron model). One decision is one stateful ``step`` (T ticks, plus DC's
priming tick, CRPI alpha 0.5) on a batch of ``--batches`` observations; decisions/s counts
rows, so batch 256 is 256 decisions per call. Timed after ``--warmup`` untimed calls over
``--seconds`` (median of ``--repeats`` windows), one torch thread, no autograd. The ratio
column is ANN decisions/s over SNN decisions/s in the same run.

Calibration: ``calibrate`` on ``--calibration-steps`` steps of HalfCheetah-v4 (the ANN acting,
the max statistic), timed once.

    .venv/bin/python benchmarks/conversion.py --json runs/bench/conversion.json
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from _bench import positive_int, quiet_warnings, write_results

from spikerl.bench.suite import converted_policy, forward_call, stepper
from spikerl.bench.timing import rate_for
from spikerl.convert import CalibrationSettings, calibrate
from spikerl.convert.source import source_from_module
from spikerl.nets.ann import DeterministicActor

MODELS = ("if", "snm", "mt", "dc", "dc-mt")


def _rate(call, rows: int, seconds: float, warmup: int) -> float:
    for _ in range(warmup):
        call()
    return rate_for(call, rows, seconds)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--timesteps", type=positive_int, nargs="+", default=[8, 32])
    p.add_argument("--batches", type=positive_int, nargs="+", default=[1, 256])
    p.add_argument("--seconds", type=float, default=1.0)
    p.add_argument("--warmup", type=positive_int, default=5)
    p.add_argument("--repeats", type=positive_int, default=3)
    p.add_argument("--calibration-steps", type=positive_int, default=10_000)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    quiet_warnings()
    torch.set_num_threads(1)
    torch.set_grad_enabled(False)
    source = converted_policy("ann", 0)
    results: dict[str, dict[str, float]] = {}
    print(f"{'policy':14s} {'T':>3s} {'batch':>6s} {'decisions/s':>13s} {'ANN/SNN':>8s}")
    for batch in args.batches:
        obs = torch.randn(batch, 17)
        ann = statistics.median(
            _rate(forward_call(source, obs), batch, args.seconds, args.warmup)
            for _ in range(args.repeats)
        )
        results[f"ann/b{batch}"] = {"decisions_per_sec": ann}
        print(f"{'ANN':14s} {'-':>3s} {batch:6d} {ann:13,.0f} {1.0:8.1f}")
        for timesteps in args.timesteps:
            for model in MODELS:
                snn = converted_policy(model, timesteps)
                rate = statistics.median(
                    _rate(stepper(snn, obs), batch, args.seconds, args.warmup)
                    for _ in range(args.repeats)
                )
                results[f"{model}/T{timesteps}/b{batch}"] = {
                    "decisions_per_sec": rate,
                    "ann_over_snn": ann / rate,
                }
                print(f"{model:14s} {timesteps:3d} {batch:6d} {rate:13,.0f} {ann / rate:8.1f}")
    started = time.perf_counter()
    calibrate(
        source_from_module(DeterministicActor(17, 6, (256, 256))),
        "HalfCheetah-v4",
        0,
        CalibrationSettings(args.calibration_steps),
    )
    seconds = time.perf_counter() - started
    print(f"calibration: {args.calibration_steps:,} HalfCheetah-v4 steps in {seconds:.1f} s")
    results["calibration"] = {"steps": args.calibration_steps, "seconds": seconds}
    write_results(args, "conversion", results)


if __name__ == "__main__":
    main()
