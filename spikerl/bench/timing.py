"""Repeated timing windows and their summary (median, minimum, maximum)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

__all__ = ["Windows", "rate_for", "sync", "torch_threads"]


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` torch intra-op threads, then restore the previous count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class Windows:
    """Rates (work per second) of repeated timing windows of one setting."""

    values: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(value)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def summary(self) -> dict[str, float | list[float]]:
        """``median``, ``min``, ``max`` and every window, for the JSON report."""
        return {
            "median": self.median,
            "min": min(self.values),
            "max": max(self.values),
            "windows": list(self.values),
        }


def sync(device: str) -> None:
    """Wait for queued GPU work so a timer reads the work, not its launch."""
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def rate_for(call: Callable[[], object], work: float, seconds: float, device: str = "cpu") -> float:
    """``work`` units per second of calling ``call`` repeatedly for at least ``seconds``."""
    calls, started = 0, time.perf_counter()
    while True:
        call()
        calls += 1
        if calls % 8 == 0 or seconds <= 0:
            sync(device)
            elapsed = time.perf_counter() - started
            if elapsed >= seconds:
                return work * calls / elapsed
