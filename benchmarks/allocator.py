"""glibc's allocator as spikerl tunes it against the system default: training speed on CPU.

spikerl tunes glibc's ``malloc`` once per training process (``spikerl.experiments.process``:
large freed blocks are kept and reused instead of coming back as fresh zero-filled pages). The
setting holds for the whole process, so every measurement here runs in a fresh subprocess of
this script (``--child``), with ``SPIKERL_MALLOC=system`` for the default; the two settings
alternate (default first in even rounds) so machine load hits both alike. Rows:

* ``LIF layer``: one LIF layer's no-grad forward over ``[5, 768, 256]`` currents (the proxy
  target's SNN pass over K x 256 rows), calls/s, with the page faults per call;
* training on HalfCheetah-v4 (batch 256, one update per env step, the suite's settings), env
  steps/s: ANN-TD3, spiking TD3 (LIF, Polyak target), proxy-target TD3 (LIF), and 8 stacked
  seeds of the two spiking ones (total env steps/s);
* the quadrotor controller's sequence update (350 windows of L = 100, burn-in 50), windows/s.

Each run records the allocator its child reported (``runs``); the JSON's ``environment`` is the
parent's, which tunes nothing.

Usage::

    python benchmarks/allocator.py --repeats 4 --json docs/allocator.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from _bench import in_turn, positive_int, quiet_warnings, write_results

from spikerl.experiments.process import USER_VARIABLES, allocator, configure_process

TRAINING = {
    "ANN-TD3": ("ANN-TD3", 1),
    "spiking TD3 (LIF, Polyak target)": ("spiking TD3 (LIF, Polyak target)", 1),
    "proxy-target TD3 (LIF)": ("proxy-target TD3 (LIF)", 1),
    "8 stacked seeds, spiking TD3 (LIF, Polyak target)": ("spiking TD3 (LIF, Polyak target)", 8),
    "8 stacked seeds, proxy-target TD3 (LIF)": ("proxy-target TD3 (LIF)", 8),
}
ROWS = ["LIF layer [5, 768, 256], no-grad forward", *TRAINING,
        "sequence update (350 x 100, W = 50)"]  # fmt: skip
UNITS = {ROWS[0]: "calls/s", ROWS[-1]: "windows/s"} | {name: "env steps/s" for name in TRAINING}


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _layer(calls: int) -> dict[str, float]:
    from spikerl.snn.layers import LIF

    lif, currents = LIF(), torch.randn(5, 768, 256)
    with torch.no_grad():
        for _ in range(5):
            lif(currents)
        faults, start = _faults(), time.perf_counter()
        for _ in range(calls):
            lif(currents)
        elapsed = time.perf_counter() - start
    return {"rate": calls / elapsed, "faults_per_call": (_faults() - faults) / calls}


def _training(name: str, steps: int) -> dict[str, float]:
    from spikerl.bench.suite import TRAINING_VARIANTS, BenchSettings, _variant_config
    from spikerl.bench.train_loop import SeedsTrainLoop, TrainLoop

    variant, seeds = TRAINING[name]
    cfg = _variant_config(TRAINING_VARIANTS[variant], BenchSettings())
    iterations = max(1, steps // seeds)
    loop = SeedsTrainLoop(cfg, seeds, 1000 + 30 + iterations) if seeds > 1 else TrainLoop(
        cfg, 1000 + 30 + iterations)  # fmt: skip
    loop.prefill()
    loop.train(30 // seeds + 2)
    start = time.perf_counter()
    loop.train(iterations)
    return {"rate": iterations * seeds / (time.perf_counter() - start)}


def _sequence(updates: int) -> dict[str, float]:
    from spikerl.bench.suite import BenchSettings, _sequence_parts

    s = BenchSettings()
    buffer, learner = _sequence_parts(s)
    learner.update(buffer.sample(s.seq_batch, 0.99), 0.2)
    start = time.perf_counter()
    for _ in range(updates):
        learner.update(buffer.sample(s.seq_batch, 0.99), 0.2)
    return {"rate": s.seq_batch * updates / (time.perf_counter() - start)}


def child(row: str, args: argparse.Namespace) -> None:
    """One measurement in this (fresh) process; prints it as JSON on the last line."""
    quiet_warnings()
    configure_process(args.threads)  # tuned, or left alone under SPIKERL_MALLOC=system
    if row == ROWS[0]:
        result = _layer(args.layer_calls)
    elif row == ROWS[-1]:
        result = _sequence(args.sequence_updates)
    else:
        result = _training(row, args.window)
    print(json.dumps(result | {"allocator": allocator()}))


def _measure(row: str, tuned: bool, args: argparse.Namespace) -> dict[str, Any]:
    # nothing of the user's may decide either side: glibc's tunables, a preloaded allocator
    env = {k: v for k, v in os.environ.items() if k not in USER_VARIABLES}
    if not tuned:
        env["SPIKERL_MALLOC"] = "system"
    command = [sys.executable, __file__, "--child", row, "--threads", str(args.threads),
               "--window", str(args.window), "--layer-calls", str(args.layer_calls),
               "--sequence-updates", str(args.sequence_updates)]  # fmt: skip
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(f"allocator benchmark: {row} failed:\n{out.stderr[-2000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if tuned and not result["allocator"].startswith("glibc"):
        raise SystemExit(f"allocator benchmark: nothing to compare ({result['allocator']})")
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=positive_int, default=3, help="alternating rounds")
    p.add_argument("--window", type=positive_int, default=300, help="timed env steps per row")
    p.add_argument("--layer-calls", type=positive_int, default=200)
    p.add_argument("--sequence-updates", type=positive_int, default=5)
    p.add_argument("--threads", type=positive_int, default=2)
    p.add_argument("--rows", nargs="+", choices=ROWS, default=ROWS)
    p.add_argument("--child", choices=ROWS, help=argparse.SUPPRESS)
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write JSON")
    args = p.parse_args()
    if args.child:
        return child(args.child, args)
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        r: {"system": [], "tuned": []} for r in args.rows
    }
    for r in range(args.repeats):
        for row in args.rows:
            for tuned in in_turn((False, True), r):
                result = _measure(row, tuned, args)
                runs[row]["tuned" if tuned else "system"].append(result)
                print(f"[{r + 1}/{args.repeats}] {row}, {'tuned' if tuned else 'system'}: "
                      f"{result['rate']:,.1f} {UNITS[row]}", flush=True)  # fmt: skip
    rows = []
    print(f"\n{'row':<52} {'system':>10} {'tuned':>10} {'speed-up':>9}")
    for row in args.rows:
        system, tuned = (
            statistics.median(m["rate"] for m in runs[row][k]) for k in ("system", "tuned")
        )
        rows.append({"row": row, "unit": UNITS[row], "system": system, "tuned": tuned,
                     "speedup": tuned / system, "runs": runs[row]})  # fmt: skip
        print(f"{row:<52} {system:>10,.1f} {tuned:>10,.1f} {tuned / system:>8.2f}x")
    write_results(args, "allocator", {"rows": rows})


if __name__ == "__main__":
    main()
