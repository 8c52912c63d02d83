"""Fixtures of the unit tests: no network (but localhost for health.py), no broker, temp files only."""

from __future__ import annotations

import importlib
import sys
from datetime import datetime
from pathlib import Path

import pytest

from pms_common.timeutil import JST

_TESTS_DIR = Path(__file__).resolve().parents[1]


def _import_real_echonet() -> None:
    """Import the `echonet` library, not the `tests/echonet` test directory.

    pytest puts `tests/` on sys.path (for tests/conftest.py) and `tests/echonet/` is a directory
    without __init__.py, so a plain `import echonet` resolves to an empty namespace package there.
    See tests/unit/test_found_bugs.py::test_tests_directory_does_not_shadow_the_echonet_library.
    """
    loaded = sys.modules.get("echonet")
    if loaded is not None and getattr(loaded, "__file__", None):
        return
    for name in [n for n in sys.modules if n == "echonet" or n.startswith("echonet.")]:
        del sys.modules[name]
    saved = sys.path[:]
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _TESTS_DIR]
    try:
        importlib.import_module("echonet")
    finally:
        sys.path[:] = saved


_import_real_echonet()

NOON = datetime(2026, 6, 1, 12, 0, tzinfo=JST)


@pytest.fixture
def noon() -> datetime:
    return NOON
