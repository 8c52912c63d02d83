"""The registry most of these tests run against: migrated, on a SQLite file and (marked integration)
on a scratch database of the real PostgreSQL, dropped afterwards. A test file that needs another
starting point (seeded rows, an old schema) defines its own `registry` fixture, which wins in that file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pms_registry.registry import Registry
from tests.postgres import registry_url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    with registry_url(request.param, tmp_path) as url:
        found = Registry(url)
        try:
            found.migrate()
            yield found
        finally:
            found.close()
