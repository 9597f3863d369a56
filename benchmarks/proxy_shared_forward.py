"""Proxy-target TD3: the last proxy batch's SNN forward shared with the actor step, against two.

On an iteration with an actor step, the proxy-target update trains the actor on the last of
its K proxy minibatches with the actor that just gave that minibatch's proxy targets, so
:meth:`spikerl.algos.TD3.update` runs that forward once, with its graph (``docs/proxy_target.md``
and the ``TD3`` docstring). The reference here is the update as it ran before: the K targets
from one no-grad pass over all K minibatches and the actor step with a forward of its own
(``TD3.share_actor_forward = False``; equal parameters, ``tests/algos/test_td3.py``). One
training loop (HalfCheetah-v4, the suite's settings: LIF, T = 5, populations of 10, 256-256,
K = 3, proxy 512-512, batch 256) alternates windows of the two updates. Usage::

    python benchmarks/proxy_shared_forward.py --repeats 5 --window 150
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from _bench import in_turn, positive_int, quiet_warnings, write_results

from spikerl.algos.td3 import TD3
from spikerl.bench.suite import TRAINING_VARIANTS, BenchSettings, _variant_config
from spikerl.bench.train_loop import TrainLoop
from spikerl.experiments.process import configure_process


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=positive_int, default=5, help="windows of each update")
    p.add_argument("--window", type=positive_int, default=150, help="training steps")
    p.add_argument("--threads", type=positive_int, default=2)
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write JSON")
    args = p.parse_args()
    quiet_warnings()
    configure_process(args.threads)
    cfg = _variant_config(TRAINING_VARIANTS["proxy-target TD3 (LIF)"], BenchSettings())
    loop = TrainLoop(cfg, 1000 + 30 + 2 * args.window * args.repeats)
    loop.prefill()
    loop.train(30)
    rates: dict[str, list[float]] = {"shared": [], "two forwards": []}
    for r in range(args.repeats):
        for name in in_turn(rates, r):
            TD3.share_actor_forward = name == "shared"
            start = time.perf_counter()
            loop.train(args.window)
            rates[name].append(args.window / (time.perf_counter() - start))
            print(f"[{r + 1}/{args.repeats}] {name}: {rates[name][-1]:.1f} env steps/s", flush=True)
    TD3.share_actor_forward = True
    medians = {name: statistics.median(v) for name, v in rates.items()}
    ratio = medians["shared"] / medians["two forwards"]
    print(f"shared {medians['shared']:.1f}, two forwards {medians['two forwards']:.1f} env "
          f"steps/s: {ratio:.2f}x")  # fmt: skip
    write_results(args, "proxy_shared_forward", {"rates": rates, "medians": medians,
                                                 "speedup": ratio})  # fmt: skip


if __name__ == "__main__":
    main()
