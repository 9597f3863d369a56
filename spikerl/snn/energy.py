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

Energy is a **compute-only estimate** with per-operation constants from a named preset (joules;
the report types, their formatting and :func:`analytic_ann_report` live in
:mod:`spikerl.snn.energy_report` and are re-exported here):

.. math:: E_\mathrm{ANN} = \mathrm{MAC}\, E_\mathrm{MAC}, \qquad
          E_\mathrm{SNN} = \mathrm{MAC}_\mathrm{analog}\, E_\mathrm{MAC}
                         + \mathrm{SOP}_\mathrm{total}\, E_\mathrm{SOP}.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from .coding import PopulationDecoder
from .energy_report import (
    CAVEAT,
    ENCODER,
    PJ,
    EnergyEstimate,
    EnergyReport,
    LayerStats,
    MeanStd,
    PopulationStats,
    analytic_ann_report,
    compare,
    other_ops,
)

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
    "register_preset",
    "sop_ceiling",
]

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
# Counting


class _Geometry(NamedTuple):
    n_in: int
    fan_out: float
    n_out: int
    bias_per_tick: int
    bias_per_decision: int


def _geometry(module: nn.Module) -> _Geometry:
    """Fan-in, fan-out and bias additions of a declared layer type."""
    if isinstance(module, nn.Linear):
        bias = module.out_features if module.bias is not None else 0
        return _Geometry(module.in_features, module.out_features, module.out_features, bias, 0)
    if hasattr(module, "synaptic_geometry"):  # e.g. a converted conv stage
        n_in, fan_out, n_out, bias = module.synaptic_geometry()
        return _Geometry(n_in, fan_out, n_out, bias, 0)
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
            other_ops=other_ops(layers, populations, self._obs_dim),
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
