"""Uniform replay buffer: preallocated storage, its own random generator.

Transitions are ``(obs, action, reward, next_obs, not_done)``. ``not_done`` is 0 only when the
episode *terminated* (a true end state); a time-limit *truncation* keeps ``not_done = 1`` so the
critic still bootstraps from ``next_obs`` (Pardo et al. 2018; SB3 issue #284).

Storage is host NumPy arrays by default (a sampled batch is copied to the device field by
field), or, with ``on_device=True``, one tensor of packed rows ``[capacity, 2n + m + 2]`` in
the device's memory: a stored transition is one host-to-device copy, a sampled batch one
gather on the device plus the copy of its indices, its fields cut from the gathered rows.
The indices come from the same generator either way, so both storages give the same batches,
value for value and in the same (contiguous) layout.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

__all__ = ["Batch", "ReplayBuffer"]

_FIELDS = ("obs", "actions", "rewards", "next_obs", "not_done")


class Batch(NamedTuple):
    """A minibatch of tensors: obs ``[B, n]``, actions ``[B, m]``, rewards and not_done ``[B]``."""

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_obs: torch.Tensor
    not_done: torch.Tensor


class ReplayBuffer:
    """Fixed-capacity ring buffer of transitions with uniform sampling.

    Args:
        obs_dim, act_dim: flat observation and action sizes.
        capacity: number of transitions kept; the oldest are overwritten.
        seed: an int or :class:`numpy.random.SeedSequence` (a run's ``replay`` stream) for the
            buffer's own ``np.random.Generator`` (sampling never touches global RNGs).
        device: where sampled tensors are put.
        on_device: keep the transitions in ``device``'s memory (packed rows, see the module
            docstring) instead of host NumPy arrays.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        capacity: int,
        seed: int | np.random.SeedSequence = 0,
        device: str = "cpu",
        on_device: bool = False,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity, self.device, self.on_device = capacity, torch.device(device), on_device
        n, m = obs_dim, act_dim
        self._shapes = ((n,), (m,), (n,))  # obs, action, next_obs
        #: field -> its columns in a packed row (a slice; an int for the scalar fields)
        self.columns = {
            "obs": slice(0, n),
            "actions": slice(n, n + m),
            "rewards": n + m,
            "next_obs": slice(n + m + 1, 2 * n + m + 1),
            "not_done": 2 * n + m + 1,
        }
        self._allocate(capacity)
        self.rng = np.random.default_rng(seed)

    def _allocate(self, capacity: int) -> None:
        """Empty storage for ``capacity`` transitions."""
        (n,), (m,), _ = self._shapes
        if self.on_device:
            self.rows = torch.zeros(
                (capacity, 2 * n + m + 2), dtype=torch.float32, device=self.device
            )
        else:
            self.obs = np.zeros((capacity, n), np.float32)
            self.actions = np.zeros((capacity, m), np.float32)
            self.rewards = np.zeros(capacity, np.float32)
            self.next_obs = np.zeros((capacity, n), np.float32)
            self.not_done = np.zeros(capacity, np.float32)
        self.capacity, self.ptr, self.size = capacity, 0, 0

    def __len__(self) -> int:
        return self.size

    def add(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        reward: float,
        next_obs: np.ndarray,
        terminated: bool,
    ) -> None:
        """Store one transition; ``terminated`` (not truncation) zeroes the bootstrap."""
        i, not_done = self.ptr, 0.0 if terminated else 1.0
        if self.on_device:
            obs, action, next_obs = (np.asarray(x, np.float32) for x in (obs, action, next_obs))
            if (obs.shape, action.shape, next_obs.shape) != self._shapes:
                raise ValueError(
                    f"transition shapes obs {obs.shape}, action {action.shape}, next_obs "
                    f"{next_obs.shape}; this buffer stores {self._shapes}"
                )
            row = np.concatenate([obs, action, [reward], next_obs, [not_done]], dtype=np.float32)
            self.rows[i] = torch.from_numpy(row)
        else:
            self.obs[i], self.actions[i], self.rewards[i] = obs, action, reward
            self.next_obs[i], self.not_done[i] = next_obs, not_done
        self.ptr = (self.ptr + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample_indices(self, batch_size: int) -> np.ndarray:
        """``batch_size`` uniform indices (with replacement) of stored transitions, from the
        buffer's own generator."""
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        return self.rng.integers(0, self.size, size=batch_size)

    def gather(self, idx: np.ndarray) -> Batch:
        """The transitions at ``idx`` as tensors on the buffer's device."""
        if self.on_device:
            rows = self.rows[torch.from_numpy(idx).to(self.device)]
            return Batch(*(rows[:, self.columns[f]].contiguous() for f in _FIELDS))

        def put(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(a[idx], device=self.device)

        return Batch(*(put(getattr(self, f)) for f in _FIELDS))

    def sample(self, batch_size: int) -> Batch:
        """A uniform minibatch (with replacement) of ``batch_size`` transitions."""
        return self.gather(self.sample_indices(batch_size))

    def state_dict(self, include_data: bool = True) -> dict[str, Any]:
        """Counters, RNG state and (optionally) the stored transitions, as plain data."""
        state: dict[str, Any] = {
            "ptr": self.ptr,
            "size": self.size,
            "capacity": self.capacity,
            "rng": self.rng.bit_generator.state,
        }
        if include_data:
            state["data"] = {f: self.stored(f) for f in _FIELDS}
        return state

    def stored(self, field: str) -> torch.Tensor:
        """A CPU copy of one field of the stored transitions, in storage order."""
        if self.on_device:
            rows = self.rows[: self.size, self.columns[field]]
            return rows.to("cpu", memory_format=torch.contiguous_format, copy=True)
        return torch.from_numpy(getattr(self, field)[: self.size].copy())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (the counters only together with the data).

        Every stored transition is kept when the checkpoint's capacity differs (a run resumed
        with another ``run.total_steps``, which caps a run's capacity below
        ``algo.buffer_size``): a larger one makes this buffer that large; a smaller one's
        transitions are stored oldest first, where a buffer this large from the start would
        hold them (it had not wrapped: the capacity is the budget), the next one after them.
        """
        self.rng.bit_generator.state = state["rng"]
        if "data" not in state:  # counters restored only with the data they describe
            return
        data, size, ptr = state["data"], state["size"], state["ptr"]
        if state["capacity"] > self.capacity:
            self._allocate(state["capacity"])
        elif state["capacity"] < self.capacity:
            # oldest first: a full ring's oldest transition is at ptr
            order = np.roll(np.arange(size), -ptr) if size == state["capacity"] else None
            data = {f: v if order is None else v[torch.from_numpy(order)] for f, v in data.items()}
            ptr = size
        self.ptr, self.size = ptr, size
        for f in _FIELDS:
            if self.on_device:
                self.rows[:size, self.columns[f]] = data[f].to(self.device)
            else:
                getattr(self, f)[:size] = data[f].numpy()
