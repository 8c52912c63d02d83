"""A scratch database on the real PostgreSQL (127.0.0.1:5432, trust auth, as CI and the development
machines have it), for the tests and benches that run the registry where production keeps it."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

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
