"""Exporters of trained spiking policies: the NumPy runtime's ``.npz``
(:mod:`~spikerl.export.npz`, run by the torch-free :mod:`spikerl.runtime`)."""

from .npz import ExportError, export_npz, network_spec

__all__ = ["ExportError", "export_npz", "network_spec"]
