"""Tests of the scripts under ``scripts/``: a test module names its script in ``SCRIPT``."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


@pytest.fixture(scope="module")
def script(request):
    """The module ``scripts/<SCRIPT>.py`` of the requesting test module (the scripts import
    each other, so their folder is on ``sys.path`` while the module's tests run)."""
    sys.path.insert(0, str(SCRIPTS))
    try:
        yield importlib.import_module(request.module.SCRIPT)
    finally:
        sys.path.remove(str(SCRIPTS))
