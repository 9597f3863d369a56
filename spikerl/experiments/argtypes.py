"""argparse value types shared by the subcommands (a bad value is a usage error, exit 2)."""

from __future__ import annotations

import argparse

__all__ = [
    "non_negative_int",
    "positive_float",
    "positive_int",
    "seed",
    "seed_list",
    "unit_interval",
]

#: numpy's legacy seeding (np.random.seed) takes seeds below 2**32 (as ``run.seed``)
MAX_SEED = 2**32 - 1


def _integer(text: str, lo: int, what: str, hi: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < lo or (hi is not None and value > hi):
        raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
    return value


def positive_int(text: str) -> int:
    return _integer(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    return _integer(text, 0, "an integer >= 0")


def positive_float(text: str) -> float:
    """A finite number > 0, e.g. a surrogate slope."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not (0.0 < value < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def seed(text: str) -> int:
    return _integer(text, 0, f"a seed in [0, {MAX_SEED}]", MAX_SEED)


def unit_interval(text: str) -> float:
    """A number in [0, 1] (NaN refused), e.g. the reward curriculum rho."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text}")
    return value


MAX_SEEDS = 128  # seeds in one process, each with its own env and replay buffer


def seed_list(text: str) -> list[int]:
    """Seeds as ``0-7``, ``0,2,5`` or a mix (``0-3,8``); ranges include both ends; at most
    :data:`MAX_SEEDS`, counted before any range is expanded."""
    bad = argparse.ArgumentTypeError(f"expected seeds like 0-7 or 0,2,5, got {text!r}")
    ranges = []
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        try:
            lo = int(first)
            hi = int(last) if dash else lo
        except ValueError:
            raise bad from None
        if lo < 0 or hi < 0:
            raise bad
        if hi < lo:
            raise argparse.ArgumentTypeError(
                f"the range {part.strip()} runs backwards; write {hi}-{lo}"
            )
        ranges.append((lo, hi))
    count = sum(hi - lo + 1 for lo, hi in ranges)
    if count > MAX_SEEDS:
        raise argparse.ArgumentTypeError(
            f"{text!r} names {count} seeds; one process trains at most {MAX_SEEDS} (each keeps its "
            "own env and replay buffer): split them, or run them with spikerl sweep"
        )
    seeds = [seed for lo, hi in ranges for seed in range(lo, hi + 1)]
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"{text!r} names a seed twice")
    return seeds
