"""Acting with a deployed actor, one control step at a time.

:class:`ActingPolicy` turns NumPy observations into NumPy actions under
``torch.inference_mode`` (no graph, no version counters; the state it carries is made of
inference tensors and used only here). For a stateful network (``actor.stateful``, e.g. a
controller stepped once per control step) it carries the network state from one call to the
next and restarts it from zeros at
:meth:`ActingPolicy.reset`, which training and evaluation call at every episode start (or, for a
batch of envs, with the mask of the rows whose episode ended). A stateless actor (an ANN, the
proxy-target SNN) is called as ``actor(obs)`` and is unaffected by resets.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..snn.functional import map_state

__all__ = ["ActingPolicy"]


class ActingPolicy:
    """Deterministic actions from ``actor`` on ``device``; carries a stateful actor's state.

    Call it with one observation ``[n]`` (returns ``[m]``) or a batch ``[B, n]`` (returns
    ``[B, m]``); a stateful actor's batch size must stay the same between resets.
    """

    def __init__(self, actor: nn.Module, device: str | torch.device = "cpu") -> None:
        self.actor, self.device = actor, torch.device(device)
        self.stateful = bool(getattr(actor, "stateful", False))
        self.state: Any = None

    @torch.inference_mode()
    def reset(self, mask: np.ndarray | None = None) -> None:
        """Episode start: zero the whole state, or only the rows where ``mask`` is True."""
        if mask is None or self.state is None:
            self.state = None
            return
        rows = torch.as_tensor(np.asarray(mask, dtype=bool), device=self.device)
        self.state = self.actor.reset_rows(self.state, rows)

    @torch.inference_mode()  # no autograd bookkeeping: about 10% of a LIF decision
    def __call__(self, obs: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        single = x.dim() == 1
        x = x.unsqueeze(0) if single else x
        if self.stateful:
            action, self.state = self.actor.step(x, self.state)
        else:
            action = self.actor(x)
        action = action.cpu().numpy()
        return action[0] if single else action

    def state_dict(self) -> dict[str, Any]:
        """The carried state (CPU tensors), for exact resume mid-episode."""
        if self.state is None:
            return {"state": None}
        return {"state": [list(layer) for layer in map_state(torch.Tensor.cpu, self.state)]}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` onto this policy's device (a stateless actor keeps
        none)."""
        layers = saved.get("state")
        if layers is None or not self.stateful:
            self.state = None
            return
        self.state = tuple(
            neuron.state_type(*(t.to(self.device) for t in layer))
            for neuron, layer in zip(self.actor.neurons, layers, strict=True)
        )
