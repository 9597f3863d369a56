"""Count the aten operations a spiking actor dispatches: a noise-free measure of overhead.

Timings on a shared CPU vary by tens of percent between runs; the number of operations that
reach torch's dispatcher does not. Two versions of spikerl that dispatch the same operations
differ only in Python-level work around them. For each neuron kind this prints the operations of
one decision at batch 1 without gradients (the acting path) and of one forward+backward pass at
batch 256 (the actor update), for the paper-size HalfCheetah actor (17 -> 256-256 -> 6, T = 5).

    .venv/bin/python benchmarks/dispatch_count.py
    PYTHONPATH=/path/to/other/checkout .venv/bin/python benchmarks/dispatch_count.py
"""

from __future__ import annotations

import argparse
import collections
import json
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from spikerl.nets.spiking import SpikingActor


class CountOps(TorchDispatchMode):
    """Counts every aten operation dispatched inside the ``with`` block, by name."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.counts[str(func)] += 1
        return func(*args, **(kwargs or {}))


def count(kind: str) -> dict[str, int]:
    torch.manual_seed(0)
    actor = SpikingActor(17, 6, kind)
    with CountOps() as acting, torch.no_grad():
        actor(torch.randn(1, 17))
    with CountOps() as update:
        actor(torch.randn(256, 17)).sum().backward()
    return {"decision_b1": sum(acting.counts.values()), "fwd_bwd_b256": sum(update.counts.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", nargs="+", default=["lif", "clif", "dn", "plif"])
    args = parser.parse_args()
    print(json.dumps({kind: count(kind) for kind in args.kinds}))


if __name__ == "__main__":
    main()
