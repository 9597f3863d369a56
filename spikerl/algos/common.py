"""Pieces shared by the learners: Polyak averaging, frozen parameters, the learner interface."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..buffers import ReplayBuffer
from ..nets.policy import ActingPolicy

__all__ = [
    "ONE_RUN",
    "PRECISIONS",
    "BatchAxis",
    "CheckpointMixin",
    "FusedAdam",
    "Learner",
    "adam",
    "critic_regression_step",
    "frozen",
    "matmul_precision",
    "soft_update",
]


class Learner(Protocol):
    """What the training loop needs from an algorithm (TD3, SAC, ...).

    ``actor`` is the deployed policy: ``actor(obs [B, n]) -> actions [B, m]`` deterministically;
    ``policy`` acts with it step by step (carrying a stateful actor's state; the training loop
    calls ``policy.reset()`` at every episode start).
    """

    actor: nn.Module
    policy: ActingPolicy
    metric_names: tuple[str, ...]

    def act(self, obs: np.ndarray, explore: bool) -> np.ndarray:
        """The action for ``obs`` (``[n]`` or ``[B, n]``) in [-1, 1]; ``explore`` adds the
        algorithm's exploration (TD3: Gaussian noise from the learner's own generator, SAC: a
        policy sample), else the deterministic action."""
        ...

    def update(self, buffer: ReplayBuffer) -> dict[str, float]:
        """One training iteration on minibatches sampled from ``buffer``; returns its metrics
        (``metric_names``: losses and diagnostics, the actor's only on actor steps)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Everything an exact resume needs: networks, targets, optimisers, update counter and
        the learner's random generators."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; a mismatch raises with the part named."""
        ...


def adam(params: Any, lr: float) -> torch.optim.Adam:
    """Adam with the fused kernel (one pass over all tensors; ~7x faster on CPU than the loop)."""
    return FusedAdam(params, lr=lr, fused=True)


#: Uniform parameter groups of the fused path: its tensors, and the group's hyperparameters.
_FusedGroup = tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor],
                    list[torch.Tensor], list[torch.Tensor], dict[str, Any]]  # fmt: skip


class FusedAdam(torch.optim.Adam):
    """``torch.optim.Adam(fused=True)`` with the step's two kernel calls made directly.

    Per parameter group, torch's step and this one make the same two calls with the same
    arguments: ``_foreach_add_(steps, 1)`` and ``_fused_adam_`` on the parameters that have a
    gradient, so parameters and optimiser state are bit for bit torch's (tested), and the state
    dict is torch's. What is left out is the Python around them (the tensors regrouped by device
    and dtype, the option dispatch), 30-60 us a step on the CPU of ``docs/performance.md``:
    about 1% of an ANN-TD3 training step, which steps an optimiser 1.5 times per env step.

    torch's own step runs instead for anything else: a closure, a parameter without state
    (its first step), parameters of several devices or dtypes or complex or sparse-gradient
    ones in a group, amsgrad, maximize, decoupled weight decay, a tensor learning rate,
    capturable or differentiable, gradient scaling, and a group that is not fused (one
    restored from a non-fused Adam's state dict, whose step counts torch keeps on the CPU).
    Either way, step hooks and the profiler range run once per step (``Optimizer`` wraps this
    ``step`` with them, so the fallback calls torch's step inside that wrapper).
    """

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        groups = None if closure is not None else self._fused_groups()
        if groups is None:
            return _unhooked(torch.optim.Adam.step)(self, closure)
        with torch.no_grad():
            for params, grads, exp_avgs, exp_avg_sqs, steps, g in groups:
                torch._foreach_add_(steps, 1)
                torch._fused_adam_(
                    params, grads, exp_avgs, exp_avg_sqs, [], steps,
                    amsgrad=False, lr=g["lr"], beta1=g["betas"][0], beta2=g["betas"][1],
                    weight_decay=g["weight_decay"], eps=g["eps"], maximize=False,
                    grad_scale=None, found_inf=None,
                )  # fmt: skip
        return None

    def _fused_groups(self) -> list[_FusedGroup] | None:
        """Every group's tensors for the direct calls, or None where torch's step must run."""
        if (
            getattr(self, "grad_scale", None) is not None
            or getattr(self, "found_inf", None) is not None
        ):
            return None
        groups = []
        for g in self.param_groups:
            if (not g["fused"] or g["foreach"] or g["amsgrad"] or g["maximize"]
                    or g["capturable"] or g["differentiable"] or g["decoupled_weight_decay"]
                    or torch.is_tensor(g["lr"])):  # fmt: skip
                return None
            params = [p for p in g["params"] if p.grad is not None]
            states = [self.state.get(p) for p in params]
            kinds = {(p.device, p.dtype, p.grad.is_sparse) for p in params}
            if not all(states) or len(kinds) > 1:
                return None
            if any(sparse or not dtype.is_floating_point for _, dtype, sparse in kinds):
                return None
            if params:
                groups.append((
                    params, [p.grad for p in params], [s["exp_avg"] for s in states],
                    [s["exp_avg_sq"] for s in states], [s["step"] for s in states], g,
                ))  # fmt: skip
        return groups


def _unhooked(step: Callable[..., Any]) -> Callable[..., Any]:
    """An optimiser class's ``step`` without the hook and profiler wrapper that ``Optimizer``
    puts around it (``hooked``) once an instance of that class exists."""
    return step.__wrapped__ if getattr(step, "hooked", False) else step  # type: ignore[attr-defined]


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging ``target <- tau * source + (1 - tau) * target`` over all parameters."""
    target_params = list(target.parameters())
    source_params = list(source.parameters())
    torch._foreach_lerp_(target_params, source_params, tau)


#: Values of ``run.precision``: the number format of the matrix products in learner updates.
PRECISIONS: tuple[str, ...] = ("float32", "bfloat16")


def matmul_precision(
    device: str | torch.device, precision: str = "float32"
) -> Callable[[], AbstractContextManager[Any]]:
    """A factory of the context that the actor's forwards in learner updates run in.

    ``float32``: no change. ``bfloat16``: ``torch.autocast`` with bfloat16, so the actor's
    matrix products take bfloat16 operands (the AMX/AVX512-BF16 units of recent x86 CPUs,
    tensor cores of GPUs) and accumulate in float32, while parameters, gradients, optimiser
    states, losses and neuron states stay float32 (spikes, 0 or 1, are exact in bfloat16;
    weights and analog inputs are rounded to 8 significant bits). Critics stay out of it: a
    Q value or TD target rounded to 8 bits would be as coarse as a reward. Backward passes run
    outside the context, in the formats autocast chose for their forward ops.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}; choose one of {list(PRECISIONS)}")
    if precision == "float32":
        return contextlib.nullcontext
    return functools.partial(torch.autocast, torch.device(device).type, dtype=torch.bfloat16)


class BatchAxis:
    """How an update reduces over its minibatch, for one run: a loss is a plain reduction
    (``F.mse_loss``, ``torch.mean``) of the batch, ``backward`` runs on it, and a metric is its
    ``item()``. :class:`~spikerl.algos.seeds.SeedAxis` is the same for S stacked seeds."""

    def reduce(self, fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        """``fn`` (a reduction over one run's batch) as the update applies it."""
        return fn

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def value(self, loss: torch.Tensor) -> Any:
        """A reduced tensor as a metric: a float (one value per seed for stacked seeds)."""
        return loss.item()

    def per_run(self, value: torch.Tensor) -> torch.Tensor:
        """A per-run scalar (one for stacked seeds: ``[S]``) shaped to broadcast against the
        run's batch (``[B]``; stacked: ``[S, B]``)."""
        return value


#: The batch axis of a single run.
ONE_RUN = BatchAxis()


def critic_regression_step(
    critic: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: Any,
    target: torch.Tensor,
    axis: BatchAxis = ONE_RUN,
) -> dict[str, Any]:
    """One step on ``MSE(Q1(s, a), y) + MSE(Q2(s, a), y)`` for a twin critic and TD target y."""
    q1, q2 = critic(batch.obs, batch.actions)
    mse = axis.reduce(F.mse_loss)
    loss = mse(q1, target) + mse(q2, target)
    optimizer.zero_grad(set_to_none=True)
    axis.backward(loss)
    optimizer.step()
    return {"loss/critic": axis.value(loss), "q/mean": axis.value(axis.reduce(torch.mean)(q1))}


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Temporarily stop gradients into ``module``'s parameters (the critic in an actor step)."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


Generator = np.random.Generator | torch.Generator


def generator_state(generator: Generator) -> Any:
    """The state of a NumPy or torch generator as plain data."""
    if isinstance(generator, torch.Generator):
        return generator.get_state()
    return generator.bit_generator.state


def set_generator_state(generator: Generator, state: Any) -> None:
    if isinstance(generator, torch.Generator):
        generator.set_state(state)
    else:
        generator.bit_generator.state = state


class CheckpointMixin:
    """``state_dict``/``load_state_dict`` over :meth:`parts` and :meth:`generators`, plus
    ``iterations`` and the acting policy's carried state.

    Subclasses define ``parts()`` (name -> module, optimiser, or None), ``generators()`` (name ->
    the learner's own NumPy or torch generators), ``iterations`` and ``policy``; everything
    needed to continue training bit-for-bit except the replay buffer, which the run saves.
    """

    iterations: int
    policy: ActingPolicy

    def parts(self) -> dict[str, Any]:
        """Name -> network, optimiser or None (a part this variant does not have)."""
        raise NotImplementedError

    def generators(self) -> dict[str, Generator]:
        """Name -> the learner's own NumPy or torch random generator."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Every part's state, the iteration count, the generators' states and the acting
        policy's carried state."""
        state = {k: p.state_dict() for k, p in self.parts().items() if p is not None}
        state["iterations"] = self.iterations
        state["generators"] = {k: generator_state(g) for k, g in self.generators().items()}
        state["policy"] = self.policy.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; a missing part raises ``KeyError`` naming it."""
        if "generators" not in state:
            raise KeyError(
                "the checkpoint was written by spikerl 0.1, before independent random streams; "
                "its policy can be evaluated, but the run cannot be resumed"
            )
        for key, part in self.parts().items():
            if part is None:
                continue
            if key not in state:
                raise KeyError(f"checkpoint has no '{key}' (was it saved by another method?)")
            part.load_state_dict(state[key])
        self.iterations = state["iterations"]
        for key, generator in self.generators().items():
            set_generator_state(generator, state["generators"][key])
        self.policy.load_state_dict(state.get("policy", {}))
