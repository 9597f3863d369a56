"""ReLUs in place and spikerl's Adam step against torch's plain path: learner updates/s.

spikerl's ANN networks (actors, twin critics, the proxy: :func:`spikerl.nets.ann.mlp`) apply
their ReLUs in place, and its optimisers are :class:`spikerl.algos.common.FusedAdam`, torch's
fused Adam with the step's two kernel calls made directly. The reference is torch's plain
path on a second, identical learner: out-of-place ReLUs and ``torch.optim.Adam(fused=True)``
(SAC's trunk ReLU, ``torch.relu_`` in its forward, stays in place in both). Both compute the
same numbers, so the two learners, updated window for window, must end with equal parameters:
checked and reported (``same_parameters``).

What is timed is ``learner.update`` alone (one training iteration: minibatch, critic step,
every second iteration the actor step and Polyak updates), the part of a training step these
changes touch, on a replay buffer filled by ``algo.learning_starts`` random steps of
HalfCheetah-v4 (the suite's settings: batch 256); the env steps and acting around it, which
add their own noise, are left out. Windows of the two learners alternate (ABBA). Usage::

    python benchmarks/ann_overhead.py --repeats 16 --window 100 --json docs/ann_overhead.json
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from _bench import in_turn, positive_int, quiet_warnings, write_results
from torch import nn

from spikerl.bench.suite import TRAINING_VARIANTS, BenchSettings, _variant_config
from spikerl.bench.train_loop import TrainLoop
from spikerl.experiments.process import configure_process

VARIANTS = ["ANN-TD3", "SAC", "proxy-target TD3 (LIF)"]
#: Untimed training steps (env step and update) after the random prefill; the timed windows
#: are updates only, so they store nothing more.
WARMUP_STEPS = 30


def as_plain_torch(loop: TrainLoop) -> TrainLoop:
    """``loop`` with its learner on the reference path: out-of-place ReLUs and torch's own
    fused Adam step (same parameters, same state)."""
    for part in loop.learner.parts().values():
        if isinstance(part, nn.Module):
            for module in part.modules():
                if isinstance(module, nn.ReLU):
                    module.inplace = False
        elif isinstance(part, torch.optim.Adam):
            part.__class__ = torch.optim.Adam
    return loop


def updates_per_sec(loop: TrainLoop, updates: int) -> float:
    """Learner updates per wall-clock second over ``updates`` updates on ``loop``'s buffer."""
    start = time.perf_counter()
    for _ in range(updates):
        loop.learner.update(loop.buffer)
    return updates / (time.perf_counter() - start)


def same_parameters(a: TrainLoop, b: TrainLoop) -> bool:
    pairs = zip(a.learner.actor.parameters(), b.learner.actor.parameters(), strict=True)
    return all(torch.equal(x, y) for x, y in pairs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", nargs="+", default=VARIANTS, choices=list(TRAINING_VARIANTS))
    p.add_argument("--repeats", type=positive_int, default=16, help="windows of each setting")
    p.add_argument("--window", type=positive_int, default=100, help="learner updates")
    p.add_argument("--threads", type=positive_int, default=2)
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write JSON")
    args = p.parse_args()
    quiet_warnings()
    configure_process(args.threads)
    results = {}
    for variant in args.variants:
        cfg = _variant_config(TRAINING_VARIANTS[variant], BenchSettings())
        capacity = cfg.algo.learning_starts + WARMUP_STEPS  # every transition the loops store
        loops = {"spikerl": TrainLoop(cfg, capacity), "plain torch": TrainLoop(cfg, capacity)}
        as_plain_torch(loops["plain torch"])
        for loop in loops.values():
            loop.prefill()
            loop.train(WARMUP_STEPS)
        rates: dict[str, list[float]] = {name: [] for name in loops}
        for r in range(args.repeats):
            for name in in_turn(loops, r):
                rates[name].append(updates_per_sec(loops[name], args.window))
            shown = ", ".join(f"{n}: {v[-1]:.1f}" for n, v in rates.items())
            print(f"{variant} [{r + 1}/{args.repeats}] {shown} updates/s", flush=True)
        medians = {name: statistics.median(v) for name, v in rates.items()}
        paired = [a / b for a, b in zip(rates["spikerl"], rates["plain torch"], strict=True)]
        results[variant] = {
            "rates": rates,
            "medians": medians,
            "speedup_of_medians": medians["spikerl"] / medians["plain torch"],
            "median_paired_speedup": statistics.median(paired),
            "same_parameters": same_parameters(*loops.values()),
        }
        r = results[variant]
        print(f"{variant}: spikerl {medians['spikerl']:.1f}, plain torch "
              f"{medians['plain torch']:.1f} updates/s: {r['speedup_of_medians']:.3f}x "
              f"(median of paired windows {r['median_paired_speedup']:.3f}x); same "
              f"parameters: {r['same_parameters']}")  # fmt: skip
    write_results(args, "ann_overhead", {"variants": results})


if __name__ == "__main__":
    main()
