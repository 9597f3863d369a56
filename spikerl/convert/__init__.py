"""ANN-to-SNN conversion of trained TD3/SAC policies with CRPI (arXiv 2601.21778).

:mod:`~spikerl.convert.source` reads and checks the source actor, :mod:`~spikerl.convert.calibrate`
measures per-unit thresholds from the ANN's rollouts, :mod:`~spikerl.convert.build` assembles the
spiking policy from the core's :class:`~spikerl.snn.conversion.ConversionNeuron` layers and saves
and loads it.
"""

from .build import (
    CONVERTED_FORMAT,
    ConversionSettings,
    build_converted,
    load_converted,
    save_converted,
)
from .calibrate import Calibration, CalibrationSettings, calibrate
from .source import ConversionError, SourcePolicy, read_source, source_from_module

__all__ = [
    "CONVERTED_FORMAT",
    "Calibration",
    "CalibrationSettings",
    "ConversionError",
    "ConversionSettings",
    "SourcePolicy",
    "build_converted",
    "calibrate",
    "load_converted",
    "read_source",
    "save_converted",
    "source_from_module",
]
