"""Exporters of spiking policies: the NumPy runtime's ``.npz`` (:mod:`~spikerl.export.npz`, run
by the torch-free :mod:`spikerl.runtime`), its 8-bit form (:mod:`~spikerl.export.quantize`),
C99 source for microcontrollers (:mod:`~spikerl.export.c`) and NIR graphs
(:mod:`~spikerl.export.nir`); :mod:`~spikerl.export.rebuild` turns an exported description
back into a torch network."""

from .c import c_sources, write_c
from .nir import nir_graph, read_nir, spec_from_nir, write_nir
from .npz import ExportError, export_npz, network_spec, write_npz
from .quantize import quantize_policy
from .rebuild import load_exported_network, network_from_spec

__all__ = [
    "ExportError",
    "c_sources",
    "export_npz",
    "load_exported_network",
    "network_from_spec",
    "network_spec",
    "nir_graph",
    "quantize_policy",
    "read_nir",
    "spec_from_nir",
    "write_c",
    "write_nir",
    "write_npz",
]
