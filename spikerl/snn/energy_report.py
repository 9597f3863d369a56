"""The energy report: per-decision records, their text, JSON and CSV forms, and the caveat.

:class:`EnergyReport` holds what :class:`~spikerl.snn.energy.OpCounter` measured (or what
:func:`analytic_ann_report` derived in closed form) and prices it, ``E = MAC E_MAC + SOP E_SOP``
per decision, under the presets of :data:`spikerl.snn.energy.PRESETS`.
"""

from __future__ import annotations

import csv
import math
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ..tables import format_table

if TYPE_CHECKING:
    from .energy import EnergyPreset

__all__ = [
    "CAVEAT",
    "ENCODER",
    "EnergyEstimate",
    "EnergyReport",
    "LayerStats",
    "MeanStd",
    "PopulationStats",
    "analytic_ann_report",
    "compare",
    "format_ratio",
    "other_ops",
]

ENCODER = "encoder"
PJ, NJ = 1e-12, 1e-9

CAVEAT = (
    "Compute-only estimate: synaptic MACs and SOPs times per-operation constants. It leaves out "
    "memory access, data movement, neuron state updates and control, and says nothing about "
    "wall-clock time or power on a CPU or GPU. Analyses that include memory traffic (arXiv "
    "2409.08290) find that on typical neuromorphic hardware at T = 5-10 an SNN needs average "
    "spike rates of roughly 6% or less to beat an equivalent quantised ANN, far below the ~32% "
    "of the proxy-target actor."
)


# --------------------------------------------------------------------------------------------
# Report records


class MeanStd(NamedTuple):
    """Mean and standard deviation (ddof 0) over decisions."""

    mean: float
    std: float

    @classmethod
    def of(cls, values: Any) -> MeanStd:
        arr = np.asarray(values, dtype=float)
        if not arr.size:
            return cls(math.nan, math.nan)
        # A constant series has std 0 exactly, not float round-off from the mean.
        return cls(float(arr.mean()), float(arr.std()) if np.ptp(arr) else 0.0)


class LayerStats(NamedTuple):
    """One counted layer, per decision.

    ``fan_out`` is the number of synapses per input neuron (ops per event or per input value);
    ``n_out`` the output values per tick; ``ticks`` the rows computed per decision (T_a or T).
    """

    name: str
    input_kind: str
    n_in: int
    fan_out: int
    n_out: int
    ticks: float
    ops: MeanStd
    bias_adds: float

    @property
    def unit(self) -> str:
        return "MAC" if self.input_kind == "analog" else "SOP"

    @property
    def density(self) -> float:
        """Presynaptic rate ``SOP / (N_in f T)`` of a spike-driven layer (NaN for analog)."""
        if self.input_kind == "analog":
            return math.nan
        return self.ops.mean / (self.n_in * self.fan_out * self.ticks)


class PopulationStats(NamedTuple):
    """Spikes of one population per decision; silent/saturated fractions over the rollout."""

    name: str
    neurons: int
    ticks: float
    spikes: MeanStd
    rate: MeanStd
    silent: float
    saturated: float


class EnergyEstimate(NamedTuple):
    """Energy per decision (joules) of one policy under one preset, with its counts."""

    label: str
    preset: EnergyPreset
    mac: float
    sop: float
    joules: MeanStd


def compare(policy: EnergyEstimate, baseline: EnergyEstimate) -> float:
    """Energy ratio ``E_baseline / E_policy``; both must use the same preset.

    A policy that spends nothing (no neuron ever fires) gives ``inf`` against a baseline that
    spends something, and NaN (no ratio) when neither does.
    """
    if policy.preset != baseline.preset:
        raise ValueError(
            f"cannot compare energies under different presets "
            f"({policy.preset.name!r} vs {baseline.preset.name!r})"
        )
    return _ratio(baseline.joules.mean, policy.joules.mean)


def _ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``; a zero denominator gives ``inf`` (or NaN for ``0 / 0``)."""
    if denominator:
        return numerator / denominator
    return math.inf if numerator > 0 else math.nan


def format_ratio(ratio: float) -> str:
    """A ratio for the report: ``12.34x``, ``inf`` (the policy spends nothing) or ``n/a``."""
    if math.isnan(ratio):
        return "n/a"
    return "inf" if math.isinf(ratio) else f"{ratio:.2f}x"


# --------------------------------------------------------------------------------------------
# The report


def _registered_presets() -> tuple[EnergyPreset, ...]:
    """Every preset registered in :data:`spikerl.snn.energy.PRESETS`, looked up at call time."""
    from . import energy  # the registry module imports this one; import it when first needed

    return tuple(energy.PRESETS.values())


@dataclass(frozen=True)
class EnergyReport:
    """Per-decision counts, rates and memory footprint of one policy; energy per preset.

    ``totals`` holds the per-decision ``[MAC, SOP]`` rows ``[D, 2]`` behind the energy std.
    """

    label: str
    layers: tuple[LayerStats, ...]
    populations: tuple[PopulationStats, ...]
    network_rate: MeanStd
    network_rate_with_encoder: MeanStd
    other_ops: dict[str, float]
    parameters: int
    weight_bytes_fp32: int
    weight_bytes_export: int
    meta: dict[str, Any]
    totals: np.ndarray = field(repr=False, compare=False)

    @property
    def mac(self) -> MeanStd:
        return MeanStd.of(self.totals[:, 0])

    @property
    def sop(self) -> MeanStd:
        return MeanStd.of(self.totals[:, 1])

    def energy(self, preset: EnergyPreset) -> EnergyEstimate:
        """``E = MAC E_MAC + SOP E_SOP`` per decision, in joules."""
        joules = self.totals @ np.array([preset.e_mac, preset.e_sop])
        return EnergyEstimate(self.label, preset, self.mac.mean, self.sop.mean, MeanStd.of(joules))

    def _energy_rows(
        self, presets: Sequence[EnergyPreset], baseline: EnergyReport | None
    ) -> list[dict[str, Any]]:
        """Per preset: this policy's row, the baseline's row and their ratio (nJ, pJ)."""
        rows = []
        for preset in presets:
            ours = self.energy(preset)
            estimates = [ours] if baseline is None else [ours, baseline.energy(preset)]
            rows += [
                {
                    "policy": est.label,
                    "preset": preset.name,
                    "e_mac_pj": preset.e_mac / PJ,
                    "e_sop_pj": preset.e_sop / PJ,
                    "mac": est.mac,
                    "sop": est.sop,
                    "energy_nj": est.joules.mean / NJ,
                    "energy_nj_std": est.joules.std / NJ,
                }
                for est in estimates
            ]
            if baseline is not None:
                rows.append(
                    {
                        "policy": "ratio baseline/policy",
                        "preset": preset.name,
                        "ratio": compare(ours, estimates[1]),
                    }
                )
        return rows

    def format(
        self, presets: Sequence[EnergyPreset] = (), baseline: EnergyReport | None = None
    ) -> str:
        """Text report: layers, totals and other ops, rates, energy, then :data:`CAVEAT`.

        ``presets`` defaults to every registered preset; ``baseline`` adds its rows and ratio.
        """
        presets = tuple(presets) or _registered_presets()
        parts = [self._header(), self._layer_table(), self._totals_table()]
        if self.populations:
            parts.append(self._population_table())
        parts += [self._energy_table(presets, baseline), textwrap.fill(CAVEAT, 100)]
        return "\n\n".join(parts)

    def _header(self) -> str:
        m = self.meta
        where = (
            f" on {m['env_id']} ({_count(m['episodes'], 'episode')}, seed {m['seed']})"
            if "env_id" in m
            else ""
        )
        return (
            f"{self.label}{where}: per decision, T = {m['timesteps']}, "
            f"{m['decisions']:,} decision(s) [{m['source']}]"
        )

    def _layer_table(self) -> str:
        total = {"MAC": self.mac.mean, "SOP": self.sop.mean}
        rows = [
            [
                ly.name,
                ly.input_kind,
                ly.n_in,
                ly.fan_out,
                ly.ticks,
                ly.density,
                ly.unit,
                *ly.ops,
                _share(ly.ops.mean, total[ly.unit]),
            ]
            for ly in self.layers
        ]
        return format_table(
            [
                "layer",
                "input",
                "N_in",
                "fan-out",
                "ticks (T_a)",
                "presyn rate",
                "unit",
                "per decision",
                "std",
                "share",
            ],
            rows,
        )

    def _totals_table(self) -> str:
        rows = [["MAC (analog inputs)", *self.mac], ["SOP (incl. readout)", *self.sop]]
        rows += [
            [f"other: {k} (not priced)", float(v), math.nan] for k, v in self.other_ops.items()
        ]
        rows += [
            ["parameters", f"{self.parameters:,}", "-"],
            ["weight bytes fp32", f"{self.weight_bytes_fp32:,}", "-"],
        ]
        if self.meta["export_dtype"] not in ("float32", "fp32"):  # the same line again
            rows.append(
                [f"weight bytes {self.meta['export_dtype']}", f"{self.weight_bytes_export:,}", "-"]
            )
        return format_table(["total", "per decision", "std"], rows)

    def _population_table(self) -> str:
        rows = [[p.name, p.neurons, *p.rate, p.silent, p.saturated] for p in self.populations]
        rows += [
            ["network (hidden+output)", "", *self.network_rate, "", ""],
            ["network incl. encoder", "", *self.network_rate_with_encoder, "", ""],
        ]
        return format_table(["firing rate", "neurons", "mean", "std", "silent", "saturated"], rows)

    def _energy_table(self, presets: Sequence[EnergyPreset], baseline: EnergyReport | None) -> str:
        rows = []
        for r in self._energy_rows(presets, baseline):
            if "ratio" in r:
                rows.append(
                    [r["policy"], r["preset"], "", "", "", "", format_ratio(r["ratio"]), ""]
                )
            else:
                rows.append(
                    [
                        r["policy"],
                        r["preset"],
                        r["e_mac_pj"],
                        r["e_sop_pj"],
                        r["mac"],
                        r["sop"],
                        r["energy_nj"],
                        r["energy_nj_std"],
                    ]
                )
        return format_table(
            ["energy per decision", "preset", "E_MAC pJ", "E_SOP pJ", "MAC", "SOP", "nJ", "std nJ"],
            rows,
        )

    def to_dict(
        self, presets: Sequence[EnergyPreset] = (), baseline: EnergyReport | None = None
    ) -> dict[str, Any]:
        """Plain data for JSON (NaN becomes None): the fields of :meth:`format`."""
        presets = tuple(presets) or _registered_presets()
        data = {
            "label": self.label,
            "meta": self.meta,
            "layers": {
                ly.name: {
                    **ly._asdict(),
                    "ops": ly.ops._asdict(),
                    "unit": ly.unit,
                    "presynaptic_rate": ly.density,
                }
                for ly in self.layers
            },
            "populations": {
                p.name: {**p._asdict(), "spikes": p.spikes._asdict(), "rate": p.rate._asdict()}
                for p in self.populations
            },
            "totals": {
                "mac": self.mac._asdict(),
                "sop": self.sop._asdict(),
                "network_rate": self.network_rate._asdict(),
                "network_rate_with_encoder": self.network_rate_with_encoder._asdict(),
                "parameters": self.parameters,
                "weight_bytes_fp32": self.weight_bytes_fp32,
                "weight_bytes_export": self.weight_bytes_export,
            },
            "other_ops": self.other_ops,
            "energy": self._energy_rows(presets, baseline),
            "caveat": CAVEAT,
        }
        return _json_safe(data)

    def write_csv(
        self,
        path: str | Path,
        presets: Sequence[EnergyPreset] = (),
        baseline: EnergyReport | None = None,
    ) -> None:
        """The fields of :meth:`to_dict` as ``key,value`` rows with dotted keys."""
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["key", "value"])
            writer.writerows(_flatten(self.to_dict(presets, baseline)))


def _count(n: int, noun: str) -> str:
    """``1 episode``, ``10 episodes``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _share(value: float, total: float) -> float:
    return value / total if total else math.nan


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _flatten(v, f"{prefix}{k}.")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _flatten(v, f"{prefix}{i}.")
    else:
        yield prefix.rstrip("."), value


def other_ops(
    layers: Sequence[LayerStats], populations: Sequence[PopulationStats], obs_dim: int
) -> dict[str, float]:
    """Per-decision ops that are listed but not priced (energy spec Sec. 2).

    ReLUs sit between consecutive analog layers; the action head applies ``max_action * tanh``
    to m outputs; a population-coded actor also squashes its n observations with tanh.
    """
    encoder = [p for p in populations if p.name == ENCODER]
    neurons = [p for p in populations if p.name != ENCODER]
    act_dim = layers[-1].n_out
    return {
        "bias_adds": sum(layer.bias_adds for layer in layers),
        "neuron_updates": sum(p.neurons * p.ticks for p in neurons),
        "encoder_gaussians": sum(p.neurons for p in encoder),
        "encoder_steps": sum(p.neurons * p.ticks for p in encoder),
        "relu": sum(
            a.n_out
            for a, b in zip(layers[:-1], layers[1:], strict=True)
            if a.input_kind == b.input_kind == "analog"
        ),
        "tanh": act_dim + (obs_dim if encoder else 0),
        "action_scale": act_dim,
    }


# --------------------------------------------------------------------------------------------
# Closed form


def analytic_ann_report(
    obs_dim: int, act_dim: int, hidden: Sequence[int] = (256, 256)
) -> EnergyReport:
    """The exact counts of an ANN actor ``n -> hidden -> m`` (fp32), without running it."""
    sizes = [obs_dim, *hidden, act_dim]
    layers = tuple(
        LayerStats(f"fc{i}", "analog", a, b, b, 1.0, MeanStd(float(a * b), 0.0), b)
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True))
    )
    params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    macs = sum(ly.ops.mean for ly in layers)  # = ann_actor_macs(obs_dim, act_dim, hidden)
    nan = MeanStd(math.nan, math.nan)
    return EnergyReport(
        label=f"ANN {'-'.join(map(str, hidden))} (analytic)",
        layers=layers,
        populations=(),
        network_rate=nan,
        network_rate_with_encoder=nan,
        other_ops=other_ops(layers, (), obs_dim),
        parameters=params,
        weight_bytes_fp32=4 * params,
        weight_bytes_export=4 * params,
        meta={
            "source": "analytic",
            "timesteps": 1,
            "decisions": 1,
            "obs_dim": obs_dim,
            "act_dim": act_dim,
            "actor": "DeterministicActor",
            "export_dtype": "float32",
        },
        totals=np.array([[macs, 0.0]]),
    )
