"""Which plant a gateway serves, and since when: binding intervals, decommissioning, fleet counts.

A binding is (gateway, plant, bound_from, bound_until); bound_until None means it still holds. A
gateway has at most one open binding; `gateways.service_code` mirrors it so that the queries that
only need "where is it now" stay one join. A plant's series read each of its gateways within its
bindings only (pms_api.bound_reads), so:

- replacing a plant's gateway keeps the plant's whole history (old gateway until T, new one from T);
- moving a gateway to another plant leaves its earlier readings with the earlier plant.

A gateway's first binding also reads what the gateway stored before it was bound (its meter's
history backfilled on first start, readings buffered before the operator bound it), unless the
plant was served before by another gateway: then it reads from when that one left, so that a
replacement that backfills the meter's history does not count it twice. See `Binding.reads_from`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from pms_common import timeutil
from pms_registry import schema as t
from pms_registry.core import RegistryCore
from pms_registry.errors import RegistryError
from pms_registry.records import Binding, Gateway, gateway_condition

# What GET /api/v1/gateways?status= and the home screen's counts distinguish (records.Gateway.condition).
CONDITIONS = ("online", "offline", "never_seen", "unbound", "decommissioned")
DEFAULT_POWER_INTERVAL_S = 60.0


class Bindings(RegistryCore):
    def bind_gateway(self, gateway_id: str, service_code: str | None, *, at: datetime | None = None,
                     replace: bool = False) -> list[str]:
        """Bind the gateway to the plant from `at` (default now), or unbind it (None).

        Its open binding elsewhere, if any, closes at `at`. With `replace`, the plant's other open
        bindings close too. An unknown gateway is registered. Returns the gateways this left bound
        to nothing (the unbound one, the replaced ones), whose broker identities the caller revokes.
        """
        at = at or timeutil.now_jst()
        left_unbound: list[str] = []
        try:
            with self._tx() as conn:
                row = conn.execute(select(t.gateways.c.decommissioned_at)
                                   .where(t.gateways.c.gateway_id == gateway_id)).first()
                if row is None:
                    conn.execute(insert(t.gateways).values(gateway_id=gateway_id, status="unknown",
                                                           power_interval_s=DEFAULT_POWER_INTERVAL_S))
                elif row[0] is not None and service_code is not None:
                    raise RegistryError(f"gateway {gateway_id} is decommissioned and cannot be bound again")
                current = _open_binding(conn, gateway_id)
                if current is not None and current["bound_from"] > at:
                    raise RegistryError(f"gateway {gateway_id} is bound since {current['bound_from'].isoformat()}:"
                                        f" a change cannot take effect before that ({at.isoformat()})")
                staying = current is not None and current["service_code"] == service_code
                if current is not None and not staying:
                    _close(conn, current["binding_id"], gateway_id, at)
                    if service_code is None:
                        left_unbound.append(gateway_id)
                if service_code is not None and replace:
                    left_unbound += self._close_others(conn, service_code, gateway_id, at)
                if service_code is not None and not staying:
                    conn.execute(insert(t.gateway_bindings).values(
                        gateway_id=gateway_id, service_code=service_code, bound_from=at, bound_until=None))
                    conn.execute(update(t.gateways).where(t.gateways.c.gateway_id == gateway_id)
                                 .values(service_code=service_code))
        except RegistryError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise RegistryError(f"no plant {service_code}") from exc
            raise
        return left_unbound

    def _close_others(self, conn: Connection, service_code: str, keep: str, at: datetime) -> list[str]:
        others = conn.execute(
            select(t.gateway_bindings.c.binding_id, t.gateway_bindings.c.gateway_id, t.gateway_bindings.c.bound_from)
            .where(t.gateway_bindings.c.service_code == service_code, t.gateway_bindings.c.bound_until.is_(None),
                   t.gateway_bindings.c.gateway_id != keep)
        ).all()
        for binding_id, other, bound_from in others:
            if bound_from > at:
                raise RegistryError(f"gateway {other} serves {service_code} since {bound_from.isoformat()}: "
                                    f"it cannot be replaced before that ({at.isoformat()})")
            _close(conn, binding_id, other, at)
        return sorted(other for _, other, _ in others)

    def decommission_gateway(self, gateway_id: str, *, at: datetime | None = None) -> Gateway:
        """Take a gateway out of service: its binding closes, its history stays with the plants it
        served, and it no longer counts anywhere. Doing it twice keeps the first time."""
        at = at or timeutil.now_jst()
        with self._tx() as conn:
            row = conn.execute(select(t.gateways.c.decommissioned_at)
                               .where(t.gateways.c.gateway_id == gateway_id)).first()
            if row is None:
                raise RegistryError(f"no gateway {gateway_id}")
            if row[0] is None:
                current = _open_binding(conn, gateway_id)
                if current is not None:
                    _close(conn, current["binding_id"], gateway_id, max(at, current["bound_from"]))
                conn.execute(update(t.gateways).where(t.gateways.c.gateway_id == gateway_id)
                             .values(decommissioned_at=at))
        found = self.get_gateway(gateway_id)
        assert found is not None
        return found

    def _close_plant_bindings(self, conn: Connection, service_code: str, at: datetime) -> None:
        """A deleted plant's gateways are left unbound; the bindings stay as the record."""
        conn.execute(update(t.gateway_bindings)
                     .where(t.gateway_bindings.c.service_code == service_code,
                            t.gateway_bindings.c.bound_until.is_(None))
                     .values(bound_until=at))
        conn.execute(update(t.gateways).where(t.gateways.c.service_code == service_code).values(service_code=None))

    # ---- reading bindings ------------------------------------------------------------------------
    def bindings_of_plant(self, service_code: str) -> list[Binding]:
        """Every binding the plant had, oldest first, each with where its series read from."""
        with self._tx() as conn:
            return self._bindings_of_plants(conn, [service_code]).get(service_code, [])

    def binding_history(self, gateway_id: str) -> list[Binding]:
        """The plants the gateway served, oldest first."""
        with self._tx() as conn:
            codes = conn.execute(select(t.gateway_bindings.c.service_code).distinct()
                                 .where(t.gateway_bindings.c.gateway_id == gateway_id)).scalars().all()
            of_plants = self._bindings_of_plants(conn, list(codes))
        mine = [b for bindings in of_plants.values() for b in bindings if b.gateway_id == gateway_id]
        return sorted(mine, key=lambda b: (b.bound_from, b.binding_id))

    def plant_of_gateway(self, gateway_id: str, at: datetime | None = None) -> str | None:
        """The plant the gateway serves now, or the plant a reading it took at `at` belongs to."""
        if at is None:
            with self._tx() as conn:
                return conn.execute(
                    select(t.gateways.c.service_code).where(t.gateways.c.gateway_id == gateway_id)
                ).scalar()
        return next((b.service_code for b in self.binding_history(gateway_id) if b.covers(at)), None)

    def bound_since(self) -> dict[str, datetime]:
        """When each bound gateway's open binding started."""
        b = t.gateway_bindings.c
        with self._tx() as conn:
            rows = conn.execute(select(b.gateway_id, b.bound_from).where(b.bound_until.is_(None))).all()
        return {gateway_id: bound_from for gateway_id, bound_from in rows}

    def _bindings_of_plants(self, conn: Connection, service_codes: Sequence[str] | Any) -> dict[str, list[Binding]]:
        """The plants' bindings with `reads_from` worked out: two queries however many plants.

        `service_codes` is a list or a SELECT of service codes (a subquery stays one statement
        where a long list would be expanded into as many parameters)."""
        b = t.gateway_bindings.c
        rows = conn.execute(select(t.gateway_bindings).where(b.service_code.in_(service_codes))
                            .order_by(b.bound_from, b.binding_id)).mappings().all()
        if not rows:
            return {}
        their_gateways = select(b.gateway_id).where(b.service_code.in_(service_codes))
        firsts: dict[str, tuple[datetime, int]] = {}
        for gateway_id, bound_from, binding_id in conn.execute(
                select(b.gateway_id, b.bound_from, b.binding_id).where(b.gateway_id.in_(their_gateways))):
            key = (bound_from, binding_id)
            if gateway_id not in firsts or key < firsts[gateway_id]:
                firsts[gateway_id] = key
        of_plant: dict[str, list[Any]] = {}
        for row in rows:
            of_plant.setdefault(row["service_code"], []).append(row)
        out: dict[str, list[Binding]] = {}
        for row in rows:
            reads_from: datetime | None = row["bound_from"]
            if firsts[row["gateway_id"]] == (row["bound_from"], row["binding_id"]):
                handed_over = [other["bound_until"] for other in of_plant[row["service_code"]]
                               if other["gateway_id"] != row["gateway_id"]
                               and other["bound_until"] is not None and other["bound_until"] <= row["bound_from"]]
                reads_from = max(handed_over, default=None)
            out.setdefault(row["service_code"], []).append(Binding(
                binding_id=row["binding_id"], gateway_id=row["gateway_id"], service_code=row["service_code"],
                bound_from=row["bound_from"], bound_until=row["bound_until"], reads_from=reads_from))
        return out

    # ---- gateways --------------------------------------------------------------------------------
    def list_gateways(self, customer_id: str | None = None) -> list[Gateway]:
        """Every gateway (decommissioned ones too); a customer's: those bound to its plants now."""
        return self._gateways(None if customer_id is None else t.gateways.c.service_code.in_(_owned(customer_id)))

    def get_gateway(self, gateway_id: str, customer_id: str | None = None) -> Gateway | None:
        """One gateway; None when unknown or (for a customer) not bound to one of its plants."""
        condition = t.gateways.c.gateway_id == gateway_id
        if customer_id is not None:
            condition = condition & t.gateways.c.service_code.in_(_owned(customer_id))
        found = self._gateways(condition)
        return found[0] if found else None

    def _gateways(self, condition: ColumnElement[bool] | None) -> list[Gateway]:
        query = select(t.gateways).order_by(t.gateways.c.gateway_id)
        if condition is not None:
            query = query.where(condition)
        with self._tx() as conn:
            rows = conn.execute(query).mappings().all()
        return [_gateway(row) for row in rows]

    def gateway_status_counts(self, customer_id: str | None = None) -> dict[str, int]:
        """How many gateways are online, offline, never seen and unbound (decommissioned ones count
        nowhere; a customer has no unbound gateways)."""
        g = t.gateways.c
        # Grouped in the database (device-manager counts every 15 s, the home screen on every
        # refresh): three plain expressions, not a CASE, which PostgreSQL would not match between the
        # select list and GROUP BY once its string literals are bound parameters.
        parts = (g.decommissioned_at.is_not(None), g.service_code.is_not(None), g.status)
        query = select(*parts, func.count()).group_by(*parts)
        if customer_id is not None:
            query = query.where(g.service_code.in_(_owned(customer_id)))
        counts = dict.fromkeys(CONDITIONS[:-1], 0)
        with self._tx() as conn:
            for decommissioned, bound, status, count in conn.execute(query):
                condition = gateway_condition(decommissioned=bool(decommissioned), bound=bool(bound), status=status)
                if condition in counts:
                    counts[condition] += count
        return counts


def _owned(customer_id: str) -> Any:
    return select(t.plants.c.service_code).where(t.plants.c.customer_id == customer_id)


def _open_binding(conn: Connection, gateway_id: str) -> Any:
    return conn.execute(select(t.gateway_bindings).where(t.gateway_bindings.c.gateway_id == gateway_id,
                                                         t.gateway_bindings.c.bound_until.is_(None))
                        ).mappings().first()


def _close(conn: Connection, binding_id: int, gateway_id: str, at: datetime) -> None:
    conn.execute(update(t.gateway_bindings).where(t.gateway_bindings.c.binding_id == binding_id)
                 .values(bound_until=at))
    conn.execute(update(t.gateways).where(t.gateways.c.gateway_id == gateway_id).values(service_code=None))


def _gateway(row: Any) -> Gateway:
    return Gateway(
        gateway_id=row["gateway_id"], service_code=row["service_code"], status=row["status"],
        status_changed_at=row["status_changed_at"], last_seen_at=row["last_seen_at"],
        power_interval_s=row["power_interval_s"], heartbeat=row["heartbeat"],
        decommissioned_at=row["decommissioned_at"],
    )


def open_gateway_ids(bindings: Iterable[Binding]) -> tuple[str, ...]:
    return tuple(sorted(b.gateway_id for b in bindings if b.bound_until is None))
