"""The cross-plant list's registry side: search, filter, sort and page plants in SQL.

A fleet has 10,000 plants; a list page shows a hundred. So the registry does what it can in one
statement (who may see what, the search, the customer and tag filters, a sort by a registry column,
the page and the count), and hands back plain rows without bindings. The figures (sold power,
today's kWh, status) live in the store; a sort or filter by them is done by the API over the codes
that match here (`matching_codes`; the snapshot's own list when only customers filter). Retired plants
are in none of these answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import ColumnElement, exists, func, or_, select

from pms_registry import schema as t
from pms_registry.bindings import Bindings, open_gateway_ids
from pms_registry.records import Plant

# The registry columns the list may be sorted by in SQL (the figures are sorted by the API).
RegistrySortKey = Literal["service_code", "name", "customer_id"]
# Columns a search looks in, each as a case-insensitive substring.
SEARCHED = ("service_code", "name", "address", "phone", "customer_id")


@dataclass(frozen=True)
class PlantFilter:
    """What the caller may see (`scope_customer_id`, None = every customer) and what it asked for."""

    scope_customer_id: str | None = None
    text: str | None = None
    customer_id: str | None = None
    tag: str | None = None


@dataclass(frozen=True)
class PlantListing:
    """A plant as a list row shows it, without bindings (those are read for the page's rows only)."""

    service_code: str
    customer_id: str
    name: str
    address: str
    phone: str


@dataclass(frozen=True)
class FleetBinding:
    gateway_id: str
    still_bound: bool
    settled: bool  # bound before the time the caller named


@dataclass(frozen=True)
class FleetPlant:
    customer_id: str
    bindings: list[FleetBinding]


@dataclass(frozen=True)
class GatewayState:
    status: str
    power_interval_s: float


class PlantSearch(Bindings):
    def search_plants(self, where: PlantFilter, *, sort: RegistrySortKey = "service_code", descending: bool = False,
                      limit: int = 100, offset: int = 0) -> tuple[list[PlantListing], int]:
        """One page of the matching plants sorted by a registry column, and how many match in all."""
        column = t.plants.c[sort]
        ordering = [column.desc() if descending else column.asc()]
        if sort != "service_code":  # ties keep a stable order, so paging neither repeats nor skips
            ordering.append(t.plants.c.service_code.asc())
        conditions = _conditions(where)
        p = t.plants.c
        query = (select(p.service_code, p.customer_id, p.name, p.address, p.phone).where(*conditions)
                 .order_by(*ordering).limit(limit).offset(offset))
        with self._tx() as conn:
            rows = conn.execute(query).all()
            total = conn.execute(select(func.count()).select_from(t.plants).where(*conditions)).scalar_one()
        return [PlantListing(*row) for row in rows], int(total)

    def listings(self, service_codes: Sequence[str]) -> dict[str, PlantListing]:
        p = t.plants.c
        with self._tx() as conn:
            rows = conn.execute(select(p.service_code, p.customer_id, p.name, p.address, p.phone)
                                .where(p.service_code.in_(list(service_codes)))).all()
        return {row[0]: PlantListing(*row) for row in rows}

    def plants_with_bindings(self, service_codes: Sequence[str] | None = None) -> list[Plant]:
        """The plants (all active ones when `service_codes` is None) with their bindings, sorted by code:
        three statements however many (a list's page, or the whole fleet for its snapshot)."""
        query = select(t.plants).where(t.plants.c.retired_at.is_(None)).order_by(t.plants.c.service_code)
        if service_codes is not None:
            query = query.where(t.plants.c.service_code.in_(list(service_codes)))
        codes = query.with_only_columns(t.plants.c.service_code).order_by(None)
        with self._tx() as conn:
            rows = conn.execute(query).mappings().all()
            bindings = self._bindings_of_plants(conn, codes) if rows else {}
        return [
            Plant(service_code=row["service_code"], customer_id=row["customer_id"], name=row["name"],
                  address=row["address"], phone=row["phone"], latitude=row["latitude"], longitude=row["longitude"],
                  capacity_kw=row["capacity_kw"], tariff_yen_per_kwh=row["tariff_yen_per_kwh"],
                  billing_start_date=row["billing_start_date"],
                  gateway_ids=open_gateway_ids(bindings.get(row["service_code"], [])),
                  bindings=tuple(bindings.get(row["service_code"], [])), retired_at=row["retired_at"])
            for row in rows
        ]

    def fleet_bindings(self, settled_before: datetime) -> dict[str, FleetPlant]:
        """Every active plant's customer and bindings, in one plain join whose time comparisons SQL makes
        (converting 20,000 timestamps in Python cost more than the rest of the fleet snapshot)."""
        p, b = t.plants.c, t.gateway_bindings.c
        query = (select(p.service_code, p.customer_id, b.gateway_id, b.bound_until.is_(None),
                        b.bound_from <= settled_before)
                 .select_from(t.plants.outerjoin(t.gateway_bindings, b.service_code == p.service_code))
                 .where(p.retired_at.is_(None)))
        out: dict[str, FleetPlant] = {}
        with self._tx() as conn:
            rows = conn.execute(query).all()
        for code, customer_id, gateway_id, still_bound, settled in rows:
            plant = out.get(code)
            if plant is None:
                plant = out[code] = FleetPlant(customer_id, [])
            if gateway_id is not None:
                plant.bindings.append(FleetBinding(gateway_id, bool(still_bound), bool(settled)))
        return out

    def matching_codes(self, where: PlantFilter) -> list[str]:
        """Every matching plant's service code, unsorted."""
        with self._tx() as conn:
            return list(conn.execute(select(t.plants.c.service_code).where(*_conditions(where))).scalars())

    def gateway_states(self, gateway_ids: Sequence[str] | None = None) -> dict[str, GatewayState]:
        """Status and power interval of these gateways (all when None), without their heartbeats."""
        g = t.gateways.c
        query = select(g.gateway_id, g.status, g.power_interval_s)
        if gateway_ids is not None:
            query = query.where(g.gateway_id.in_(list(gateway_ids)))
        with self._tx() as conn:
            rows = conn.execute(query).all()
        return {gw: GatewayState(status, float(interval)) for gw, status, interval in rows}


def _conditions(where: PlantFilter) -> list[ColumnElement[bool]]:
    p = t.plants.c
    conditions: list[ColumnElement[bool]] = [p.retired_at.is_(None)]
    if where.scope_customer_id is not None:
        conditions.append(p.customer_id == where.scope_customer_id)
    if where.customer_id is not None:
        conditions.append(p.customer_id == where.customer_id)
    if where.text:
        # lower() on both sides: PostgreSQL's LIKE is case-sensitive, SQLite's only folds ASCII (Japanese
        # has no case, so a substring of a name in kana or kanji matches as typed on both).
        needle = where.text.lower()
        conditions.append(or_(*(func.lower(p[name]).contains(needle, autoescape=True) for name in SEARCHED)))
    if where.tag is not None:  # a tag of a gateway bound to the plant now
        g, tags = t.gateways.c, t.gateway_tags.c
        conditions.append(exists(
            select(g.gateway_id).join(t.gateway_tags, tags.gateway_id == g.gateway_id)
            .where(tags.tag == where.tag, g.service_code == p.service_code)))
    return conditions
