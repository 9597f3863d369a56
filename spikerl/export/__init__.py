"""Exporters of spiking policies: the NumPy runtime's ``.npz`` (:mod:`~spikerl.export.npz`, run
by the torch-free :mod:`spikerl.runtime`), its 8-bit form (:mod:`~spikerl.export.quantize`) and
C99 source for microcontrollers (:mod:`~spikerl.export.c`)."""

from .c import c_sources, write_c
from .npz import ExportError, export_npz, network_spec, write_npz
from .quantize import quantize_policy

__all__ = [
    "ExportError",
    "c_sources",
    "export_npz",
    "network_spec",
    "quantize_policy",
    "write_c",
    "write_npz",
]
