"""Where a training step's time goes: ``torch.profiler`` over the suite's training loops.

For each variant (``--variants``; the names of ``spikerl bench``'s training section, and
``Stable-Baselines3 TD3`` with the ``bench`` extra) the loop of the suite
(:class:`~spikerl.bench.train_loop.TrainLoop`, or :class:`~spikerl.bench.sb3_loop.SB3TrainLoop`)
is prefilled with ``--learning-starts`` random steps, trained ``--warmup`` untimed iterations,
then ``--steps`` iterations under the profiler (CPU activities, no shapes or stacks). Each
iteration is the exploring action, ``env.step``, the replay insert and one update. With
``--seeds S`` (S > 1) the loop is the suite's stacked one
(:class:`~spikerl.bench.train_loop.SeedsTrainLoop`, what ``spikerl train --seeds`` runs): an
iteration acts for S seeds with one batched forward, steps their S envs and runs one batched
update, so it is S env steps (``ms_per_env_step`` divides by S).

**Shares.** Every recorded event's *self* time (its time minus that of the events inside it, on
the thread that called it) goes to one group: an event inside the optimiser's step, a kernel
call or its autograd node, or the env step counts to that group whatever its name; any other
by its name:

* matrix products: ``aten::addmm``, ``aten::mm``, ``aten::bmm``, ``aten::baddbmm``;
* spiking kernel: the C kernel's calls (:mod:`spikerl.snn.kernel`, wrapped here in a
  ``record_function`` each) and their autograd nodes;
* optimiser: Adam (fused or not) and ``zero_grad``;
* copies: ``aten::copy_``, ``aten::_to_copy``, ``aten::clone``;
* env step: the MuJoCo env's own ``step`` (the innermost env, wrapped here), less any torch
  operation inside it;
* other torch operations: the rest of the ``aten::`` operations and autograd nodes;

and the part of the wall-clock time that no event covers is *Python and the rest* (the loops'
own code, NumPy, the replay buffer, SB3's bookkeeping). The shares are of the wall-clock time
of the profiled iterations, so they add up to 100% (the profiler's own overhead included, a
few percent at these sizes: compare shares, not the ms/step, with ``spikerl bench``). The
``--top`` events with the most self time are listed per variant.

Usage::

    python benchmarks/profile_training.py --threads 2 --json runs/bench/profile.json
    python benchmarks/profile_training.py --variants "ANN-TD3" "Stable-Baselines3 TD3"
    python benchmarks/profile_training.py --seeds 8 --variants "ANN-TD3" "proxy-target TD3 (LIF)"
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from _bench import non_negative_int, positive_int, quiet_warnings, write_results

from spikerl.bench.sb3_loop import SB3TrainLoop, sb3_available
from spikerl.bench.suite import SB3_VARIANT, TRAINING_VARIANTS
from spikerl.bench.timing import torch_threads
from spikerl.bench.train_loop import SeedsTrainLoop, TrainLoop
from spikerl.experiments.config import load_config
from spikerl.experiments.report import format_table
from spikerl.snn import kernel

DEFAULT_VARIANTS = [
    "ANN-TD3",
    SB3_VARIANT,
    "spiking TD3 (LIF, Polyak target)",
    "proxy-target TD3 (LIF)",
]
GROUPS = (
    "matrix products",
    "spiking kernel",
    "optimiser",
    "copies",
    "env step",
    "other torch operations",
    "Python and the rest",
)
_MATMUL = {"aten::addmm", "aten::mm", "aten::bmm", "aten::baddbmm"}
_COPIES = {"aten::copy_", "aten::_to_copy", "aten::clone"}
_KERNEL_EVENT = "spikerl::kernel"
_ENV_EVENT = "env.step (MuJoCo)"


def group_of(name: str) -> str:
    """The group of :data:`GROUPS` of an event named ``name`` by itself."""
    if name in _MATMUL:
        return "matrix products"
    if name.startswith(_KERNEL_EVENT) or "_Kernel" in name:
        return "spiking kernel"
    if "adam" in name.lower() or name.startswith("Optimizer."):
        return "optimiser"
    if name in _COPIES:
        return "copies"
    if name == _ENV_EVENT:
        return "env step"
    return "other torch operations"


def group_of_event(event: Any) -> str:
    """The group an event's self time counts to: that of the innermost enclosing event (itself
    included) of the optimiser, the spiking kernel or the env step, else its own by name; so
    Adam's element-wise operations (SB3's Adam is not fused) and the kernel backward's buffers
    count to their owner, not to "other" or "copies"."""
    node = event
    while node is not None:
        group = group_of(node.name)
        if group in ("optimiser", "spiking kernel", "env step"):
            return group
        node = node.cpu_parent
    return group_of(event.name)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="torch.profiler over the training loops.")
    p.add_argument(
        "--variants", nargs="+", choices=[*TRAINING_VARIANTS, SB3_VARIANT],
        default=DEFAULT_VARIANTS, metavar="NAME",
        help=f"training variants of spikerl bench, or {SB3_VARIANT!r}",
    )  # fmt: skip
    p.add_argument("--env", default="HalfCheetah-v4", help="Gymnasium env id")
    p.add_argument("--threads", type=positive_int, default=2, help="torch intra-op threads")
    p.add_argument("--learning-starts", type=positive_int, default=1000)
    p.add_argument("--warmup", type=non_negative_int, default=50)
    p.add_argument("--steps", type=positive_int, default=100, help="profiled iterations")
    p.add_argument("--top", type=positive_int, default=8, help="events listed per variant")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument(
        "--seeds",
        type=positive_int,
        default=1,
        help="S > 1: the stacked loop of S seeds (seeds --seed .. --seed + S - 1)",
    )
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write JSON")
    args = p.parse_args(argv)
    if SB3_VARIANT in args.variants and not sb3_available():
        p.error(f"{SB3_VARIANT!r} needs stable-baselines3: pip install -e '.[bench]', or leave "
                "it out of --variants")  # fmt: skip
    if args.seeds > 1 and SB3_VARIANT in args.variants:
        p.error(f"--seeds: {SB3_VARIANT!r} has no stacked loop; leave it out of --variants")
    return args


def build_loop(name: str, args: argparse.Namespace) -> Any:
    capacity = args.learning_starts + args.warmup + args.steps
    if name == SB3_VARIANT:
        return SB3TrainLoop(args.env, args.learning_starts, capacity, args.seed, "cpu")
    base = [f"env.id={args.env}", f"algo.learning_starts={args.learning_starts}"]
    cfg = load_config(None, [*base, f"run.seed={args.seed}", *TRAINING_VARIANTS[name]])
    if args.seeds > 1:
        return SeedsTrainLoop(cfg, args.seeds, capacity)
    return TrainLoop(cfg, capacity)


def innermost_envs(loop: Any) -> list[Any]:
    """The MuJoCo envs under every wrapper (SB3's vector env holds one env; a stacked loop
    one per seed)."""
    if isinstance(loop, SB3TrainLoop):
        return [loop.model.env.envs[0].unwrapped]
    loops = loop.loops if isinstance(loop, SeedsTrainLoop) else [loop]
    return [one.env.unwrapped for one in loops]


@contextmanager
def labelled_calls(loop: Any):
    """The C kernel's calls and the innermost envs' ``step`` as profiler events, while the
    block runs (instance attributes and a module function, all restored after)."""
    envs = innermost_envs(loop)
    kernel_function = kernel._function

    def labelled(env_step):
        def step(action):
            with torch.profiler.record_function(_ENV_EVENT):
                return env_step(action)

        return step

    def function(name, dtype):
        c_call = kernel_function(name, dtype)

        def call(*a):
            with torch.profiler.record_function(f"{_KERNEL_EVENT}::{name.split('_')[1]}"):
                return c_call(*a)

        return call

    for env in envs:
        env.step = labelled(env.step)
    kernel._function = function
    try:
        yield
    finally:
        for env in envs:
            del env.step  # the class's method again
        kernel._function = kernel_function


def profile(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Shares of the wall-clock time per group and the top events of one variant."""
    loop = build_loop(name, args)
    loop.prefill()
    loop.train(args.warmup)
    activities = [torch.profiler.ProfilerActivity.CPU]
    with labelled_calls(loop), torch.profiler.profile(activities=activities) as prof:
        start = time.perf_counter()
        loop.train(args.steps)
        wall_us = (time.perf_counter() - start) * 1e6
    groups: dict[str, float] = defaultdict(float)
    for e in prof.events():
        groups[group_of_event(e)] += e.self_cpu_time_total
    groups["Python and the rest"] = max(0.0, wall_us - sum(groups.values()))
    events = [(e.key, e.self_cpu_time_total, e.count) for e in prof.key_averages()]
    events.sort(key=lambda x: -x[1])
    return {
        "c_kernel": kernel.kernel_available(),
        "ms_per_step": wall_us / args.steps / 1e3,
        "ms_per_env_step": wall_us / (args.steps * args.seeds) / 1e3,
        "shares": {g: groups[g] / wall_us for g in GROUPS},
        "top": [
            {"event": k, "share": t / wall_us, "calls_per_step": c / args.steps}
            for k, t, c in events[: args.top]
        ],
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_warnings()
    results: dict[str, Any] = {}
    with torch_threads(args.threads):
        for name in args.variants:
            print(f"profiling {name} ...", file=sys.stderr, flush=True)
            results[name] = profile(name, args)
    headers = ["share of wall time", *args.variants]
    rows = [[g, *(f"{100 * results[v]['shares'][g]:.0f}%" for v in args.variants)] for g in GROUPS]
    rows.append(["ms per step (profiled)", *(results[v]["ms_per_step"] for v in args.variants)])
    if args.seeds > 1:
        rows.append(["ms per env step", *(results[v]["ms_per_env_step"] for v in args.variants)])
    kernel_text = "C kernel" if kernel.kernel_available() else "no C kernel (eager tick loops)"
    stacked = f", {args.seeds} seeds stacked" if args.seeds > 1 else ""
    print(
        f"\n{args.env}, {args.threads} thread(s), {args.steps} profiled iterations{stacked}, "
        f"{kernel_text}"
    )
    print(format_table(headers, rows))
    for v in args.variants:
        print(f"\n{v}: top events by self time")
        top = results[v]["top"]
        print(
            format_table(
                ["event", "share", "calls/step"],
                [[t["event"], f"{100 * t['share']:.1f}%", t["calls_per_step"]] for t in top],
            )
        )
    write_results(args, "profile_training", {"variants": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
