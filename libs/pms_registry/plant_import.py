"""A CSV import of plants, in two steps: the preview's valid rows are kept under a token, and the
confirmation writes exactly those rows, all in one transaction or none (pms_api.plant_csv reads and
checks the file; this part only keeps and applies what it accepted).

A kept row is a dict: `row` (its line in the file), `service_code` (None: a new plant, its code
issued now), `plant` (customer_id, name, address, phone, latitude, longitude, capacity_kw), `pv`
(pms_registry.pv.PV_FIELDS) and `tariff_yen_per_kwh` with `set_tariff` (whether to set the starting
price: see plant_rows.set_starting_price).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from pms_registry import schema as t
from pms_registry.core import RegistryCore, require_customer
from pms_registry.errors import RegistryError
from pms_registry.plant_rows import insert_plant, set_starting_price
from pms_registry.pv import PV_FIELDS, upsert_pv

IMPORT_VALID_FOR = timedelta(minutes=30)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class ImportedPlant:
    row: int
    service_code: str
    created: bool


class ImportNotFound(RegistryError):
    """No import under this token for this user: never previewed, expired, or confirmed already."""


class PlantImports(RegistryCore):
    def keep_plant_import(self, token: str, *, actor: str, customer_scope: str | None,
                          rows: Sequence[dict[str, Any]], at: datetime) -> datetime:
        """Keep the previewed rows until they are confirmed or expire; returns when they expire."""
        expires = at + IMPORT_VALID_FOR
        with self._tx() as conn:
            conn.execute(delete(t.plant_imports).where(t.plant_imports.c.expires_at < at))
            conn.execute(insert(t.plant_imports).values(token_hash=token_hash(token), actor=actor,
                                                        customer_scope=customer_scope, rows=list(rows),
                                                        created_at=at, expires_at=expires))
        return expires

    def confirm_plant_import(self, token: str, *, actor: str, at: datetime) -> list[ImportedPlant]:
        """Write the rows the preview under `token` accepted, all or none; ImportNotFound when there is
        nothing to confirm, RegistryError (nothing written) when a row no longer fits."""
        pi = t.plant_imports.c
        with self._tx() as conn:
            kept = conn.execute(select(t.plant_imports).where(
                pi.token_hash == token_hash(token), pi.actor == actor, pi.confirmed_at.is_(None),
                pi.expires_at >= at)).mappings().first()
            if kept is None:
                raise ImportNotFound("no import to confirm under this token: it expired, was confirmed already or "
                                     "was previewed by someone else; upload the file again")
            done = [_apply(conn, row, kept["customer_scope"], at) for row in kept["rows"]]
            conn.execute(update(t.plant_imports).where(pi.token_hash == kept["token_hash"]).values(confirmed_at=at))
        return done


def _apply(conn: Connection, row: dict[str, Any], scope: str | None, at: datetime) -> ImportedPlant:
    where = f"row {row['row']}"
    plant = dict(row["plant"])
    if scope is not None and plant["customer_id"] != scope:
        raise RegistryError(f"{where}: customer_id: you may import plants of customer {scope} only")
    try:
        require_customer(conn, plant["customer_id"])
    except RegistryError as exc:
        raise RegistryError(f"{where}: customer_id: {exc}") from exc
    code = row["service_code"]
    created = code is None
    if code is None:
        code = insert_plant(conn, created_at=at, tariff_yen_per_kwh=row["tariff_yen_per_kwh"], **plant)
    else:
        found = conn.execute(select(t.plants.c.customer_id).where(t.plants.c.service_code == code)).first()
        if found is None or (scope is not None and found[0] != scope):
            raise RegistryError(f"{where}: service_code: no plant {code}")
        conn.execute(update(t.plants).where(t.plants.c.service_code == code).values(**plant))
        if row["set_tariff"]:
            try:
                set_starting_price(conn, code, row["tariff_yen_per_kwh"])
            except RegistryError as exc:
                raise RegistryError(f"{where}: {exc}") from exc
    pv = {field: row["pv"].get(field) for field in PV_FIELDS}
    if not created or any(value is not None for value in pv.values()):
        upsert_pv(conn, code, pv)
    return ImportedPlant(row=int(row["row"]), service_code=code, created=created)
