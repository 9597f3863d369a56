"""spikerl's spiking TD3 update against the official Proxy-Target code's, on the same numbers.

``official_learning.py`` compares whole runs, whose random streams differ; this script takes
the randomness out and compares the arithmetic. For a variant (``proxy``: official ``PT_TD3``,
spikerl ``algo.target=proxy``; ``vanilla``: official ``TD3``, spikerl ``algo.target=polyak``)
on HalfCheetah-v4's shapes (17 observations, 6 actions, the paper preset's settings):

1. spikerl's learner is built and its actor, critic, target critic and target actor (vanilla)
   or proxy network (proxy) are copied into the official learner (parameter names mapped, the
   encoder's and decoder's shapes reshaped);
2. the official learner gets ``policy_noise = 0`` and spikerl ``algo.target_noise = 0``: both
   codes draw the target noise from their own generators, so it is the one random number that
   cannot be shared;
3. both run ``--updates`` updates on the same sequence of random minibatches (each code's
   replay buffer replaced by a queue handing out the same batches in the same order: one per
   vanilla update, K per proxy update, whose last one trains the critic and the actor);
4. the largest absolute difference of every learned tensor between the two codes is printed
   after each update, beside how far the actor has moved from its initial weights.

Equal up to float rounding (fused against per-tensor Adam, batched against tick-by-tick SNN
execution) means differences around 1e-7 while the actor moves by 1e-4 or more.

Usage::

    python benchmarks/official_update.py --official /tmp/official_pt --variant vanilla
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import torch
from _bench import (
    PAPER_TARGETS,
    add_official_code_args,
    checked_official_checkout,
    paper_preset,
    positive_int,
)

from spikerl.algos import build_learner
from spikerl.buffers.replay import Batch
from spikerl.experiments.config import load_config

ENV, OBS, ACT, POP = "HalfCheetah-v4", 17, 6, 10
#: official actor parameter -> (spikerl actor parameter, official shape)
ACTOR_NAMES = {
    "encoder.mean": ("encoder.mu", (1, OBS, POP)),
    "encoder.std": ("encoder.sigma", (1, OBS, POP)),
    "snn.hidden_layers.0.weight": ("linears.0.weight", None),
    "snn.hidden_layers.0.bias": ("linears.0.bias", None),
    "snn.hidden_layers.1.weight": ("linears.1.weight", None),
    "snn.hidden_layers.1.bias": ("linears.1.bias", None),
    "snn.out_pop_layer.weight": ("linears.2.weight", None),
    "snn.out_pop_layer.bias": ("linears.2.bias", None),
    "decoder.decoder.weight": ("decoder.weight", (ACT, 1, POP)),
    "decoder.decoder.bias": ("decoder.bias", None),
}
CRITIC_NAMES = {f"l{i}.{p}": f"q{1 + (i - 1) // 3}.{2 * ((i - 1) % 3)}.{p}"
                for i in range(1, 7) for p in ("weight", "bias")}  # fmt: skip
PROXY_NAMES = {
    f"l{i}.{p}": f"net.{2 * (i - 1)}.{p}" for i in range(1, 4) for p in ("weight", "bias")
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="spikerl's TD3 update against the official code's.")
    add_official_code_args(p)
    p.add_argument("--variant", choices=list(PAPER_TARGETS), default="proxy")
    p.add_argument("--updates", type=positive_int, default=4, help="updates compared")
    p.add_argument("--seed", type=int, default=0, help="weights and minibatches")
    args = p.parse_args(argv)
    args.official = checked_official_checkout(p, args.official, "actor_critic.py")
    return args


def mapped(ours: dict[str, torch.Tensor], names: dict[str, Any]) -> dict[str, torch.Tensor]:
    """spikerl's tensors under the official names and shapes."""
    out = {}
    for official, entry in names.items():
        name, shape = entry if isinstance(entry, tuple) else (entry, None)
        tensor = ours[name].detach().clone()
        out[official] = tensor.reshape(shape) if shape else tensor
    return out


class Queue:
    """A replay buffer stand-in: the same minibatches, in order, as each code wants them."""

    def __init__(self, batches: list[tuple[torch.Tensor, ...]], official: bool) -> None:
        self.batches, self.official, self.taken = batches, official, 0

    def sample(self, _size: int) -> Any:
        obs, act, rew, nxt, not_done = self.batches[self.taken]
        self.taken += 1
        if self.official:  # main.py's ReplayBuffer.sample: columns [B, 1] for reward, not_done
            return obs, act, nxt, rew[:, None], not_done[:, None]
        return Batch(obs, act, rew, nxt, not_done)


def build(args: argparse.Namespace) -> tuple[Any, Any]:
    """spikerl's learner and the official one holding the same weights."""
    sys.path.insert(0, str(args.official))
    from actor_critic import PT_TD3, TD3  # the official code

    cfg = load_config(paper_preset(ENV, args.variant), ["algo.target_noise=0"])
    torch.manual_seed(args.seed)
    ours = build_learner(cfg, OBS, ACT, "cpu")
    common = {"state_dim": OBS, "action_dim": ACT, "max_action": 1.0, "policy_noise": 0.0,
              "noise_clip": 0.0, "spiking_neurons": "LIF"}  # fmt: skip
    if args.variant == "proxy":
        proxy = cfg.algo.proxy
        official = PT_TD3(**common, hidden_sizes=list(proxy.hidden), proxy_lr=proxy.lr,
                          proxy_iters=proxy.updates)  # fmt: skip
        official.actor_target.load_state_dict(mapped(ours.proxy.state_dict(), PROXY_NAMES))
    else:
        official = TD3(**common)
        official.actor_target.load_state_dict(mapped(ours.actor_target.state_dict(), ACTOR_NAMES))
    official.actor.load_state_dict(mapped(ours.actor.state_dict(), ACTOR_NAMES))
    official.critic.load_state_dict(mapped(ours.critic.state_dict(), CRITIC_NAMES))
    official.critic_target.load_state_dict(mapped(ours.critic_target.state_dict(), CRITIC_NAMES))
    return ours, official


def largest_difference(ours: Any, official: Any, variant: str) -> dict[str, float]:
    """Per learned network, the largest absolute difference between the two codes."""
    pairs = {
        "actor": (ours.actor, official.actor, ACTOR_NAMES),
        "critic": (ours.critic, official.critic, CRITIC_NAMES),
        "target critic": (ours.critic_target, official.critic_target, CRITIC_NAMES),
    }
    if variant == "proxy":
        pairs["proxy"] = (ours.proxy, official.actor_target, PROXY_NAMES)
    else:
        pairs["target actor"] = (ours.actor_target, official.actor_target, ACTOR_NAMES)
    out = {}
    for label, (a, b, names) in pairs.items():
        theirs, ours_mapped = b.state_dict(), mapped(a.state_dict(), names)
        out[label] = max((theirs[k] - ours_mapped[k]).abs().max().item() for k in names)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ours, official = build(args)
    start = {k: v.clone() for k, v in mapped(ours.actor.state_dict(), ACTOR_NAMES).items()}
    gen = torch.Generator().manual_seed(args.seed + 1)
    per_update = ours.cfg.proxy.updates if args.variant == "proxy" else 1
    size = ours.cfg.batch_size
    batches = [
        (torch.randn(size, OBS, generator=gen), torch.rand(size, ACT, generator=gen) * 2 - 1,
         torch.randn(size, generator=gen), torch.randn(size, OBS, generator=gen),
         (torch.rand(size, generator=gen) > 0.05).float())
        for _ in range(args.updates * per_update)
    ]  # fmt: skip
    mine, theirs = Queue(batches, official=False), Queue(batches, official=True)
    print(f"{args.variant}: largest |spikerl - official| per network after each update")
    for update in range(1, args.updates + 1):
        ours.update(mine)
        official.train(theirs, size)
        diffs = largest_difference(ours, official, args.variant)
        now = mapped(ours.actor.state_dict(), ACTOR_NAMES)
        moved = max((now[k] - start[k]).abs().max().item() for k in start)
        cells = ", ".join(f"{k} {v:.2e}" for k, v in diffs.items())
        print(f"update {update}: {cells}; the actor has moved {moved:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
