"""Overhead of ``spikerl sweep``: N tiny runs on P cores against N x (one run's time) / P.

Timed, all on the same machine in one invocation:

* **one run**: the exact child process a sweep starts for a run (``python -m
  spikerl.experiments.sweep_exec train --config ...``: interpreter, imports, training,
  evaluation, checkpoints), run alone, ``--singles`` times on the grid's first runs; its mean
  is ``t1``.
* **local sweep**: ``spikerl sweep`` of the same N runs with ``--max-parallel P``, wall time
  ``T``. The ideal is ``N * t1 / P``; the overhead is ``T / ideal - 1``. It includes what
  running P trainings side by side costs each of them (shared caches and memory bandwidth),
  which no scheduler can remove.
* **Ray** (``--ray``): the same sweep on the Ray backend with a fresh local instance, and
  ``ray.init`` alone in a new process: the start-up a laptop pays once per sweep.

    .venv/bin/python benchmarks/sweep_overhead.py --runs 8 --parallel 2 --ray \
        --json runs/bench/sweep_overhead.json
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _bench import positive_int, write_results

from spikerl.experiments.config import config_to_dict
from spikerl.experiments.sweep import load_sweep

TINY = {
    "actor.kind": "ann",
    "actor.hidden": [32, 32],
    "algo.critic_hidden": [32, 32],
    "algo.batch_size": 32,
    "algo.learning_starts": 100,
    "run.eval_episodes": 1,
}


def _sweep_file(folder: Path, runs: int, steps: int) -> Path:
    data = {
        "name": "overhead",
        "set": {**TINY, "run.total_steps": steps, "run.eval_every": steps // 2},
        "axes": {"run.seed": list(range(runs))},
        "output": str(folder / "local"),
        "retries": 0,
    }
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - started


def _single_runs(sweep_path: Path, folder: Path, count: int) -> list[float]:
    """Wall time of the sweep's own child command, one run at a time."""
    sweep = load_sweep(sweep_path)
    times = []
    for run in sweep.runs[:count]:
        config = folder / f"{run.name}.yaml"
        config.write_text(yaml.safe_dump(config_to_dict(run.config), sort_keys=False))
        child = [sys.executable, "-m", "spikerl.experiments.sweep_exec", "train"]
        times.append(_timed([*child, "--config", str(config), "--runs-dir", str(folder / "one")]))
    return times


def _sweep(sweep_path: Path, output: Path, parallel: int, backend: str) -> float:
    cmd = [sys.executable, "-m", "spikerl.cli", "sweep", str(sweep_path), "--plain"]
    cmd += ["--max-parallel", str(parallel), "--output", str(output), "--backend", backend]
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    return _timed(cmd, env)


def _ray_init_seconds(parallel: int) -> float:
    code = (
        "import time; t = time.perf_counter(); import ray; "
        f"ray.init(address='local', num_cpus={parallel}, include_dashboard=False, "
        "log_to_driver=False); "
        "print(time.perf_counter() - t); ray.shutdown()"
    )
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=positive_int, default=8, help="runs in the sweep (N)")
    p.add_argument("--steps", type=positive_int, default=1500, help="env steps per run")
    p.add_argument("--parallel", type=positive_int, default=2, help="runs at once (P)")
    p.add_argument("--singles", type=positive_int, default=2, help="runs timed alone")
    p.add_argument("--ray", action="store_true", help="also time the Ray backend")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="sweep-overhead-") as tmp:
        folder = Path(tmp)
        sweep_path = _sweep_file(folder, args.runs, args.steps)
        singles = _single_runs(sweep_path, folder, args.singles)
        t1 = sum(singles) / len(singles)
        ideal = args.runs * t1 / args.parallel
        local = _sweep(sweep_path, folder / "local", args.parallel, "local")
        results = {
            "single_run_s": singles,
            "t1_s": t1,
            "ideal_s": ideal,
            "local_sweep_s": local,
            "local_overhead": local / ideal - 1,
        }
        if args.ray:
            results["ray_sweep_s"] = _sweep(sweep_path, folder / "ray", args.parallel, "ray")
            results["ray_overhead"] = results["ray_sweep_s"] / ideal - 1
            results["ray_init_s"] = _ray_init_seconds(args.parallel)
    each = ", ".join(f"{s:.1f}" for s in singles)
    print(f"one run alone: {t1:.1f} s (mean of {len(singles)}: {each})")
    print(f"ideal N x t1 / P = {args.runs} x {t1:.1f} / {args.parallel} = {ideal:.1f} s")
    print(f"local sweep:   {local:.1f} s, overhead {100 * results['local_overhead']:+.1f}%")
    if args.ray:
        print(
            f"ray sweep:     {results['ray_sweep_s']:.1f} s, overhead "
            f"{100 * results['ray_overhead']:+.1f}% (ray.init alone {results['ray_init_s']:.1f} s)"
        )
    write_results(args, "sweep_overhead", results)


if __name__ == "__main__":
    main()
