"""Building the converted spiking policy, and saving and loading it (spec Secs. 4 and 12.4).

The converted policy is an ordinary :class:`~spikerl.nets.spiking.SpikingNetwork`:

``s -> DirectEncoder (s at every tick) -> [synapse_l -> ConversionNeuron_l] x L
-> LinearReadout(W_out y_bar + b_out) -> max_a * tanh``

Every hidden stage of the ANN becomes a synaptic layer (its weights unchanged) followed by a
layer of :class:`~spikerl.snn.conversion.ConversionNeuron` with the calibrated thresholds; the
last ANN layer becomes the non-spiking readout on the decision estimate (the mean output of the
rate models, :math:`Y(T)` of differential coding). The network is ``stateful``: the only state
that outlives a decision is what CRPI needs, and :class:`~spikerl.nets.policy.ActingPolicy`
zeroes it at every episode start (per row for a batch), so the carry restarts at 0 (Sec. 12.3).

A converted file (``torch.save``, loaded with ``weights_only``) stores the settings (neuron, T,
alpha, MT levels), the layer sizes, the SNN's weights and thresholds, the calibration record, the
source and its env, the normaliser and the versions; :func:`load_converted` rebuilds the network
from the sizes in the file and loads it strictly (missing or unexpected keys are errors).
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from ..nets.spiking import SpikingNetwork
from ..snn.coding import DirectEncoder, LinearReadout
from ..snn.conversion import MT_LEVELS, ConversionNeuron, check_conversion_settings
from .calibrate import Calibration
from .source import SYNAPTIC, ConversionError, SourcePolicy, build_stage, describe_stage

__all__ = [
    "CONVERTED_FORMAT",
    "ConversionSettings",
    "StageSynapse",
    "build_converted",
    "converted_from_saved",
    "load_converted",
    "save_converted",
]

CONVERTED_FORMAT = "spikerl-converted-1"


@dataclass(frozen=True)
class ConversionSettings:
    """The neuron model, T ticks per decision (after DC's priming tick), CRPI's alpha and the
    number of MT levels."""

    neuron: str = "if"
    timesteps: int = 32
    crpi: float = 0.0
    levels: int = MT_LEVELS

    def __post_init__(self) -> None:
        try:
            check_conversion_settings(self.neuron, self.timesteps, self.crpi, self.levels)
        except ValueError as err:
            raise ConversionError(str(err)) from None


class StageSynapse(nn.Module):
    """A synaptic stage on flattened inputs ``[T, B, N_in] -> [T, B, N_out]``: the input is
    viewed as ``in_shape`` (channels first for conv), the stage's modules (``Conv2d``,
    ``AvgPool2d``, ``Flatten``, ``Linear``) run on the ``T * B`` rows and the output is
    flattened again, so neuron states stay ``[B, N]``."""

    def __init__(self, stage: nn.Sequential, in_shape: tuple[int, ...], out_shape: tuple[int, ...]):
        super().__init__()
        self.stage, self.in_shape, self.out_shape = stage, tuple(in_shape), tuple(out_shape)

    @torch.no_grad()
    def synaptic_geometry(self) -> tuple[int, float, int, int]:
        """For energy accounting: inputs, mean synapses per input (the stage's multiply-adds
        over its inputs; a conv's border inputs have fewer, so events x mean fan-out is exact
        on average over positions, not per event), outputs and bias additions per tick."""
        x, macs, bias = torch.zeros(1, *self.in_shape), 0, 0
        for m in self.stage:
            y = m(x)
            if isinstance(m, nn.Conv2d):
                macs += y.numel() * (m.in_channels // m.groups) * math.prod(m.kernel_size)
            elif isinstance(m, nn.Linear):
                macs += m.in_features * m.out_features
            elif isinstance(m, nn.AvgPool2d):
                macs += x.numel()  # every input is added once into its pooling window
            if isinstance(m, SYNAPTIC) and m.bias is not None:
                bias += y.numel()
            x = y
        n_in = math.prod(self.in_shape)
        return n_in, macs / n_in, math.prod(self.out_shape), bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:2]
        y = self.stage(x.reshape(-1, *self.in_shape))
        return y.reshape(*lead, -1)


def _synapse(stage: nn.Sequential, in_shape: tuple[int, ...], out_shape: tuple[int, ...]):
    """A dense stage is its ``nn.Linear`` (energy accounting knows it); others are wrapped."""
    if len(stage) == 1 and isinstance(stage[0], nn.Linear):
        return stage[0]
    return StageSynapse(stage, in_shape, out_shape)


def _readout(stage: nn.Sequential, settings: ConversionSettings) -> LinearReadout:
    linears = [m for m in stage if isinstance(m, SYNAPTIC)]
    if not isinstance(linears[-1], nn.Linear) or any(
        not isinstance(m, nn.Linear | nn.Flatten) for m in stage
    ):
        raise ConversionError("the actor's output layer must be Linear (optionally after Flatten)")
    linear = linears[-1]
    if settings.neuron.startswith("dc"):
        ticks = torch.arange(settings.timesteps + 1, dtype=torch.float32)
        weights = torch.where(ticks > 0, 1.0 / ticks.clamp_min(1.0), torch.zeros(()))
        readout = LinearReadout(linear.in_features, linear.out_features, "weighted", weights)
    else:
        readout = LinearReadout(linear.in_features, linear.out_features, "rate")
    readout.linear.load_state_dict(linear.state_dict())
    return readout


def build_converted(
    source: SourcePolicy,
    thetas: list[torch.Tensor],
    settings: ConversionSettings,
    row_alphas: torch.Tensor | None = None,
) -> SpikingNetwork:
    """The spiking policy of ``source`` with per-unit thresholds ``thetas`` (one ``[units]``
    tensor per hidden layer, e.g. :attr:`Calibration.thetas`). Weights are copied.

    ``row_alphas [B]`` replaces ``settings.crpi`` with one CRPI alpha per batch row, so a grid
    runs several alphas in one batch (the network then only takes batches of B rows)."""
    sizes = source.hidden_sizes
    if len(thetas) != len(sizes) or any(
        tuple(t.shape) != (n,) for t, n in zip(thetas, sizes, strict=False)
    ):
        got = [tuple(t.shape) for t in thetas]
        raise ConversionError(f"thresholds of shapes {got} do not fit hidden layers of {sizes}")
    shapes = [source.input_shape, *source.shapes]
    stages = [copy.deepcopy(stage) for stage in source.stages]
    linears = [_synapse(stages[i], shapes[i], shapes[i + 1]) for i in range(len(sizes))]
    crpi = settings.crpi if row_alphas is None else row_alphas.float().view(-1, 1)
    neurons = [
        ConversionNeuron(settings.neuron, n, settings.timesteps, crpi, settings.levels, t)
        for n, t in zip(sizes, thetas, strict=True)
    ]
    ticks = neurons[0].ticks if neurons else settings.timesteps
    return SpikingNetwork(
        DirectEncoder(source.obs_dim, ticks),
        linears,
        neurons,
        _readout(stages[-1], settings),
        timesteps=ticks,
        max_action=source.max_action,
        stateful=True,
    )


def save_converted(
    path: str | Path,
    snn: SpikingNetwork,
    source: SourcePolicy,
    settings: ConversionSettings,
    calibration: Calibration,
) -> None:
    """Write the converted policy to ``path`` atomically (module docstring)."""
    from ..experiments.checkpoint import save_checkpoint
    from ..experiments.config import config_to_dict
    from ..experiments.provenance import collect_provenance

    save_checkpoint(
        {
            "kind": CONVERTED_FORMAT,
            "settings": asdict(settings),
            "input_shape": list(source.input_shape),
            "stages": [describe_stage(stage) for stage in source.stages],
            "shapes": [list(s) for s in source.shapes],
            "max_action": source.max_action,
            "source": {"origin": source.origin, "algo": source.algo, "env_id": source.env_id},
            "config": config_to_dict(source.config) if source.config is not None else None,
            "normalizer": source.normalizer,
            "calibration": calibration.describe(),
            "snn": snn.state_dict(),
            "provenance": collect_provenance(),
        },
        path,
    )


def load_converted(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[SpikingNetwork, dict]:
    """The converted policy saved at ``path`` and its record (everything but the weights).

    The network is rebuilt from the layer descriptions and sizes in the file and its weights and
    thresholds are loaded strictly; any mismatch is a :class:`ConversionError` naming it."""
    from ..experiments.checkpoint import load_checkpoint

    return converted_from_saved(load_checkpoint(path, "cpu"), path, device)


def converted_from_saved(
    saved: dict, path: str | Path, device: str | torch.device = "cpu"
) -> tuple[SpikingNetwork, dict]:
    """:func:`load_converted` of a file already read with ``load_checkpoint``."""
    if saved.get("kind") != CONVERTED_FORMAT:
        raise ConversionError(f"{path} is not a converted spikerl policy ({CONVERTED_FORMAT})")
    try:
        settings = ConversionSettings(**saved["settings"])
        stages = [build_stage(spec) for spec in saved["stages"]]
        source = SourcePolicy(stages, tuple(saved["input_shape"]), float(saved["max_action"]))
        thetas = [torch.zeros(n) for n in source.hidden_sizes]
        snn = build_converted(source, thetas, settings)
        snn.load_state_dict(saved["snn"], strict=True)
    except (KeyError, TypeError, ValueError) as err:
        raise ConversionError(f"{path}: converted file lacks or mangles {err}") from None
    except RuntimeError as err:
        detail = " ".join(str(err).split()).replace(
            "Error(s) in loading state_dict for SpikingNetwork: ", ""
        )
        raise ConversionError(
            f"{path}: weights do not match the layers in the file: {detail[:300]}"
        ) from None
    if not all(isinstance(saved.get(k), dict | None) for k in ("config", "normalizer")):
        raise ConversionError(f"{path}: converted file lacks or mangles its config or normaliser")
    record = {k: v for k, v in saved.items() if k != "snn"}
    return snn.to(device).eval(), record
