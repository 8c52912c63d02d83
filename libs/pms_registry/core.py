"""The registry's engine, transactions and schema upgrades, shared by its parts (plants, accounts, log)."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, select, text
from sqlalchemy.exc import SQLAlchemyError

from pms_registry import schema as t
from pms_registry.errors import RegistryError
from pms_registry.migrations import current_version, upgrade


def engine_for(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    if url.startswith(("postgresql://", "postgres://")):
        return create_engine("postgresql+psycopg://" + url.split("://", 1)[1], pool_pre_ping=True)
    raise RegistryError(f"registry URL {url!r} must start with sqlite:/// or postgresql://")


class RegistryCore:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = engine_for(url)

    def migrate(self) -> None:
        """Create a new registry or upgrade an older one (safe to run on every start, by every service)."""
        with self._migration_lock():
            try:
                upgrade(self.engine)
            except SQLAlchemyError as exc:
                raise RegistryError(f"cannot prepare the registry at {self.engine.url!r}: {exc}") from exc

    def prepare(self, *, migrate: bool) -> None:
        """At a service's start: upgrade the schema, or (where a Job upgrades it) refuse any other version."""
        if migrate:
            self.migrate()
            return
        version = self.schema_version()
        if version != t.SCHEMA_VERSION:
            raise RegistryError(f"the registry's schema is version {version}, this PMS needs {t.SCHEMA_VERSION}: "
                                "run `pms registry migrate` (or set PMS_REGISTRY_MIGRATE=true)")

    def schema_version(self) -> int:
        with self._tx() as conn:
            return current_version(conn)

    @contextmanager
    def _migration_lock(self) -> Iterator[None]:
        """Services started together all migrate: one at a time, or they race to create tables."""
        if self.engine.dialect.name == "sqlite":
            database = self.engine.url.database or "pms.db"
            with open(f"{database}.migrate-lock", "a+") as lock_file:
                fcntl.flock(lock_file, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(lock_file, fcntl.LOCK_UN)
            return
        with self.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(424242)"))
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(424242)"))
                conn.commit()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise RegistryError(f"registry operation failed: {exc}") from exc

    def close(self) -> None:
        self.engine.dispose()


def require_customer(conn: Connection, customer_id: str | None) -> None:
    """Refuse a write naming a customer the registry does not have (SQLite cannot add the foreign
    key to tables that gained the column later, so the registry checks it itself)."""
    if customer_id is not None and conn.execute(
        select(t.customers.c.customer_id).where(t.customers.c.customer_id == customer_id)
    ).first() is None:
        raise RegistryError(f"no customer {customer_id!r}")
