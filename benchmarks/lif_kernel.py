"""The C kernel of a LIF layer's T ticks (:mod:`spikerl.snn.kernel`) against the eager loop.

Three A/Bs in one process, windows alternating between ``LIF.kernel = CLIF.kernel = False``
(the eager tick loops) and ``True`` (the default; CLIF runs its current filter, then the LIF
kernel):

* **layer**: one LIF layer's forward and surrogate backward over ``[T, B, N]`` currents
  (T = 5, B = 256, N = 256, hard reset, rectangular surrogate), and its no-grad forward;
* **actor**: the proxy-target actor (17-d observation, populations of 10, 256-256, T = 5) at
  batch 256, forward and backward (an actor update) and no-grad forward (a target pass); the
  same actor with PLIF neurons (a trained leak per layer) and with CLIF; and the quadrotor
  controller (18-256-128-4, trained per-neuron leaks and thresholds) unrolled over 100 steps
  of 350 windows, forward and backward (a sequence-training actor step);
* **training**: env steps/s of the HalfCheetah-v4 training loop (batch 256, one update per
  env step) for spiking TD3 (LIF, Polyak target) and proxy-target TD3 with LIF, PLIF and CLIF
  actors, after 1000 random steps and 20 untimed updates; ``--window`` steps per window.

    python benchmarks/lif_kernel.py [--repeats 5] [--window 60] [--threads 2] [--json PATH]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from _bench import positive_int, quiet_warnings, write_results

from spikerl.bench.sequence_parts import quadrotor_controller
from spikerl.bench.suite import TRAINING_VARIANTS, BenchSettings, _variant_config
from spikerl.bench.train_loop import TrainLoop
from spikerl.experiments.process import configure_process
from spikerl.nets import SpikingActor
from spikerl.snn.kernel import kernel_available
from spikerl.snn.layers import CLIF, LIF


def _ab(call: Callable[[], None], repeats: int, reps_per_window: int) -> dict[str, float]:
    """Median milliseconds per call, eager and kernel, windows alternating."""
    times: dict[str, list[float]] = {"eager": [], "kernel": []}
    for _ in range(repeats):
        for name in times:
            LIF.kernel = CLIF.kernel = name == "kernel"
            call()
            start = time.perf_counter()
            for _ in range(reps_per_window):
                call()
            times[name].append((time.perf_counter() - start) / reps_per_window * 1e3)
    LIF.kernel = CLIF.kernel = True
    return {name: statistics.median(values) for name, values in times.items()}


def layer_calls() -> dict[str, Callable[[], None]]:
    layer = LIF(size=256)
    currents = torch.randn(5, 256, 256) * 0.6 + 0.3
    grad = torch.randn(5, 256, 256)

    def train() -> None:
        j = currents.clone().requires_grad_()
        layer(j)[0].backward(grad)

    def act() -> None:
        with torch.no_grad():
            layer(currents)

    return {"layer forward+backward": train, "layer no-grad forward": act}


def actor_calls() -> dict[str, Callable[[], None]]:
    torch.manual_seed(0)
    actors = {kind: SpikingActor(17, 6, neuron=kind, hidden=[256, 256], timesteps=5, pop_in=10,
                                 pop_out=10) for kind in ("lif", "plif", "clif")}  # fmt: skip
    obs = torch.randn(256, 17)
    controller, windows = quadrotor_controller(), torch.randn(350, 100, 146)

    def train(actor: torch.nn.Module) -> None:
        actor.zero_grad(set_to_none=True)
        actor(obs).pow(2).sum().backward()

    def act() -> None:
        with torch.no_grad():
            actors["lif"](obs)

    def unroll() -> None:
        controller.zero_grad(set_to_none=True)
        controller.unroll(windows)[0].pow(2).mean().backward()

    return {
        "actor forward+backward (batch 256)": lambda: train(actors["lif"]),
        "actor no-grad forward": act,
        "PLIF actor forward+backward (batch 256)": lambda: train(actors["plif"]),
        "CLIF actor forward+backward (batch 256)": lambda: train(actors["clif"]),
        "quadrotor controller unroll forward+backward (350 x 100)": unroll,
    }


def training_rates(window: int, repeats: int) -> dict[str, dict[str, float]]:
    settings, out = BenchSettings(), {}
    variants = {
        name: TRAINING_VARIANTS[name]
        for name in ("spiking TD3 (LIF, Polyak target)", "proxy-target TD3 (LIF)")
    }
    variants["proxy-target TD3 (PLIF)"] = [*TRAINING_VARIANTS["proxy-target TD3 (LIF)"],
                                           "actor.kind=plif"]  # fmt: skip
    variants["proxy-target TD3 (CLIF)"] = TRAINING_VARIANTS["proxy-target TD3 (CLIF)"]
    for name, overrides in variants.items():
        loop = TrainLoop(_variant_config(overrides, settings), 30_000, "cpu")
        loop.prefill()
        loop.train(20)
        rates: dict[str, list[float]] = {"eager": [], "kernel": []}
        for _ in range(repeats):
            for kind in rates:
                LIF.kernel = CLIF.kernel = kind == "kernel"
                start = time.perf_counter()
                loop.train(window)
                rates[kind].append(window / (time.perf_counter() - start))
        LIF.kernel = CLIF.kernel = True
        eager, kernel = (statistics.median(rates[kind]) for kind in ("eager", "kernel"))
        out[name] = {"eager": eager, "kernel": kernel}
        print(f"{name}: eager {eager:.1f}, kernel {kernel:.1f} env steps/s "
              f"({kernel / eager:.2f}x)", flush=True)  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=positive_int, default=5)
    parser.add_argument("--window", type=positive_int, default=60, help="training steps")
    parser.add_argument("--threads", type=positive_int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    if not kernel_available():
        raise SystemExit("no C compiler: the kernel cannot be built on this machine")
    quiet_warnings()
    configure_process(args.threads)  # threads and allocator as in a training run
    results: dict[str, dict[str, float]] = {}
    for name, call in {**layer_calls(), **actor_calls()}.items():
        results[name] = _ab(call, args.repeats, 2 if "unroll" in name else 20)
        r = results[name]
        print(f"{name}: eager {r['eager']:.3f} ms, kernel {r['kernel']:.3f} ms "
              f"({r['eager'] / r['kernel']:.2f}x)", flush=True)  # fmt: skip
    results |= training_rates(args.window, args.repeats)
    write_results(args, "lif_kernel", results)


if __name__ == "__main__":
    main()
