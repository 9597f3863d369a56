r"""Many seeds in one process: S TD3 or SAC learners of one config updated as one.

:class:`SeedStackedTD3` is :class:`~spikerl.algos.td3.TD3` (and :class:`SeedStackedSAC` is
:class:`~spikerl.algos.sac.SAC`) with every network a :class:`~spikerl.nets.stack.SeedStack`
(the S seeds' parameters stacked on a leading axis) and the update's tensors ``[S, B, ...]``:
one forward, backward and fused Adam step per network and iteration serve all seeds. Nothing
of the update is rewritten; only the hooks that touch a seed's own data differ:

- losses and statistics are the seeds' own batch reductions (:class:`SeedAxis`: ``vmap`` of
  ``F.mse_loss`` / ``torch.mean``), their sum is differentiated (each seed's gradient is its
  own loss's), a per-seed scalar (SAC's temperature) broadcasts over its own batch, and a
  metric is one value per seed;
- exploration, target-policy and SAC policy-sample noise are drawn from each seed's own
  generators, in the order a single run draws them (SAC's actor is called with that noise,
  :meth:`~spikerl.nets.ann.GaussianActor.sample_from_noise`);
- the replay minibatch is the stack of each seed's buffer's own sample (:class:`SeedBuffers`).

So seed ``s`` follows the single-seed run of seed ``s``: same initial weights, same batches,
same noise, and the same arithmetic except that batched products and reductions may sum in
another order. :meth:`SeedStackedTD3.member_state_dict` cuts out one seed's learner state in the
single-run checkpoint format (a seed can be resumed, evaluated or exported alone), and
:meth:`SeedStackedTD3.load_member_states` builds the stack from S such states.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.func import vmap

from ..buffers import Batch, ReplayBuffer
from ..nets.stack import SeedStack, member_state, stack_states
from ..seeding import SeedStreams
from .common import BatchAxis, Generator, adam, generator_state, set_generator_state
from .sac import SAC
from .td3 import TD3

__all__ = ["SeedAxis", "SeedBuffers", "SeedStackedSAC", "SeedStackedTD3", "stack_learners"]


class SeedAxis(BatchAxis):
    """Reductions per seed over ``[S, B, ...]`` tensors; the loss differentiated is the sum of
    the seeds' losses (so each seed's parameters get exactly their own loss's gradient)."""

    def reduce(self, fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        return vmap(fn)

    def backward(self, loss: torch.Tensor) -> None:
        loss.sum().backward()

    def value(self, loss: torch.Tensor) -> list[float]:
        return loss.tolist()

    def per_run(self, value: torch.Tensor) -> torch.Tensor:
        return value.unsqueeze(-1)


class SeedBuffers:
    """The S seeds' replay buffers sampled together: each draws its own indices (its own
    generator), the minibatches are stacked ``[S, B, ...]``."""

    def __init__(self, buffers: Sequence[ReplayBuffer]) -> None:
        self.buffers = list(buffers)

    def __len__(self) -> int:
        return min(len(b) for b in self.buffers)

    def sample(self, batch_size: int) -> Batch:
        batches = [b.sample(batch_size) for b in self.buffers]
        return Batch(*(torch.stack(field) for field in zip(*batches, strict=True)))


class _MemberStates:
    """One seed's learner state in the single-run format, and S such states stacked back.

    The stacked learner (this mixin first, then the single-run learner class, whose
    ``parts()`` it reads) sets ``seeds``, ``iterations`` and ``member_generators`` (generator
    name -> the S seeds' generators, the names of the single run's ``generators()``)."""

    seeds: int
    iterations: int
    member_generators: dict[str, list[Generator]]
    parts: Callable[[], dict[str, Any]]

    def member_state_dict(self, index: int) -> dict[str, Any]:
        """Seed ``index``'s learner state, as the ``state_dict`` of its single run."""
        state: dict[str, Any] = {}
        for key, part in self.parts().items():
            if isinstance(part, SeedStack):
                state[key] = member_state(part.state_dict(), index, "net.")
            elif part is not None:
                state[key] = _member_optimizer_state(part.state_dict(), index)
        state["iterations"] = self.iterations
        state["generators"] = {
            name: generator_state(gens[index]) for name, gens in self.member_generators.items()
        }
        state["policy"] = {"state": None}  # the stacked actors are stateless between decisions
        return state

    def load_member_states(self, states: Sequence[dict[str, Any]]) -> None:
        """Stack S single-run learner states (their ``state_dict``) into this learner."""
        if len(states) != self.seeds:
            raise ValueError(f"{len(states)} learner states for {self.seeds} seeds")
        iterations = {s["iterations"] for s in states}
        if len(iterations) != 1:
            raise ValueError(f"the seeds are at different iterations {sorted(iterations)}")
        for key, part in self.parts().items():
            if isinstance(part, SeedStack):
                part.load_state_dict(stack_states([s[key] for s in states], "net."))
            elif part is not None:
                part.load_state_dict(_stack_optimizer_states([s[key] for s in states]))
        self.iterations = iterations.pop()
        for name, gens in self.member_generators.items():
            for state, gen in zip(states, gens, strict=True):
                set_generator_state(gen, state["generators"][name])

    def state_dict(self) -> dict[str, Any]:
        return {"members": [self.member_state_dict(i) for i in range(self.seeds)]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.load_member_states(state["members"])

    def generators(self) -> dict[str, Any]:
        return {}

    def _deterministic_action(self, obs: np.ndarray) -> np.ndarray:
        """Actions ``[S, m]`` for one observation per seed ``[S, n]`` (a batch of 1 each)."""
        return self.policy(np.asarray(obs)[:, None, :])[:, 0]  # type: ignore[attr-defined]


class SeedStackedTD3(_MemberStates, TD3):
    """S TD3 learners (same config, different seeds) as one; see the module docstring.

    Args:
        members: the seeds' learners, built by :func:`~spikerl.algos.build_learner` from one
            config with ``run.seed`` changed; their current state is copied in.
        leak_lr, precision: what the members were built with (``actor.plif_lr``,
            ``run.precision``).
    """

    def __init__(self, members: Sequence[TD3], leak_lr: float, precision: str) -> None:
        first = members[0]
        super().__init__(
            SeedStack([m.actor for m in members]),
            SeedStack([m.critic for m in members]),
            first.cfg,
            proxy=SeedStack([m.proxy for m in members]) if first.proxy is not None else None,
            leak_lr=leak_lr,
            max_action=first.max_action,
            device=first.device,
            precision=precision,
        )
        self.seeds = len(members)
        self.axis = SeedAxis()
        streams = SeedStreams(0)  # placeholders; load_member_states sets every seed's state
        self.rngs = [streams.numpy("exploration") for _ in members]
        self.target_gens = [streams.torch("target_noise", self.device) for _ in members]
        self.member_generators = {"exploration": self.rngs, "target_noise": self.target_gens}
        self.load_member_states([m.state_dict() for m in members])

    # --- the hooks of TD3 that touch one seed's data ------------------------------------------
    def _exploration_noise(self, scale: float, shape: tuple[int, ...]) -> np.ndarray:
        return np.stack([rng.normal(0.0, scale, shape[1:]) for rng in self.rngs])

    def _target_noise(self, like: torch.Tensor) -> torch.Tensor:
        return _stacked_normal(like.shape[1:], self.target_gens, like)

    def _q1(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.critic.call("q1_value", obs, actions)


class SeedStackedSAC(_MemberStates, SAC):
    """S SAC learners (same config, different seeds) as one; see the module docstring. The
    temperatures are stacked too (one ``log_alpha`` per seed, ``[S]``)."""

    def __init__(self, members: Sequence[SAC]) -> None:
        first = members[0]
        self.act_dim = int(-first.target_entropy)
        super().__init__(
            SeedStack([m.actor for m in members]),
            SeedStack([m.critic for m in members]),
            first.cfg,
            self.act_dim,
            device=first.device,
        )
        self.seeds = len(members)
        self.axis = SeedAxis()
        self.temperature = SeedStack([m.temperature for m in members])
        self.alpha_opt = adam(self.temperature.parameters(), first.cfg.sac.lr_alpha)
        streams = SeedStreams(0)  # placeholders; load_member_states sets every seed's state
        self.member_generators = {
            name: [streams.torch(name, self.device) for _ in members]
            for name in ("exploration", "policy_sample")
        }
        self.load_member_states([m.state_dict() for m in members])

    @property
    def log_alpha(self) -> torch.Tensor:
        return self.temperature.net.log_alpha

    def _sample(self, obs: torch.Tensor, stream: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Each seed's noise from its own generator ``stream`` (the shape and order of its
        single run's draw), then all seeds' samples in one call."""
        shape = (*obs.shape[1:-1], self.act_dim)
        eps = _stacked_normal(shape, self.member_generators[stream], obs)
        return self.actor.call("sample_from_noise", obs, eps)


def _stacked_normal(
    shape: tuple[int, ...], generators: Sequence[torch.Generator], like: torch.Tensor
) -> torch.Tensor:
    """``[S, *shape]`` standard normal noise, row ``s`` drawn from seed ``s``'s generator as its
    single run draws it (the dtype and device of ``like``)."""
    return torch.stack([
        torch.randn(shape, generator=g, dtype=like.dtype, device=like.device) for g in generators
    ])  # fmt: skip


def stack_learners(members: Sequence[Any], cfg: Any) -> SeedStackedTD3 | SeedStackedSAC:
    """The seeds' single-run learners (one config, ``run.seed`` changed) as one stacked
    learner for ``cfg.algo.name`` (``td3`` or ``sac``)."""
    if cfg.algo.name == "sac":
        return SeedStackedSAC(members)
    return SeedStackedTD3(members, cfg.actor.plif_lr, cfg.run.precision)


def _member_optimizer_state(stacked: dict[str, Any], index: int) -> dict[str, Any]:
    """Row ``index`` of a stacked optimiser's state (the shared ``step`` count kept as is)."""
    return {
        "state": {
            i: {k: v.clone() if k == "step" else v[index].clone() for k, v in s.items()}
            for i, s in stacked["state"].items()
        },
        "param_groups": copy.deepcopy(stacked["param_groups"]),
    }


def _stack_optimizer_states(states: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """S single-run optimiser states as the state of one optimiser over stacked parameters."""
    first = states[0]
    stacked: dict[int, dict[str, Any]] = {}
    for i, param_state in first["state"].items():
        stacked[i] = {}
        for key, value in param_state.items():
            rows = [s["state"][i][key] for s in states]
            if key == "step":
                if any(not torch.equal(torch.as_tensor(r), torch.as_tensor(value)) for r in rows):
                    raise ValueError("the seeds' optimisers have taken different numbers of steps")
                stacked[i][key] = value
            else:
                stacked[i][key] = torch.stack(rows)
    return {"state": stacked, "param_groups": copy.deepcopy(first["param_groups"])}
