"""A scratch database on the real PostgreSQL (127.0.0.1:5432, trust auth, as CI and the development
machines have it), for the tests and benches that run the registry where production keeps it."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

POSTGRES = "postgresql://postgres@127.0.0.1:5432"


@contextmanager
def scratch_database(prefix: str = "pms_test") -> Iterator[str]:
    """The URL of a new empty database, dropped afterwards even while a registry still holds connections."""
    import psycopg  # only the PostgreSQL paths need the driver

    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(f"{POSTGRES}/test", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES}/{name}"
    finally:
        with psycopg.connect(f"{POSTGRES}/test", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def registry_url(kind: str, folder: Path) -> Iterator[str]:
    """A fresh registry URL of either kind production runs: a SQLite file in `folder` ("sqlite") or a
    scratch database on the real PostgreSQL ("postgresql"), for tests parametrised on both."""
    if kind == "sqlite":
        yield f"sqlite:///{folder}/registry.db"
        return
    if kind != "postgresql":
        raise ValueError(f"unknown registry kind {kind!r}")
    with scratch_database() as url:
        yield url
