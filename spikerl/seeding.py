"""Independent random streams, all derived from one run seed.

Every consumer of randomness in a run gets its own generator, spawned from
``numpy.random.SeedSequence(seed)``: stream ``i`` is the child ``SeedSequence(seed,
spawn_key=(i,))``, exactly the ``i``-th child of ``SeedSequence(seed).spawn(n)``. Streams never
share a generator, so drawing more from one (a longer warm-up, a bigger batch, another learner in
the same process) leaves every other stream unchanged. Indices are fixed per name and new streams
are only appended, so a stream's numbers never depend on which other streams exist.

=================  ================================================================
stream             used for
=================  ================================================================
``init``           network initialisation (inside :func:`torch.random.fork_rng`)
``env``            the training env's first ``reset(seed=...)``
``action_space``   uniform warm-up actions (``action_space.seed``)
``exploration``    TD3's Gaussian exploration noise; SAC's exploratory samples
``target_noise``   TD3's target-policy smoothing noise (a learner-owned torch generator)
``replay``         replay-buffer sampling
``evaluation``     the evaluation env's seed (fixed start states for every evaluation)
``policy_sample``  SAC's reparameterised samples inside the update
``calibration``    the conversion calibration env's seed and percentile reservoir
``noise``          injected action noise of the conversion analysis
=================  ================================================================
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

__all__ = ["STREAMS", "SeedStreams"]

STREAMS: tuple[str, ...] = (
    "init",
    "env",
    "action_space",
    "exploration",
    "target_noise",
    "replay",
    "evaluation",
    "policy_sample",
    "calibration",
    "noise",
)


class SeedStreams:
    """The named random streams of one run seed (module docstring)."""

    def __init__(self, seed: int) -> None:
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.seed = int(seed)

    def sequence(self, name: str) -> np.random.SeedSequence:
        """The :class:`numpy.random.SeedSequence` of stream ``name``."""
        if name not in STREAMS:
            raise ValueError(f"unknown random stream {name!r}; streams are {list(STREAMS)}")
        return np.random.SeedSequence(self.seed, spawn_key=(STREAMS.index(name),))

    def integer(self, name: str) -> int:
        """A 32-bit integer seed for APIs that take one (Gymnasium ``reset``, ``Space.seed``)."""
        return int(self.sequence(name).generate_state(1, np.uint32)[0])

    def numpy(self, name: str) -> np.random.Generator:
        """A fresh NumPy generator for stream ``name``."""
        return np.random.default_rng(self.sequence(name))

    def torch(self, name: str, device: str | torch.device = "cpu") -> torch.Generator:
        """A fresh torch generator on ``device`` for stream ``name``."""
        generator = torch.Generator(device=device)
        generator.manual_seed(int(self.sequence(name).generate_state(1, np.uint64)[0]))
        return generator

    @contextmanager
    def torch_init(self) -> Iterator[None]:
        """Seed torch's global CPU generator from the ``init`` stream inside the block only, so
        building networks neither depends on nor disturbs the process's global generator."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.sequence("init").generate_state(1, np.uint64)[0]))
            yield
