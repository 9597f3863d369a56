r"""S networks of one architecture as one module: parameters stacked on a leading seed axis.

:class:`SeedStack` holds a copy of the first member whose every parameter and buffer is
replaced by the stack of the members' tensors, ``[S, *shape]``, under the same names and in
the same order (so optimisers, Polyak averaging and parameter groups built from it see the
member layout with one more axis). Calling it maps the member's own ``forward`` (or another
method, :meth:`SeedStack.call`) over that axis with :func:`torch.func.vmap` and
:func:`torch.func.functional_call`: input ``[S, ...]`` row ``s`` goes through member ``s``'s
parameters, output row ``s`` is what member ``s`` alone returns. No network code is
duplicated: neurons, encoders and decoders run as they are, each seed's matrices become one
batched product.

Element-wise work (Adam, Polyak averaging, the neurons) gives each seed exactly what its own
network gives; the batched products and reductions have matched the per-seed ones bit for
bit on the CPUs tested, but in general they agree only up to float summation order.

Module attributes that are not tensors (a surrogate's slope, a LIF's fixed leak) are shared by
all members: they must be equal, which members built from one config are.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, vmap

__all__ = ["SeedStack", "member_state", "stack_states"]


class _Method(nn.Module):
    """``forward`` = ``getattr(net, name)``: lets :func:`functional_call` run any method."""

    def __init__(self, net: nn.Module, name: str) -> None:
        super().__init__()
        self.net, self.name = net, name

    def forward(self, *args: Any) -> Any:
        return getattr(self.net, self.name)(*args)


class SeedStack(nn.Module):
    """``S`` members of one architecture, called together on ``[S, ...]`` inputs.

    Args:
        members: modules of identical structure (names, shapes, non-tensor attributes).

    ``stack.net`` is the template whose parameters are the stacks; ``stack.seeds`` is S.
    ``state_dict`` keys are the member's keys under ``net.``; :func:`member_state` and
    :func:`stack_states` convert between the two layouts.
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("SeedStack needs at least one member")
        self.seeds = len(members)
        self.net = copy.deepcopy(members[0])
        tensors = [dict(m.state_dict(keep_vars=True)) for m in members]
        names = list(tensors[0])
        for other in tensors[1:]:
            if list(other) != names:
                raise ValueError("SeedStack members differ in their parameters or buffers")
        for name, value in tensors[0].items():
            stacked = torch.stack([t[name].detach() for t in tensors])
            owner, _, leaf = name.rpartition(".")
            module = self.net.get_submodule(owner)
            if isinstance(value, nn.Parameter):
                setattr(module, leaf, nn.Parameter(stacked, requires_grad=value.requires_grad))
            else:
                module.register_buffer(leaf, stacked)
        self._methods = {"forward": self.net}

    def forward(self, *args: Any) -> Any:
        """The members' ``forward`` over the leading seed axis of every argument."""
        return self.call("forward", *args)

    def call(self, method: str, *args: Any) -> Any:
        """``getattr(member_s, method)(*args[s])`` for every seed ``s``, stacked."""
        target = self._methods.get(method)
        if target is None:
            target = self._methods[method] = _Method(self.net, method)
        prefix = "" if target is self.net else "net."
        tensors = {prefix + k: v for k, v in self.net.state_dict(keep_vars=True).items()}

        def one(member_tensors: dict[str, torch.Tensor], *member_args: Any) -> Any:
            return functional_call(target, member_tensors, member_args)

        return vmap(one, randomness="error")(tensors, *args)


def member_state(stacked: Mapping[str, Any], index: int, prefix: str = "") -> dict[str, Any]:
    """Row ``index`` of a stacked module state dict, as one member's state dict (cloned, so it
    holds no view into the stack): keys lose ``prefix``."""
    return {k.removeprefix(prefix): v[index].clone() for k, v in stacked.items()}


def stack_states(states: Sequence[Mapping[str, torch.Tensor]], prefix: str = "") -> dict:
    """The members' module state dicts stacked key by key (keys gain ``prefix``)."""
    return {prefix + k: torch.stack([s[k] for s in states]) for k in states[0]}
