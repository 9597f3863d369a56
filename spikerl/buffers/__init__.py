"""Replay buffers."""

from .replay import Batch, ReplayBuffer

__all__ = ["Batch", "ReplayBuffer"]
