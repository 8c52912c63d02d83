"""A plant's selling price over time (FIT contracts change price): the tariff history.

Each row holds from its `effective_from` JST day (None: since the plant began) until the next row's.
A row may carry time-of-use bands; the flat price applies outside them. The past is never rewritten:
a new row takes effect on a future day, and only rows not yet in force may be replaced or deleted,
so a past month keeps the price it was sold at. Pricing a slot is pms_plant.pricing's job.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from itertools import pairwise
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from pms_registry import schema as t
from pms_registry.core import RegistryCore
from pms_registry.errors import RegistryError

_CLOCK = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")
MAX_YEN_PER_KWH = 1000.0


@dataclass(frozen=True)
class TouBand:
    """A part of the day [start, end) in minutes after 00:00 JST, sold at its own price."""

    start_min: int
    end_min: int
    yen_per_kwh: float

    def as_json(self) -> dict[str, Any]:
        return {"from": _clock(self.start_min), "until": _clock(self.end_min), "yen_per_kwh": self.yen_per_kwh}


@dataclass(frozen=True)
class Tariff:
    tariff_id: int
    service_code: str
    effective_from: date | None  # None: since the plant began
    yen_per_kwh: float
    bands: tuple[TouBand, ...]
    created_at: datetime
    created_by: str | None

    def covers_day(self, day: date) -> bool:
        return self.effective_from is None or self.effective_from <= day


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _minutes(value: object, where: str) -> int:
    match = _CLOCK.match(str(value)) if isinstance(value, str) else None
    if match is None:
        raise RegistryError(f"{where}: {value!r} is not a time of day as HH:MM")
    minutes = int(match[1]) * 60 + int(match[2])
    if minutes > 24 * 60:
        raise RegistryError(f"{where}: {value!r} is after 24:00")
    return minutes


def _price(value: object, where: str) -> float:
    try:
        price = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise RegistryError(f"{where}: {value!r} is not a number") from None
    if not 0 < price <= MAX_YEN_PER_KWH:
        raise RegistryError(f"{where}: the price must be above 0 and at most {MAX_YEN_PER_KWH:g} yen/kWh")
    return price


def parse_bands(raw: Sequence[dict[str, Any]] | None) -> tuple[TouBand, ...]:
    """Time-of-use bands from their JSON form ({"from": "HH:MM", "until": "HH:MM", "yen_per_kwh": x}):
    each within 00:00-24:00, from before until, priced above 0, none overlapping another. A band
    across midnight is written as two (22:00-24:00 and 00:00-06:00). RegistryError names the band."""
    bands = []
    for number, band in enumerate(raw or [], start=1):
        where = f"bands[{number}]"
        if not isinstance(band, dict):
            raise RegistryError(f"{where}: a band is an object with from, until and yen_per_kwh")
        start = _minutes(band.get("from"), f"{where}.from")
        end = _minutes(band.get("until"), f"{where}.until")
        if start >= end:
            raise RegistryError(f"{where}: from ({_clock(start)}) must be before until ({_clock(end)})")
        bands.append(TouBand(start, end, _price(band.get("yen_per_kwh"), f"{where}.yen_per_kwh")))
    ordered = sorted(bands, key=lambda b: b.start_min)
    for before, after in pairwise(ordered):
        if after.start_min < before.end_min:
            raise RegistryError(f"bands: {_clock(before.start_min)}-{_clock(before.end_min)} and "
                                f"{_clock(after.start_min)}-{_clock(after.end_min)} overlap")
    return tuple(ordered)


def _tariff(row: Any) -> Tariff:
    return Tariff(tariff_id=row["tariff_id"], service_code=row["service_code"], effective_from=row["effective_from"],
                  yen_per_kwh=row["yen_per_kwh"], bands=parse_bands(row["bands"]), created_at=row["created_at"],
                  created_by=row["created_by"])


def tariffs_of_plants(conn: Connection, service_codes: Sequence[str] | Any) -> dict[str, list[Tariff]]:
    """Each plant's tariff history, oldest first ("since always" before any dated row); one query."""
    pt = t.plant_tariffs.c
    rows = conn.execute(select(t.plant_tariffs).where(pt.service_code.in_(service_codes))
                        .order_by(pt.service_code, pt.effective_from.is_not(None), pt.effective_from)).mappings()
    found: dict[str, list[Tariff]] = {}
    for row in rows:
        found.setdefault(row["service_code"], []).append(_tariff(row))
    return found


def tariff_in_force(history: Sequence[Tariff], day: date) -> Tariff | None:
    """The row of an oldest-first history that holds on the JST `day` (None: no price yet)."""
    found = None
    for tariff in history:
        if tariff.covers_day(day):
            found = tariff
    return found


class Tariffs(RegistryCore):
    def list_tariffs(self, service_code: str) -> list[Tariff]:
        with self._tx() as conn:
            return tariffs_of_plants(conn, [service_code]).get(service_code, [])

    def tariffs_of(self, service_codes: Sequence[str]) -> dict[str, list[Tariff]]:
        """Many plants' histories in one query (a long list through a subquery: SQLite limits parameters)."""
        wanted = set(service_codes)
        codes: Any = sorted(wanted) if len(wanted) <= 1000 else select(t.plants.c.service_code)
        with self._tx() as conn:
            found = tariffs_of_plants(conn, codes)
        return {code: history for code, history in found.items() if code in wanted}

    def tariff_on(self, service_code: str, day: date) -> Tariff | None:
        """The tariff in force on the JST `day`."""
        return tariff_in_force(self.list_tariffs(service_code), day)

    def add_tariff(self, service_code: str, *, effective_from: date | None, yen_per_kwh: float,
                   bands: Sequence[dict[str, Any]] | None, at: datetime, actor: str | None, today: date) -> Tariff:
        """A new price from `effective_from` (a JST day after `today`); a row already set for that day and
        not yet in force is replaced. `effective_from` None ("since always") only for a plant without a
        price yet. Keeps `plants.tariff_yen_per_kwh` as the price in force today."""
        price = _price(yen_per_kwh, "yen_per_kwh")
        parsed = parse_bands(bands)
        with self._tx() as conn:
            self._require_plant(conn, service_code)
            history = tariffs_of_plants(conn, [service_code]).get(service_code, [])
            if effective_from is None and history:
                raise RegistryError("effective_from: the plant has a price already; give the day the new one starts")
            if effective_from is not None and effective_from <= today:
                raise RegistryError(f"effective_from: {effective_from.isoformat()} is not in the future: a price "
                                    f"already in force is never changed (the first day allowed is after "
                                    f"{today.isoformat()})")
            pt = t.plant_tariffs.c
            conn.execute(delete(t.plant_tariffs).where(
                pt.service_code == service_code,
                pt.effective_from.is_(None) if effective_from is None else pt.effective_from == effective_from))
            tariff_id = conn.execute(insert(t.plant_tariffs).values(
                service_code=service_code, effective_from=effective_from, yen_per_kwh=price,
                bands=[band.as_json() for band in parsed] or None, created_at=at, created_by=actor,
            ).returning(pt.tariff_id)).scalar_one()
            self._keep_current_price(conn, service_code, today)
            row = conn.execute(select(t.plant_tariffs).where(pt.tariff_id == tariff_id)).mappings().one()
        return _tariff(row)

    def delete_tariff(self, service_code: str, tariff_id: int, today: date) -> None:
        """Withdraw a price that has not taken effect yet (one in force or past is the record of a sale)."""
        pt = t.plant_tariffs.c
        with self._tx() as conn:
            row = conn.execute(select(t.plant_tariffs).where(pt.tariff_id == tariff_id,
                                                             pt.service_code == service_code)).mappings().first()
            if row is None:
                raise RegistryError(f"plant {service_code} has no tariff {tariff_id}")
            if row["effective_from"] is None or row["effective_from"] <= today:
                raise RegistryError(f"tariff {tariff_id} is in force or past: only a future price may be deleted")
            conn.execute(delete(t.plant_tariffs).where(pt.tariff_id == tariff_id))
            self._keep_current_price(conn, service_code, today)

    @staticmethod
    def _require_plant(conn: Connection, service_code: str) -> None:
        if conn.execute(select(t.plants.c.service_code).where(t.plants.c.service_code == service_code)).first() \
                is None:
            raise RegistryError(f"no plant {service_code}")

    @staticmethod
    def _keep_current_price(conn: Connection, service_code: str, today: date) -> None:
        """plants.tariff_yen_per_kwh mirrors today's flat price for readers of the plain column."""
        current = tariff_in_force(tariffs_of_plants(conn, [service_code]).get(service_code, []), today)
        conn.execute(update(t.plants).where(t.plants.c.service_code == service_code)
                     .values(tariff_yen_per_kwh=None if current is None else current.yen_per_kwh))
