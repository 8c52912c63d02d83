"""The registry as a small API over SQLAlchemy Core; every service that needs it opens its own."""

from __future__ import annotations

import fcntl
import hashlib
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    and_,
    create_engine,
    event,
    func,
    insert,
    select,
    text,
    true,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from pms_common.errors import PmsError
from pms_registry import schema as t


class RegistryError(PmsError):
    """The registry cannot be reached, or a request breaks its rules."""


@dataclass(frozen=True)
class Plant:
    service_code: str
    customer_id: str
    name: str
    address: str
    phone: str
    latitude: float | None
    longitude: float | None
    capacity_kw: float | None
    tariff_yen_per_kwh: float | None
    billing_start_date: date | None
    gateway_ids: tuple[str, ...]


@dataclass(frozen=True)
class Gateway:
    gateway_id: str
    service_code: str | None
    status: str
    status_changed_at: datetime | None
    last_seen_at: datetime | None
    power_interval_s: float
    heartbeat: dict[str, Any] | None


@dataclass(frozen=True)
class EventRecord:
    event_id: int
    kind: str
    state: str
    gateway_id: str | None
    service_code: str | None
    opened_at: datetime
    recovered_at: datetime | None
    message: str


@dataclass(frozen=True)
class Principal:
    """Who an API key speaks for: an admin (customer_id None) or one customer."""

    key_id: str
    customer_id: str | None

    @property
    def is_admin(self) -> bool:
        return self.customer_id is None


def hash_api_key(secret: str) -> str:
    # Keys are 256-bit random tokens, so a plain SHA-256 is enough: there is nothing to brute-force.
    return hashlib.sha256(secret.encode()).hexdigest()


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


class Registry:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = engine_for(url)

    def migrate(self) -> None:
        """Create what is missing and record the schema version (safe to run on every start)."""
        with self._migration_lock():
            self._create_missing()
        try:
            with self.engine.begin() as conn:
                if conn.execute(select(t.schema_version.c.version)).first() is None:
                    conn.execute(insert(t.schema_version).values(id=1, version=t.SCHEMA_VERSION))
                if conn.execute(select(t.service_code_counter.c.id)).first() is None:
                    conn.execute(insert(t.service_code_counter).values(id=1, last_issued=0))
        except IntegrityError:
            pass  # another service inserted the same first rows at the same moment
        except SQLAlchemyError as exc:
            raise RegistryError(f"cannot prepare the registry at {self.engine.url!r}: {exc}") from exc

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

    def _create_missing(self) -> None:
        try:
            t.metadata.create_all(self.engine)
        except SQLAlchemyError as exc:
            raise RegistryError(f"cannot create the registry tables at {self.engine.url!r}: {exc}") from exc

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise RegistryError(f"registry operation failed: {exc}") from exc

    def close(self) -> None:
        self.engine.dispose()

    # ---- customers and plants ----------------------------------------------------------------
    def ensure_customer(self, customer_id: str, name: str) -> None:
        with self._tx() as conn:
            found = conn.execute(select(t.customers.c.customer_id).where(t.customers.c.customer_id == customer_id))
            if found.first() is None:
                conn.execute(insert(t.customers).values(customer_id=customer_id, name=name))

    def create_plant(self, *, customer_id: str, name: str, address: str, phone: str, created_at: datetime,
                     latitude: float | None = None, longitude: float | None = None,
                     capacity_kw: float | None = None, tariff_yen_per_kwh: float | None = None) -> str:
        """Register a plant and issue its service code (`pss` + 8 digits, never reused)."""
        with self._tx() as conn:
            conn.execute(
                update(t.service_code_counter).where(t.service_code_counter.c.id == 1)
                .values(last_issued=t.service_code_counter.c.last_issued + 1)
            )
            number = conn.execute(select(t.service_code_counter.c.last_issued)).scalar_one()
            if number > 99_999_999:
                raise RegistryError("service codes are exhausted")
            code = f"pss{number:08d}"
            conn.execute(insert(t.plants).values(
                service_code=code, customer_id=customer_id, name=name, address=address, phone=phone,
                latitude=latitude, longitude=longitude, capacity_kw=capacity_kw,
                tariff_yen_per_kwh=tariff_yen_per_kwh, created_at=created_at,
            ))
        return code

    def list_plants(self, customer_id: str | None = None) -> list[Plant]:
        query = select(t.plants).order_by(t.plants.c.service_code)
        if customer_id is not None:
            query = query.where(t.plants.c.customer_id == customer_id)
        with self._tx() as conn:
            rows = conn.execute(query).mappings().all()
            bound = conn.execute(
                select(t.gateways.c.service_code, t.gateways.c.gateway_id)
                .where(t.gateways.c.service_code.is_not(None)).order_by(t.gateways.c.gateway_id)
            ).all()
        gateways_of: dict[str, list[str]] = {}
        for code, gateway_id in bound:
            gateways_of.setdefault(code, []).append(gateway_id)
        return [
            Plant(
                service_code=row["service_code"], customer_id=row["customer_id"], name=row["name"],
                address=row["address"], phone=row["phone"], latitude=row["latitude"],
                longitude=row["longitude"], capacity_kw=row["capacity_kw"],
                tariff_yen_per_kwh=row["tariff_yen_per_kwh"], billing_start_date=row["billing_start_date"],
                gateway_ids=tuple(gateways_of.get(row["service_code"], ())),
            )
            for row in rows
        ]

    def get_plant(self, service_code: str, customer_id: str | None = None) -> Plant | None:
        for plant in self.list_plants(customer_id):
            if plant.service_code == service_code:
                return plant
        return None

    # ---- gateways --------------------------------------------------------------------------------
    def bind_gateway(self, gateway_id: str, service_code: str | None) -> None:
        with self._tx() as conn:
            exists = conn.execute(select(t.gateways.c.gateway_id).where(t.gateways.c.gateway_id == gateway_id))
            if exists.first() is None:
                conn.execute(insert(t.gateways).values(gateway_id=gateway_id, service_code=service_code,
                                                       status="unknown", power_interval_s=60.0))
            else:
                conn.execute(update(t.gateways).where(t.gateways.c.gateway_id == gateway_id)
                             .values(service_code=service_code))

    def list_gateways(self, customer_id: str | None = None) -> list[Gateway]:
        query = select(t.gateways).order_by(t.gateways.c.gateway_id)
        if customer_id is not None:
            owned = select(t.plants.c.service_code).where(t.plants.c.customer_id == customer_id)
            query = query.where(t.gateways.c.service_code.in_(owned))
        with self._tx() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            Gateway(
                gateway_id=row["gateway_id"], service_code=row["service_code"], status=row["status"],
                status_changed_at=row["status_changed_at"], last_seen_at=row["last_seen_at"],
                power_interval_s=row["power_interval_s"], heartbeat=row["heartbeat"],
            )
            for row in rows
        ]

    def record_gateway_status(self, gateway_id: str, status: str, at: datetime) -> None:
        """Record a status change; an unknown gateway is registered unbound (zero-config discovery)."""
        with self._tx() as conn:
            row = conn.execute(select(t.gateways.c.status).where(t.gateways.c.gateway_id == gateway_id)).first()
            if row is None:
                conn.execute(insert(t.gateways).values(gateway_id=gateway_id, status=status,
                                                       status_changed_at=at, last_seen_at=at,
                                                       power_interval_s=60.0))
            elif row[0] != status:
                values: dict[str, Any] = {"status": status, "status_changed_at": at}
                if status == "online":
                    values["last_seen_at"] = at
                conn.execute(update(t.gateways).where(t.gateways.c.gateway_id == gateway_id).values(**values))

    def record_heartbeat(self, gateway_id: str, heartbeat: dict[str, Any], at: datetime,
                         power_interval_s: float) -> None:
        with self._tx() as conn:
            row = conn.execute(select(t.gateways.c.gateway_id).where(t.gateways.c.gateway_id == gateway_id)).first()
            values = {"heartbeat": heartbeat, "last_seen_at": at, "power_interval_s": power_interval_s}
            if row is None:
                conn.execute(insert(t.gateways).values(gateway_id=gateway_id, status="online",
                                                       status_changed_at=at, **values))
            else:
                conn.execute(update(t.gateways).where(t.gateways.c.gateway_id == gateway_id).values(**values))

    def plant_of_gateway(self, gateway_id: str) -> str | None:
        with self._tx() as conn:
            return conn.execute(
                select(t.gateways.c.service_code).where(t.gateways.c.gateway_id == gateway_id)
            ).scalar()

    # ---- API keys --------------------------------------------------------------------------------
    def create_api_key(self, *, label: str, created_at: datetime, customer_id: str | None = None,
                       secret: str | None = None) -> str:
        """Store a key (hashed); returns the secret, which is shown once and never stored."""
        secret = secret or "pms_" + secrets.token_urlsafe(32)
        digest = hash_api_key(secret)
        with self._tx() as conn:
            if conn.execute(select(t.api_keys.c.key_id).where(t.api_keys.c.key_hash == digest)).first() is None:
                conn.execute(insert(t.api_keys).values(
                    key_id=secrets.token_hex(8), key_hash=digest, customer_id=customer_id, label=label,
                    created_at=created_at, revoked=False,
                ))
        return secret

    def authenticate(self, secret: str) -> Principal | None:
        with self._tx() as conn:
            row = conn.execute(
                select(t.api_keys.c.key_id, t.api_keys.c.customer_id)
                .where(t.api_keys.c.key_hash == hash_api_key(secret), t.api_keys.c.revoked.is_(False))
            ).first()
        return None if row is None else Principal(key_id=row[0], customer_id=row[1])

    # ---- events ----------------------------------------------------------------------------------
    def open_event(self, *, kind: str, at: datetime, message: str, gateway_id: str | None = None,
                   service_code: str | None = None) -> tuple[EventRecord, bool]:
        """Open an event unless the same kind is already open for the gateway; (event, newly opened)."""
        with self._tx() as conn:
            existing = conn.execute(
                select(t.events).where(t.events.c.kind == kind, t.events.c.state == "open",
                                       t.events.c.gateway_id == gateway_id)
            ).mappings().first()
            if existing is not None:
                return _event(existing), False
            event_id = conn.execute(insert(t.events).values(
                kind=kind, state="open", gateway_id=gateway_id, service_code=service_code,
                opened_at=at, message=message,
            )).inserted_primary_key[0]  # type: ignore[index]
            row = conn.execute(select(t.events).where(t.events.c.event_id == event_id)).mappings().one()
        return _event(row), True

    def recover_event(self, *, kind: str, gateway_id: str, at: datetime) -> EventRecord | None:
        with self._tx() as conn:
            row = conn.execute(
                select(t.events).where(t.events.c.kind == kind, t.events.c.state == "open",
                                       t.events.c.gateway_id == gateway_id)
            ).mappings().first()
            if row is None:
                return None
            conn.execute(update(t.events).where(t.events.c.event_id == row["event_id"])
                         .values(state="recovered", recovered_at=at))
            row = conn.execute(select(t.events).where(t.events.c.event_id == row["event_id"])).mappings().one()
        return _event(row)

    def _event_condition(self, customer_id: str | None, state: str | None) -> ColumnElement[bool]:
        condition: ColumnElement[bool] = true()
        if customer_id is not None:
            owned = select(t.plants.c.service_code).where(t.plants.c.customer_id == customer_id)
            condition = and_(condition, t.events.c.service_code.in_(owned))
        if state is not None:
            condition = and_(condition, t.events.c.state == state)
        return condition

    def list_events(self, *, customer_id: str | None = None, limit: int = 100, offset: int = 0,
                    state: str | None = None) -> list[EventRecord]:
        """A page of events, newest first."""
        query = (select(t.events).where(self._event_condition(customer_id, state))
                 .order_by(t.events.c.opened_at.desc(), t.events.c.event_id.desc()).limit(limit).offset(offset))
        with self._tx() as conn:
            rows = conn.execute(query).mappings().all()
        return [_event(row) for row in rows]

    def count_events(self, *, customer_id: str | None = None, state: str | None = None) -> int:
        query = select(func.count()).select_from(t.events).where(self._event_condition(customer_id, state))
        with self._tx() as conn:
            return int(conn.execute(query).scalar_one())

    def count_plants(self) -> int:
        with self._tx() as conn:
            return int(conn.execute(select(func.count()).select_from(t.plants)).scalar_one())


def _event(row: Any) -> EventRecord:
    return EventRecord(
        event_id=row["event_id"], kind=row["kind"], state=row["state"], gateway_id=row["gateway_id"],
        service_code=row["service_code"], opened_at=row["opened_at"], recovered_at=row["recovered_at"],
        message=row["message"],
    )
