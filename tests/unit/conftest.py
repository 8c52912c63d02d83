"""Fixtures of the unit tests: no network (but localhost for health.py), no broker, temp files only."""

from __future__ import annotations

from datetime import datetime

import pytest

from pms_common.timeutil import JST

NOON = datetime(2026, 6, 1, 12, 0, tzinfo=JST)


@pytest.fixture
def noon() -> datetime:
    return NOON
