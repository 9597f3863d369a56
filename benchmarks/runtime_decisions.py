"""Decisions per second at batch 1: the torch policy against the NumPy runtime.

Untrained networks of the shipped sizes: the proxy-target LIF actor (HalfCheetah's 17-d
observation, populations of 10, 256-256, T = 5, stateless) and the quadrotor controller
(stateful LIF 18-256-128-4 read from the 146-d observation, one tick per control step).
Each policy is called on a fresh observation per decision for about ``--seconds`` seconds;
rates are the median of ``--repeats`` windows, run round-robin.

    python benchmarks/runtime_decisions.py [--seconds 2] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from spikerl.export import export_npz
from spikerl.nets import SpikingActor
from spikerl.nets.policy import ActingPolicy
from spikerl.nets.spiking import direct_lif_network
from spikerl.runtime import load_policy


def policies(folder: Path) -> dict[str, tuple[object, int]]:
    torch.manual_seed(0)
    pt = SpikingActor(17, 6, neuron="lif", hidden=[256, 256], timesteps=5, pop_in=10, pop_out=10)
    quad = direct_lif_network(146, 4, [256, 128], timesteps=1, stateful=True, inputs=18)
    out: dict[str, tuple[object, int]] = {}
    for name, net, obs_dim in (("proxy-target LIF actor", pt, 17),
                               ("quadrotor controller", quad, 146)):  # fmt: skip
        path = export_npz(net, folder / f"{name.split()[0]}.npz")
        out[f"{name}: torch ActingPolicy"] = (ActingPolicy(net).__call__, obs_dim)
        for dtype in ("float32", "float64"):
            out[f"{name}: NumPy runtime {dtype}"] = (load_policy(path, dtype).decide, obs_dim)
    return out


def rate(call, obs: np.ndarray, seconds: float) -> float:
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        call(obs[calls % len(obs)])
        calls += 1
    return calls / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        calls = policies(Path(folder))
        rates: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(args.repeats):
            for name, (call, obs_dim) in calls.items():
                obs = rng.normal(size=(64, obs_dim)).astype(np.float32)
                rates[name].append(rate(call, obs, args.seconds))
    print(f"| policy | decisions/s (median of {args.repeats}) | min-max |")
    print("|:---|---:|---:|")
    for name, values in rates.items():
        print(f"| {name} | {statistics.median(values):,.0f} | "
              f"{min(values):,.0f}-{max(values):,.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
