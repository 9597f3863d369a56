"""The replay buffer in the training device's memory (``run.replay_on_device``) against the
host buffer, in the same training loop.

With the host buffer (the default) every sampled minibatch is gathered from NumPy arrays and
copied to the device field by field; with ``run.replay_on_device`` the transitions live on
the device as packed rows, so a stored transition is one host-to-device copy and a minibatch
one gather there (``spikerl.buffers.replay``; both give the same batches, tested). The saving
is the per-batch copies, so it is meant for GPU runs, where each copy is a synchronous
transfer; on a CPU both storages sit in the same memory and this measures the overhead of the
packed rows. Two loops of one config (the suite's settings on HalfCheetah-v4, batch 256, one
update per env step), one per storage, alternate timed windows; with ``--seeds S`` each loop
is S stacked seeds (``spikerl train --seeds``), whose update samples S minibatches. Usage::

    python benchmarks/replay_on_device.py --device cuda --variant "ANN-TD3" --seeds 8
    python benchmarks/replay_on_device.py --device cpu --repeats 5 --window 200
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from _bench import in_turn, positive_int, quiet_warnings, timed_steps_per_sec, write_results

from spikerl.bench.suite import TRAINING_VARIANTS, BenchSettings, _variant_config
from spikerl.bench.train_loop import SeedsTrainLoop, TrainLoop
from spikerl.experiments.process import configure_process

STORAGES = {"host": "false", "device": "true"}


def _loops(variant: str, seeds: int, capacity: int, device: str) -> dict[str, object]:
    loops: dict[str, object] = {}
    for name, flag in STORAGES.items():
        overrides = [*TRAINING_VARIANTS[variant], f"run.replay_on_device={flag}"]
        cfg = _variant_config(overrides, BenchSettings())
        if seeds > 1:
            loops[name] = SeedsTrainLoop(cfg, seeds, capacity, device)
        else:
            loops[name] = TrainLoop(cfg, capacity, device)
    return loops


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", choices=list(TRAINING_VARIANTS), default="ANN-TD3")
    p.add_argument("--device", default="cpu", help="torch device of networks and batches")
    p.add_argument("--seeds", type=positive_int, default=1, help="stacked seeds per loop")
    p.add_argument("--repeats", type=positive_int, default=5, help="windows of each storage")
    p.add_argument("--window", type=positive_int, default=200, help="training iterations")
    p.add_argument("--warmup", type=positive_int, default=30, help="untimed iterations")
    p.add_argument("--threads", type=positive_int, default=2)
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write JSON")
    args = p.parse_args()
    quiet_warnings()
    configure_process(args.threads)
    capacity = BenchSettings().learning_starts + args.warmup + args.window * args.repeats + 16
    loops = _loops(args.variant, args.seeds, capacity, args.device)
    for loop in loops.values():
        loop.prefill()
        loop.train(args.warmup)
    rates: dict[str, list[float]] = {name: [] for name in loops}
    for r in range(args.repeats):
        for name in in_turn(loops, r):
            steps = timed_steps_per_sec(loops[name], args.window, args.device) * args.seeds
            rates[name].append(steps)
            print(f"[{r + 1}/{args.repeats}] {name}: {steps:.1f} env steps/s", flush=True)
    medians = {name: statistics.median(v) for name, v in rates.items()}
    ratio = medians["device"] / medians["host"]
    print(f"{args.variant}, {args.seeds} seed(s) on {args.device}: replay on the device "
          f"{medians['device']:.1f}, on the host {medians['host']:.1f} env steps/s: "
          f"{ratio:.2f}x")  # fmt: skip
    write_results(args, "replay_on_device", {"rates": rates, "medians": medians,
                                             "speedup": ratio})  # fmt: skip


if __name__ == "__main__":
    main()
