"""Threshold calibration from the ANN's own rollouts (spec ``conversion.md`` Sec. 3).

The deterministic ANN acts for ``steps`` environment steps (actions clipped to the bounds,
reset on termination or truncation), its env seeded from the ``calibration`` stream of the
evaluation seed, never the evaluation stream (Sec. 12.5). Per hidden unit (fully connected) or
per output channel over all positions (conv), the threshold is

- ``max``: the maximum post-ReLU activation, or
- ``percentile``: the p-th percentile of the unit's strictly positive values (0 if none), from a
  bounded per-unit reservoir (``reservoir`` values, Algorithm R, drawn from the calibration
  stream), so memory is ``O(units * reservoir)`` however long the calibration.

A threshold of 0 is legal (a unit that never activated); :attr:`Calibration.zero_units` counts
them per layer.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..seeding import SeedStreams
from .source import ConversionError, SourcePolicy

__all__ = ["Calibration", "CalibrationSettings", "UnitStatistic", "calibrate"]

STATISTICS = ("max", "percentile")


@dataclass(frozen=True)
class CalibrationSettings:
    """How thresholds are measured: env steps, statistic, percentile and reservoir size."""

    steps: int = 10_000
    statistic: str = "max"
    percentile: float = 99.9
    reservoir: int = 2048

    def __post_init__(self) -> None:
        if self.statistic not in STATISTICS:
            raise ConversionError(f"statistic={self.statistic!r}; choose one of {list(STATISTICS)}")
        if self.steps < 1:
            raise ConversionError(f"calibration steps must be >= 1, got {self.steps}")
        if not 0.0 < self.percentile <= 100.0:
            raise ConversionError(f"percentile must be in (0, 100], got {self.percentile}")
        if self.reservoir < 1:
            raise ConversionError(f"reservoir must be >= 1, got {self.reservoir}")


@dataclass
class Calibration:
    """Per hidden layer the thresholds ``[units]`` (flattened as the SNN's layers), plus the
    settings, seed, zero-threshold counts and the time it took."""

    thetas: list[torch.Tensor]
    settings: CalibrationSettings
    seed: int
    env_seed: int
    seconds: float

    @property
    def zero_units(self) -> list[int]:
        return [int((t == 0).sum()) for t in self.thetas]

    def describe(self) -> dict:
        """YAML/JSON-safe record of how the thresholds were made."""
        return {
            **asdict(self.settings),
            "seed": self.seed,
            "env_seed": self.env_seed,
            "zero_units": self.zero_units,
            "seconds": round(self.seconds, 3),
        }


class UnitStatistic:
    """Running per-unit statistic of activations ``[rows, units]`` (rows: steps x positions)."""

    def __init__(self, units: int, settings: CalibrationSettings, generator: torch.Generator):
        self.settings, self.generator = settings, generator
        self.maximum = torch.zeros(units)
        if settings.statistic == "percentile":
            self.values = torch.full((settings.reservoir, units), float("nan"))
            self.seen = torch.zeros(units, dtype=torch.long)

    def update(self, rows: torch.Tensor) -> None:
        self.maximum = torch.maximum(self.maximum, rows.max(dim=0).values.clamp_min(0.0))
        if self.settings.statistic == "percentile":
            for row in rows:
                self._reservoir(row)

    def _reservoir(self, row: torch.Tensor) -> None:
        positive = row > 0
        self.seen += positive
        slot = self.seen - 1
        full = slot >= self.settings.reservoir
        draw = (torch.rand(row.shape, generator=self.generator) * self.seen).long()
        slot = torch.where(full, draw, slot)
        write = positive & (slot < self.settings.reservoir)
        columns = torch.nonzero(write).squeeze(1)
        self.values[slot[columns], columns] = row[columns]

    def thresholds(self) -> torch.Tensor:
        if self.settings.statistic == "max":
            return self.maximum.clone()
        q = torch.nanquantile(self.values, self.settings.percentile / 100.0, dim=0)
        return torch.nan_to_num(q, nan=0.0)


def _rows(activation: torch.Tensor) -> torch.Tensor:
    """``[B, units]`` for dense layers; ``[B * H * W, C]`` for conv layers (per channel)."""
    if activation.dim() == 2:
        return activation
    return activation.movedim(1, -1).reshape(-1, activation.shape[1])


def _expand(theta: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Per-channel thresholds ``[C]`` repeated over the positions of a ``(C, H, W)`` layer."""
    if len(shape) == 1:
        return theta
    return theta.view(-1, *([1] * (len(shape) - 1))).expand(shape).reshape(-1).clone()


def _check_dims(source: SourcePolicy, env, env_id: str) -> None:
    obs_dim = int(np.prod(env.observation_space.shape))
    act_dim = int(np.prod(env.action_space.shape))
    if (obs_dim, act_dim) != (source.obs_dim, source.act_dim):
        raise ConversionError(
            f"{env_id} has {obs_dim} observation and {act_dim} action dimensions; the actor "
            f"takes {source.obs_dim} and gives {source.act_dim}"
        )


def calibrate(
    source: SourcePolicy,
    env_id: str,
    seed: int,
    settings: CalibrationSettings = CalibrationSettings(),
) -> Calibration:
    """Measure the thresholds of every hidden layer of ``source`` on ``env_id`` (module doc)."""
    from ..experiments.evaluation import make_frozen_env

    started = time.perf_counter()
    streams = SeedStreams(seed)
    env_seed = streams.integer("calibration")
    generator = streams.torch("calibration")
    stats = [UnitStatistic(shape[0], settings, generator) for shape in source.shapes[:-1]]
    env = make_frozen_env(env_id, source.normalizer)
    low, high = env.action_space.low, env.action_space.high
    try:
        _check_dims(source, env, env_id)
        obs, _ = env.reset(seed=env_seed)
        for _ in range(settings.steps):
            x = torch.as_tensor(np.asarray(obs, dtype=np.float32)).unsqueeze(0)
            with torch.no_grad():
                action, hidden = source.hidden_activations(x)
            for stat, activation in zip(stats, hidden, strict=True):
                stat.update(_rows(activation))
            obs, _, terminated, truncated, _ = env.step(np.clip(action[0].numpy(), low, high))
            if terminated or truncated:
                obs, _ = env.reset()
    finally:
        env.close()
    thetas = [
        _expand(stat.thresholds(), shape)
        for stat, shape in zip(stats, source.shapes[:-1], strict=True)
    ]
    return Calibration(thetas, settings, seed, env_seed, time.perf_counter() - started)
