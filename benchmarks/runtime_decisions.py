"""Decisions per second at batch 1: the torch policy, the NumPy runtime and the C export.

Untrained networks of the shipped sizes: the proxy-target LIF actor (HalfCheetah's 17-d
observation, populations of 10, 256-256, T = 5, stateless) and the quadrotor controller
(stateful LIF 18-256-128-4 read from the 146-d observation, one tick per control step).
Each policy is called on a fresh observation per decision for about ``--seconds`` seconds;
rates are the median of ``--repeats`` windows, run round-robin. The C export (float32 and
int8 weights) is compiled with the system compiler (``cc -std=c99 -O2``) into a timing loop
that calls ``spikerl_decide`` on the same 64 observations (skipped where no compiler exists).

The NumPy runtime's products run on NumPy's BLAS, whose kernel sets their speed: the JSON
records it (``environment.numpy_blas``, with ``threadpoolctl`` installed), and an
``OPENBLAS_CORETYPE`` override in the environment is reported, since it measures the forced
kernel instead of the one OpenBLAS picks on a user's machine (run the script under
``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`` to measure NumPy as installed).

    python benchmarks/runtime_decisions.py [--seconds 2] [--repeats 3] [--threads 1] [--json P]
        [--plot docs/figures/runtime_decisions.png]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _bench import write_results

from spikerl.bench.machine import blas_override, numpy_blas
from spikerl.export import export_npz, network_spec, quantize_policy, write_c
from spikerl.nets import SpikingActor
from spikerl.nets.policy import ActingPolicy
from spikerl.nets.spiking import direct_lif_network
from spikerl.runtime import find_compiler, load_policy

TIMING_LOOP = r"""
#define _POSIX_C_SOURCE 199309L  /* clock_gettime under -std=c99 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "spikerl_policy.h"
#include "observations.h"  /* static const spk_real observations[64][SPIKERL_OBS_DIM] */

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 1.0, elapsed = 0, sink = 0;
    static spikerl_state st;
    spk_real action[SPIKERL_ACT_DIM];
    struct timespec start, now;
    long calls = 0;
    spikerl_reset(&st);
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (elapsed < seconds) {
        for (int k = 0; k < 256; ++k, ++calls) {
            spikerl_decide(observations[calls % 64], &st, action);
            sink += action[0];
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        elapsed = (now.tv_sec - start.tv_sec) + 1e-9 * (now.tv_nsec - start.tv_nsec);
    }
    printf("%.1f %g\n", calls / elapsed, sink);
    return 0;
}
"""


def c_timing_loop(net: torch.nn.Module, folder: Path, obs: np.ndarray, int8: bool) -> Path:
    """A compiled timing loop around the network's C export; returns the executable."""
    spec, arrays = network_spec(net)
    if int8:
        spec, arrays = quantize_policy(spec, arrays)
    write_c(spec, arrays, folder)
    rows = ",\n".join("{" + ", ".join(f"{v:.9g}" for v in row) + "}" for row in obs)
    (folder / "observations.h").write_text(
        f"static const spk_real observations[64][SPIKERL_OBS_DIM] = {{\n{rows}\n}};\n"
    )
    (folder / "main.c").write_text(TIMING_LOOP)
    binary = folder / "decisions"
    sources = [str(folder / "main.c"), str(folder / "spikerl_policy.c")]
    command = [find_compiler(), "-std=c99", "-O2", "-I", str(folder), *sources, "-o", str(binary)]
    subprocess.run([*command, "-lm"], check=True)
    return binary


def c_rate(binary: Path, seconds: float) -> float:
    out = subprocess.run([str(binary), str(seconds)], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[0])


def policies(folder: Path, rng: np.random.Generator) -> dict[str, tuple[object, np.ndarray]]:
    """Each policy's call and its 64 observations (a compiled C loop: its executable)."""
    torch.manual_seed(0)
    pt = SpikingActor(17, 6, neuron="lif", hidden=[256, 256], timesteps=5, pop_in=10, pop_out=10)
    quad = direct_lif_network(146, 4, [256, 128], timesteps=1, stateful=True, inputs=18)
    out: dict[str, tuple[object, np.ndarray]] = {}
    for name, net, obs_dim in (("proxy-target LIF actor", pt, 17),
                               ("quadrotor controller", quad, 146)):  # fmt: skip
        obs = rng.normal(size=(64, obs_dim)).astype(np.float32)
        short = name.split()[0]
        path = export_npz(net, folder / f"{short}.npz")
        out[f"{name}: torch ActingPolicy"] = (ActingPolicy(net).__call__, obs)
        for dtype in ("float32", "float64"):
            out[f"{name}: NumPy runtime {dtype}"] = (load_policy(path, dtype).decide, obs)
        if find_compiler() is None:
            continue
        for int8 in (False, True):
            sub = folder / f"{short}-c{'8' if int8 else ''}"
            binary = c_timing_loop(net, sub, obs, int8)
            out[f"{name}: C {'int8' if int8 else 'float32'}"] = (binary, obs)
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
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--plot", type=Path, default=None, help="bar chart (needs matplotlib)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    _report_blas()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        calls = policies(Path(folder), rng)
        rates: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(args.repeats):
            for name, (call, obs) in calls.items():
                compiled = isinstance(call, Path)
                seconds = args.seconds
                rates[name].append(c_rate(call, seconds) if compiled else rate(call, obs, seconds))
    print(f"| policy | decisions/s (median of {args.repeats}) | min-max |")
    print("|:---|---:|---:|")
    for name, values in rates.items():
        print(f"| {name} | {statistics.median(values):,.0f} | "
              f"{min(values):,.0f}-{max(values):,.0f} |")  # fmt: skip
    medians = {name: statistics.median(values) for name, values in rates.items()}
    write_results(args, "runtime_decisions", {"decisions_per_s": medians, "windows": rates})
    if args.plot is not None:
        plot(medians, args.plot)


def _report_blas() -> None:
    """One line naming NumPy's BLAS kernel, and a note when the environment forces it."""
    kernels = ", ".join(f"{p['internal_api']} {p['architecture']}" for p in numpy_blas())
    print(f"NumPy BLAS: {kernels or 'unknown (install threadpoolctl to see it)'}")
    overrides = blas_override()
    if overrides:
        names = " ".join(f"{k}={v}" for k, v in overrides.items())
        print(f"note: {names} is set, so the NumPy columns measure that forced kernel; unset "
              "it (env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ...) to measure NumPy as "
              "installed", file=sys.stderr)  # fmt: skip


def plot(medians: dict[str, float], path: Path) -> None:
    """Grouped bars, one group per policy, log scale: how far each runner gets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    policies_ = list(dict.fromkeys(name.split(": ")[0] for name in medians))
    runners = list(dict.fromkeys(name.split(": ")[1] for name in medians))
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(runners)
    for k, runner in enumerate(runners):
        values = [medians.get(f"{p}: {runner}", 0.0) for p in policies_]
        xs = [i + (k - (len(runners) - 1) / 2) * width for i in range(len(policies_))]
        bars = ax.bar(xs, values, width, label=runner)
        ax.bar_label(bars, labels=[f"{v:,.0f}" for v in values], fontsize=7, rotation=90,
                     padding=2)  # fmt: skip
    for target, label in ((10_000, "10,000 / s"), (100_000, "100,000 / s")):
        ax.axhline(target, color="grey", linestyle="--", linewidth=0.8)
        ax.text(-0.45, target * 1.05, label, fontsize=8, va="bottom", ha="left", color="grey")
    ax.set_yscale("log")
    ax.set_ylim(top=max(medians.values()) * 8)
    ax.set_xticks(range(len(policies_)), policies_)
    ax.set_ylabel("decisions per second, batch 1 (log)")
    ax.set_title("Deployed spiking policies: torch, NumPy runtime, C export (one thread)")
    ax.legend(fontsize=8, ncol=3, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
