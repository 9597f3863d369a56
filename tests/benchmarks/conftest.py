"""Tests of the scripts under ``benchmarks/``: a test module names its script in ``SCRIPT``."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def script(request):
    """The module ``benchmarks/<SCRIPT>.py`` of the requesting test module (the scripts import
    ``_bench`` from their folder, so it is on ``sys.path`` while the module's tests run)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module(request.module.SCRIPT)
    finally:
        sys.path.remove(str(BENCHMARKS))
