"""Speed of guided sequence training (arXiv 2510.24461): updates, collection and the epoch.

Three timings on the networks of ``configs/quadrotor/guided_td3bc.yaml`` (actor 18-256-128-4,
one LIF tick per control step; twin critics 256-128 on the 146-d observation):

* **training sequences/s**: one :class:`~spikerl.algos.sequence.SequenceTD3BC` update (critic
  step on all L window steps, actor unroll over L steps with BPTT, masked loss on i >= W, Polyak
  update) on ``--batch`` windows of L = ``--window`` steps sampled from a buffer of guide-flown
  episodes; windows per second, with the share of sampling, critic and actor steps;
* **collection env steps/s**: guided rollouts on ``--drones`` drones (the guide flies the first
  ``--guide-steps`` steps, the SNN is stepped on every step), drone-steps per second;
* **epoch share**: seconds per phase of one epoch of the preset at these rates
  (``--epoch-steps`` collected steps, ``--updates`` updates, evaluation of 2 x 20 episodes).

The guide is the shipped quadrotor guide (``--guide``, or ``''`` for a hover-command stand-in).
``--device cuda`` times the update on a GPU (collection stays on the CPU).

    .venv/bin/python benchmarks/sequence_training.py --json runs/bench/sequence.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from _bench import non_negative_int, positive_int, write_results
from torch import nn

from spikerl.algos.guided import guided_rollouts
from spikerl.bench.sequence_parts import (
    ACT_DIM,
    OBS_DIM,
    guide_flown_buffer,
    quadrotor_controller,
    sequence_learner,
)
from spikerl.bench.timing import sync
from spikerl.envs.quadrotor.vector import QuadrotorVectorEnv
from spikerl.experiments.process import configure_process
from spikerl.experiments.sequence_run import load_guide

HOVER = 0.334


class _HoverGuide(nn.Module):
    """A stand-in guide: the hover command with a little height feedback."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (HOVER - 0.3 * x[:, 2:3] - 0.2 * x[:, 14:15]).clamp(-1, 1).expand(-1, 4)


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--batch", type=positive_int, default=350, help="windows per update")
    p.add_argument("--window", type=positive_int, default=100, help="L, steps per window")
    p.add_argument("--burn-in", type=non_negative_int, default=50, help="W")
    p.add_argument("--updates", type=positive_int, default=10, help="timed updates")
    p.add_argument("--drones", type=positive_int, default=20, help="collection drones")
    p.add_argument("--collect-steps", type=positive_int, default=10_000, help="timed steps")
    p.add_argument("--guide-steps", type=non_negative_int, default=250, help="L_g when timing")
    p.add_argument("--epoch-steps", type=positive_int, default=10_000)
    p.add_argument("--epoch-updates", type=positive_int, default=100)
    p.add_argument("--guide", default="builtin", help="guide spec ('' = hover stand-in)")
    p.add_argument("--threads", type=positive_int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write JSON")
    return p.parse_args()


def _time_updates(args, buffer, device) -> dict[str, float]:
    learner = sequence_learner(args.burn_in, args.seed, device)
    buffer.device = torch.device(device)
    parts = {"sample": 0.0, "critic": 0.0, "actor": 0.0}
    for i in range(args.updates + 2):  # two untimed warm-up updates
        t0 = time.perf_counter()
        batch = buffer.sample(args.batch, 0.99)
        t1 = time.perf_counter()
        learner._critic_step(batch)
        sync(device)
        t2 = time.perf_counter()
        learner._actor_step(batch, 0.2)
        sync(device)
        t3 = time.perf_counter()
        if i >= 2:
            for key, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2), strict=True):
                parts[key] += dt
    total = sum(parts.values())
    return {
        "seconds_per_update": total / args.updates,
        "sequences_per_sec": args.batch * args.updates / total,
        **{f"share_{k}": v / total for k, v in parts.items()},
    }


def _time_collection(args, guide) -> float:
    env = QuadrotorVectorEnv(args.drones, autoreset_mode="SameStep")
    start = time.perf_counter()
    result = guided_rollouts(env, quadrotor_controller(), guide, args.guide_steps,
                             store_steps=args.collect_steps, min_len=1, seed=args.seed)  # fmt: skip
    return result.env_steps / (time.perf_counter() - start)


def main() -> None:
    args = _parse()
    configure_process(args.threads)  # threads and allocator as in a training run
    guide = (
        load_guide(args.guide, OBS_DIM, ACT_DIM, torch.device("cpu"))
        if args.guide
        else _HoverGuide()
    )
    # guide-flown episodes (the seed data of a run), enough for every window start
    buffer = guide_flown_buffer(guide, args.window, 20_000, 100_000, 50, args.seed)
    updates = _time_updates(args, buffer, args.device)
    steps_per_sec = _time_collection(args, guide)
    eval_steps = 2 * 20 * 500  # guided and guide-free, at most 500 steps each
    epoch = {
        "collect": args.epoch_steps / steps_per_sec,
        "update": args.epoch_updates * updates["seconds_per_update"],
        "evaluate": eval_steps / steps_per_sec,
    }
    total = sum(epoch.values())
    print(f"buffer: {buffer.num_episodes} guide episodes, {len(buffer)} steps")
    shares = ", ".join(f"{k} {updates['share_' + k]:.0%}" for k in ("sample", "critic", "actor"))
    print(
        f"update ({args.batch} windows of {args.window}, {args.device}, {args.threads} "
        f"thread(s)): {updates['seconds_per_update'] * 1e3:.1f} ms = "
        f"{updates['sequences_per_sec']:.0f} sequences/s ({shares})"
    )
    print(f"collection ({args.drones} drones, L_g {args.guide_steps}): {steps_per_sec:,.0f} "
          "drone-steps/s")  # fmt: skip
    print(
        f"epoch ({args.epoch_steps} steps, {args.epoch_updates} updates, 40 test episodes): "
        f"{total:.1f} s = " + ", ".join(f"{k} {v / total:.0%}" for k, v in epoch.items())
    )
    write_results(args, "sequence_training", {
        "update": updates, "collect_steps_per_sec": steps_per_sec,
        "epoch_seconds": epoch, "buffer_steps": len(buffer),
    })  # fmt: skip


if __name__ == "__main__":
    main()
