r"""Energy and efficiency accounting: MACs, synaptic operations (SOPs) and firing rates.

The unit of account is one **decision**: one actor forward at batch 1, i.e. ``T`` ticks for a
spiking actor and one pass for an ANN (energy spec Sec. 1-3; arXiv 2505.24161, Table 2).

Counts are measured with forward pre-hooks on the layers an actor declares in
``energy_layers()``. The declared input kind, never the values, decides how a layer counts.
For layer :math:`l` with fan-in :math:`N_{in}`, fan-out :math:`f_l` (``N_out`` for a dense
layer, 1 for the population decoder's readout) and input :math:`x_t` at tick :math:`t`:

.. math::

    \mathrm{MAC}_l &= T_a\, N_{in}\, f_l  &&\text{(analog input; } T_a \text{ rows per decision)}\\
    \mathrm{SOP}_l &= \textstyle\sum_t \mathrm{nnz}(x_t)\, f_l  &&\text{(spike input)}

:math:`T_a` is measured as the rows the layer computes per decision: ``T`` for an analog layer
inside a multi-step SNN (``[T, B, N]`` input), 1 for an ANN layer (``[B, N]`` input).

The spikes entering a spike-driven layer are the spikes of the population that feeds it, so
population :math:`p` with :math:`N_p` neurons emits :math:`c_p = \sum_t \mathrm{nnz}(x_t)` and

.. math:: r_p = c_p / (N_p T), \qquad
          r_\mathrm{net} = \textstyle\sum_p c_p / \sum_p N_p T .

The network rate covers hidden and output populations; it is also given with the encoder.

Energy is a **compute-only estimate** with per-operation constants from a named preset (joules):

.. math:: E_\mathrm{ANN} = \mathrm{MAC}\, E_\mathrm{MAC}, \qquad
          E_\mathrm{SNN} = \mathrm{MAC}_\mathrm{analog}\, E_\mathrm{MAC}
                         + \mathrm{SOP}_\mathrm{total}\, E_\mathrm{SOP}.
"""

from __future__ import annotations

import csv
import math
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from ..experiments.evaluation import evaluate_policy
from ..experiments.report import format_table
from .coding import PopulationDecoder

__all__ = [
    "CAVEAT",
    "PRESETS",
    "EnergyEstimate",
    "EnergyPreset",
    "EnergyReport",
    "LayerStats",
    "MeanStd",
    "OpCounter",
    "PopulationStats",
    "analytic_ann_report",
    "ann_actor_macs",
    "compare",
    "get_preset",
    "measure_policy",
    "register_preset",
    "sop_ceiling",
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
# Presets


@dataclass(frozen=True)
class EnergyPreset:
    """Per-operation energy in joules: ``e_mac`` per multiply-accumulate, ``e_sop`` per SOP."""

    name: str
    e_mac: float
    e_sop: float
    source: str = ""


PRESETS: dict[str, EnergyPreset] = {
    p.name: p
    for p in (
        EnergyPreset(
            "45nm", 4.6 * PJ, 0.9 * PJ, "Horowitz, ISSCC 2014: 45 nm CMOS, fp32 multiply-add / add"
        ),
        EnergyPreset(
            "proxy-target",
            3.97 * PJ,
            0.077 * PJ,
            "arXiv 2505.24161: NPU MAC (Millar et al. 2025), SOP (Hu et al. 2021)",
        ),
    )
}
"""The preset registry, name -> preset. It changes only through :func:`register_preset`."""


def register_preset(preset: EnergyPreset, replace: bool = False) -> EnergyPreset:
    """Add a named custom preset to :data:`PRESETS` (``replace`` to overwrite one)."""
    if preset.name == "all" or not preset.name:
        raise ValueError(f"preset name {preset.name!r} is reserved or empty")
    if preset.name in PRESETS and not replace:
        raise ValueError(f"preset {preset.name!r} exists; pass replace=True to overwrite it")
    if not all(math.isfinite(e) and e >= 0 for e in (preset.e_mac, preset.e_sop)):
        raise ValueError(f"preset {preset.name!r}: energies must be finite and >= 0 joules")
    PRESETS[preset.name] = preset
    return preset


def get_preset(name: str) -> EnergyPreset:
    """The registered preset called ``name``."""
    if name not in PRESETS:
        raise KeyError(f"unknown energy preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


# --------------------------------------------------------------------------------------------
# Closed forms (energy spec Sec. 2)


def ann_actor_macs(obs_dim: int, act_dim: int, hidden: Sequence[int] = (256, 256)) -> int:
    """MACs of one ANN actor decision: ``sum_l N_in,l * N_out,l`` (``n -> hidden -> m``).

    256-256 actor: ``256 n + 256^2 + 256 m`` (HalfCheetah 17/6: 71,424).
    """
    sizes = [obs_dim, *hidden, act_dim]
    return sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))


def sop_ceiling(
    obs_dim: int,
    act_dim: int,
    hidden: Sequence[int] = (256, 256),
    timesteps: int = 5,
    pop_in: int = 10,
    pop_out: int = 10,
) -> int:
    """SOPs of a population-coded actor decision if every neuron fired every tick.

    ``T * (n P_in h_0 + sum h_i h_(i+1) + h_last m P_out + m P_out)``, the last term being the
    readout (HalfCheetah, 256-256, T = 5: 622,380).
    """
    return timesteps * (
        ann_actor_macs(obs_dim * pop_in, act_dim * pop_out, hidden) + act_dim * pop_out
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
    """Energy ratio ``E_baseline / E_policy``; both must use the same preset."""
    if policy.preset != baseline.preset:
        raise ValueError(
            f"cannot compare energies under different presets "
            f"({policy.preset.name!r} vs {baseline.preset.name!r})"
        )
    return baseline.joules.mean / policy.joules.mean


# --------------------------------------------------------------------------------------------
# The report


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
        presets = tuple(presets) or tuple(PRESETS.values())
        parts = [self._header(), self._layer_table(), self._totals_table()]
        if self.populations:
            parts.append(self._population_table())
        parts += [self._energy_table(presets, baseline), textwrap.fill(CAVEAT, 100)]
        return "\n\n".join(parts)

    def _header(self) -> str:
        m = self.meta
        where = (
            f" on {m['env_id']} (episodes {m['episodes']}, seed {m['seed']})"
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
            [f"weight bytes {self.meta['export_dtype']}", f"{self.weight_bytes_export:,}", "-"],
        ]
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
                rows.append([r["policy"], r["preset"], "", "", "", "", f"{r['ratio']:.2f}x", ""])
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
        presets = tuple(presets) or tuple(PRESETS.values())
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


# --------------------------------------------------------------------------------------------
# Counting


class _Geometry(NamedTuple):
    n_in: int
    fan_out: int
    n_out: int
    bias_per_tick: int
    bias_per_decision: int


def _geometry(module: nn.Module) -> _Geometry:
    """Fan-in, fan-out and bias additions of a declared layer type."""
    if isinstance(module, nn.Linear):
        bias = module.out_features if module.bias is not None else 0
        return _Geometry(module.in_features, module.out_features, module.out_features, bias, 0)
    if isinstance(module, PopulationDecoder):
        # Integrator form: an output spike adds its one decoder weight into its action's
        # integrator (1 SOP); the bias is added once per decision.
        return _Geometry(module.act_dim * module.pop, 1, module.act_dim, 0, module.act_dim)
    raise TypeError(
        f"cannot count layer type {type(module).__name__}; declare nn.Linear or "
        "PopulationDecoder layers, or add its fan-out to spikerl.snn.energy._geometry"
    )


def _population_names(actor: nn.Module, layers: Sequence[Any]) -> dict[str, str]:
    """Name of the population whose spikes feed each spike-driven layer, in declared order."""
    spike_layers = [layer.name for layer in layers if layer.input_kind == "spike"]
    if not hasattr(actor, "populations"):
        return {name: f"{name}_in" for name in spike_layers}
    names = list(actor.populations())
    if len(names) != len(spike_layers):
        raise ValueError(
            f"{type(actor).__name__} declares {len(names)} populations but "
            f"{len(spike_layers)} spike-driven layers; each population must feed "
            "one spike-driven layer, in order"
        )
    return dict(zip(spike_layers, names, strict=True))


@dataclass
class _Forward:
    """One open actor forward: per layer call, events (nnz) ``[B, N_in]``; rows per decision."""

    batch: int
    events: dict[str, list[torch.Tensor]]
    ticks: dict[str, float]


class OpCounter:
    """Counts MACs, SOPs and spikes of an actor's declared layers inside a ``with`` block.

    Hooks exist only inside the block, so training never runs with them; they only read layer
    inputs and never change the numerics. Each actor call ``actor(obs [B, n])`` is B decisions.

    Args:
        actor: a module with ``energy_layers()`` (and optionally ``populations()``).
        debug: check that declared spike inputs are events: integer multiples of their
            amplitude (1 unless given in ``amplitudes``, layer name -> amplitude).

    Example::

        with OpCounter(actor) as counter:
            actor(obs)
        report = counter.report()
    """

    def __init__(
        self, actor: nn.Module, debug: bool = False, amplitudes: Mapping[str, float] | None = None
    ) -> None:
        self.actor, self.debug, self.amplitudes = actor, debug, dict(amplitudes or {})
        self.layers = list(actor.energy_layers())
        if not self.layers:
            raise ValueError(f"{type(actor).__name__}.energy_layers() declares no layers")
        for layer in self.layers:
            if layer.input_kind not in ("analog", "spike"):
                raise ValueError(f"layer {layer.name!r}: input_kind must be 'analog' or 'spike'")
        self.geometry = {layer.name: _geometry(layer.module) for layer in self.layers}
        if len(self.geometry) != len(self.layers):
            raise ValueError(f"{type(actor).__name__}.energy_layers() repeats a layer name")
        self.population_of = _population_names(actor, self.layers)
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._open: _Forward | None = None
        # Per actor forward: spike events per decision and neuron [B, N_in], rows per decision.
        self._events: dict[str, list[torch.Tensor]] = {name: [] for name in self.population_of}
        self._ticks: dict[str, list[np.ndarray]] = {layer.name: [] for layer in self.layers}
        self._obs_dim = 0

    def __enter__(self) -> OpCounter:
        if self._handles:
            raise RuntimeError("this OpCounter is already counting")
        self._handles = [
            self.actor.register_forward_pre_hook(self._begin),
            self.actor.register_forward_hook(self._end, always_call=True),
        ]
        self._handles += [
            layer.module.register_forward_pre_hook(self._hook(layer.name)) for layer in self.layers
        ]
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles, self._open = [], None

    # --- hooks ---------------------------------------------------------------------------------
    def _begin(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        obs = args[0]
        batch = obs.shape[-2] if obs.dim() >= 2 else 1
        self._obs_dim = obs.shape[-1]
        self._open = _Forward(
            batch, {name: [] for name in self._events}, dict.fromkeys(self._ticks, 0.0)
        )

    def _end(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        fwd, self._open = self._open, None
        if fwd is None or output is None:  # the forward raised: drop its partial counts
            return
        for name, calls in fwd.events.items():
            n_in = self.geometry[name].n_in
            self._events[name].append(
                torch.stack(calls).sum(0)
                if calls
                else torch.zeros(fwd.batch, n_in, dtype=torch.int32)
            )
        for name, ticks in fwd.ticks.items():
            self._ticks[name].append(np.full(fwd.batch, ticks))

    def _hook(self, name: str) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
            with torch.no_grad():
                self._count(name, args[0])

        return hook

    def _count(self, name: str, x: torch.Tensor) -> None:
        """One call of layer ``name`` on ``x [..., B, N_in]``: rows, and events per neuron."""
        fwd = self._open
        if fwd is None:
            raise RuntimeError(
                f"layer {name!r} ran outside a call of the counted actor; "
                "OpCounter counts decisions per actor(obs) call"
            )
        n_in = self.geometry[name].n_in
        x = x if x.dim() >= 2 else x.unsqueeze(0)
        if x.shape[-1] != n_in or x.shape[-2] != fwd.batch:
            raise ValueError(
                f"layer {name!r}: input {tuple(x.shape)} is not [..., B={fwd.batch}, N_in={n_in}]"
            )
        fwd.ticks[name] += x.numel() / (n_in * fwd.batch)
        if name not in self.population_of:
            return
        if self.debug:
            self._check_events(name, x)
        fwd.events[name].append(x.ne(0).reshape(-1, fwd.batch, n_in).sum(0, dtype=torch.int32))

    def _check_events(self, name: str, x: torch.Tensor) -> None:
        amplitude = self.amplitudes.get(name, 1.0)
        levels = x / amplitude
        if not torch.allclose(levels, levels.round(), rtol=0.0, atol=1e-4):
            raise ValueError(
                f"layer {name!r} is declared spike-driven but its input is not "
                f"integer multiples of amplitude {amplitude} (values such as "
                f"{x[(levels - levels.round()).abs() > 1e-4][:3].tolist()})"
            )

    # --- summary -------------------------------------------------------------------------------
    def report(self, label: str | None = None, **meta: Any) -> EnergyReport:
        """The :class:`EnergyReport` of every decision counted so far; ``meta`` is recorded."""
        if not next(iter(self._ticks.values())):
            raise RuntimeError("no decisions were counted; call the actor inside the with block")
        ticks = {n: np.concatenate(v) for n, v in self._ticks.items()}
        per_neuron = {n: torch.cat(v).double().cpu().numpy() for n, v in self._events.items()}
        events = {n: v.sum(1) for n, v in per_neuron.items()}
        ops = {layer.name: self._layer_ops(layer, events, ticks) for layer in self.layers}
        layers = tuple(
            self._layer_stats(layer, ops[layer.name], ticks[layer.name]) for layer in self.layers
        )
        populations = tuple(self._population_stats(n, per_neuron[n], ticks[n]) for n in events)
        totals = np.zeros((len(ticks[self.layers[0].name]), 2))  # [D, (MAC, SOP)]
        for layer in self.layers:
            totals[:, int(layer.input_kind == "spike")] += ops[layer.name]
        params = list(self.actor.parameters())
        return EnergyReport(
            label=label or type(self.actor).__name__,
            layers=layers,
            populations=populations,
            network_rate=self._network_rate(events, ticks, with_encoder=False),
            network_rate_with_encoder=self._network_rate(events, ticks, with_encoder=True),
            other_ops=_other_ops(layers, populations, self._obs_dim),
            parameters=sum(p.numel() for p in params),
            weight_bytes_fp32=4 * sum(p.numel() for p in params),
            weight_bytes_export=sum(p.numel() * p.element_size() for p in params),
            meta={
                "source": "measured",
                "timesteps": round(max(ly.ticks for ly in layers)),
                "decisions": len(totals),
                "obs_dim": self._obs_dim,
                "act_dim": layers[-1].n_out,
                "actor": type(self.actor).__name__,
                "export_dtype": str(params[0].dtype).removeprefix("torch."),
                **meta,
            },
            totals=totals,
        )

    def _layer_ops(
        self, layer: Any, events: Mapping[str, np.ndarray], ticks: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        """MACs (analog: rows x N_in x fan-out) or SOPs (spike: nnz x fan-out) per decision."""
        g = self.geometry[layer.name]
        if layer.input_kind == "analog":
            return ticks[layer.name] * g.n_in * g.fan_out
        return events[layer.name] * g.fan_out

    def _layer_stats(self, layer: Any, ops: np.ndarray, ticks: np.ndarray) -> LayerStats:
        g, t = self.geometry[layer.name], float(ticks.mean())
        return LayerStats(
            layer.name,
            layer.input_kind,
            g.n_in,
            g.fan_out,
            g.n_out,
            t,
            MeanStd.of(ops),
            g.bias_per_tick * t + g.bias_per_decision,
        )

    def _network_rate(
        self, events: Mapping[str, np.ndarray], ticks: Mapping[str, np.ndarray], with_encoder: bool
    ) -> MeanStd:
        """``sum_p c_p / sum_p N_p T`` per decision over hidden+output (and encoder) populations."""
        names = [n for n, pop in self.population_of.items() if with_encoder or pop != ENCODER]
        if not names:
            return MeanStd(math.nan, math.nan)
        spikes = sum(events[n] for n in names)
        capacity = sum(self.geometry[n].n_in * ticks[n] for n in names)
        return MeanStd.of(spikes / capacity)

    def _population_stats(
        self, layer: str, per_neuron: np.ndarray, ticks: np.ndarray
    ) -> PopulationStats:
        """Rates from the spikes ``[D, N]`` entering ``layer``, i.e. leaving its population."""
        events, totals, n = per_neuron.sum(1), per_neuron.sum(0), per_neuron.shape[1]
        return PopulationStats(
            self.population_of[layer],
            n,
            float(ticks.mean()),
            MeanStd.of(events),
            MeanStd.of(events / (n * ticks)),
            float((totals == 0).mean()),
            float((totals == ticks.sum()).mean()),
        )


def _other_ops(
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
# Entry points


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
    nan = MeanStd(math.nan, math.nan)
    return EnergyReport(
        label=f"ANN {'-'.join(map(str, hidden))} (analytic)",
        layers=layers,
        populations=(),
        network_rate=nan,
        network_rate_with_encoder=nan,
        other_ops=_other_ops(layers, (), obs_dim),
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
        totals=np.array([[float(ann_actor_macs(obs_dim, act_dim, hidden)), 0.0]]),
    )


def measure_policy(
    actor: nn.Module,
    env_id: str,
    seed: int,
    episodes: int = 10,
    normalizer_state: dict[str, Any] | None = None,
    device: str | torch.device = "cpu",
) -> EnergyReport:
    """Count ``actor`` over the evaluation protocol's deterministic rollouts (batch 1 each).

    Every env step is one decision; the report holds mean +- std over all of them.
    """
    with OpCounter(actor) as counter:
        result = evaluate_policy(actor, env_id, seed, episodes, normalizer_state, device)
    return counter.report(
        env_id=env_id,
        env_version=gym.spec(env_id).version,
        episodes=episodes,
        seed=seed,
        return_mean=float(result.returns.mean()),
    )
