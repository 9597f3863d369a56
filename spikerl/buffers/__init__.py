"""Replay buffers."""

from .replay import Batch, ReplayBuffer
from .sequence import EpisodeSequenceBuffer, EpisodeWriter, SequenceBatch

__all__ = ["Batch", "EpisodeSequenceBuffer", "EpisodeWriter", "ReplayBuffer", "SequenceBatch"]
