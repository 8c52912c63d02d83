"""What the home screen reports: the event log and notices (maintenance, outage, firmware, info)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, delete, func, insert, or_, select, true, update

from pms_registry import schema as t
from pms_registry.alerting import event_record, journal
from pms_registry.core import RegistryCore, require_customer
from pms_registry.errors import RegistryError
from pms_registry.records import EventRecord, Notice

NOTICE_KINDS = ("maintenance", "outage", "firmware", "info")
NOTICE_STATES = ("current", "scheduled", "past")
NoticeState = Literal["current", "scheduled", "past"]
# What update_notice may change (created_at and created_by record the first publication).
NOTICE_FIELDS = ("kind", "title", "body", "title_en", "body_en", "starts_at", "ends_at", "customer_id")


@dataclass(frozen=True)
class EventFilter:
    """What the events page and GET /api/v1/events narrow the log by, besides customer and state:
    one plant, one kind, acknowledged or not, and opened within [opened_from, opened_until)."""

    service_code: str | None = None
    kind: str | None = None
    acknowledged: bool | None = None
    opened_from: datetime | None = None
    opened_until: datetime | None = None


class EventLog(RegistryCore):
    # ---- events ----------------------------------------------------------------------------------
    def open_event(self, *, kind: str, at: datetime, message: str, gateway_id: str | None = None,
                   service_code: str | None = None, params: dict[str, Any] | None = None,
                   severity: str | None = None) -> tuple[EventRecord, bool]:
        """Open an event unless the same kind is already open for the gateway; (event, newly opened).
        A new event is journalled ("raised") for the notifier and the MQTT publisher."""
        with self._tx() as conn:
            existing = conn.execute(
                select(t.events).where(t.events.c.kind == kind, t.events.c.state == "open",
                                       t.events.c.gateway_id == gateway_id)
            ).mappings().first()
            if existing is not None:
                return _event(existing), False
            event_id = conn.execute(insert(t.events).values(
                kind=kind, state="open", gateway_id=gateway_id, service_code=service_code,
                opened_at=at, message=message, params=dict(params or {}), severity=severity,
            )).inserted_primary_key[0]  # type: ignore[index]
            journal(conn, event_id, "raised", at)
            row = conn.execute(select(t.events).where(t.events.c.event_id == event_id)).mappings().one()
        return _event(row), True

    def record_info_event(self, *, kind: str, at: datetime, message: str, gateway_id: str | None = None,
                          service_code: str | None = None, params: dict[str, Any] | None = None,
                          severity: str | None = "info") -> EventRecord:
        """Log something that happened once (e.g. a billing start decided): state "info", never
        recovered; journalled ("info")."""
        with self._tx() as conn:
            event_id = conn.execute(insert(t.events).values(
                kind=kind, state="info", gateway_id=gateway_id, service_code=service_code, opened_at=at,
                message=message, params=dict(params or {}), severity=severity,
            )).inserted_primary_key[0]  # type: ignore[index]
            journal(conn, event_id, "info", at)
            row = conn.execute(select(t.events).where(t.events.c.event_id == event_id)).mappings().one()
        return _event(row)

    def recover_event(self, *, kind: str, gateway_id: str, at: datetime,
                      params: dict[str, Any] | None = None) -> EventRecord | None:
        """Recover the open event of a kind at a gateway (journal "cleared"); `params` are merged
        into the event's."""
        with self._tx() as conn:
            row = conn.execute(
                select(t.events).where(t.events.c.kind == kind, t.events.c.state == "open",
                                       t.events.c.gateway_id == gateway_id)
            ).mappings().first()
            if row is None:
                return None
            merged = {**dict(row["params"] or {}), **(params or {})}
            conn.execute(update(t.events).where(t.events.c.event_id == row["event_id"])
                         .values(state="recovered", recovered_at=at, params=merged))
            journal(conn, row["event_id"], "cleared", at)
            row = conn.execute(select(t.events).where(t.events.c.event_id == row["event_id"])).mappings().one()
        return _event(row)

    def _event_condition(self, customer_id: str | None, state: str | None,
                         where: EventFilter | None = None) -> ColumnElement[bool]:
        c = t.events.c
        conditions: list[ColumnElement[bool]] = []
        if customer_id is not None:
            owned = select(t.plants.c.service_code).where(t.plants.c.customer_id == customer_id)
            conditions.append(c.service_code.in_(owned))
        if state is not None:
            conditions.append(c.state == state)
        if where is not None:
            if where.service_code is not None:
                conditions.append(c.service_code == where.service_code)
            if where.kind is not None:
                conditions.append(c.kind == where.kind)
            if where.acknowledged is not None:
                conditions.append(c.acknowledged_at.is_not(None) if where.acknowledged else c.acknowledged_at.is_(None))
            if where.opened_from is not None:
                conditions.append(c.opened_at >= where.opened_from)
            if where.opened_until is not None:
                conditions.append(c.opened_at < where.opened_until)
        return and_(true(), *conditions)

    def list_events(self, *, customer_id: str | None = None, limit: int = 100, offset: int = 0,
                    state: str | None = None, where: EventFilter | None = None) -> list[EventRecord]:
        """A page of events, newest first: of a customer's plants (None = all), in a state ("open",
        "recovered", "info"), and narrowed by `where`."""
        query = (select(t.events).where(self._event_condition(customer_id, state, where))
                 .order_by(t.events.c.opened_at.desc(), t.events.c.event_id.desc()).limit(limit).offset(offset))
        with self._tx() as conn:
            rows = conn.execute(query).mappings().all()
        return [_event(row) for row in rows]

    def count_events(self, *, customer_id: str | None = None, state: str | None = None,
                     where: EventFilter | None = None) -> int:
        query = select(func.count()).select_from(t.events).where(self._event_condition(customer_id, state, where))
        with self._tx() as conn:
            return int(conn.execute(query).scalar_one())

    def get_event(self, event_id: int) -> EventRecord | None:
        with self._tx() as conn:
            row = conn.execute(select(t.events).where(t.events.c.event_id == event_id)).mappings().first()
        return None if row is None else _event(row)

    def latest_events_of_kind(self, kind: str, window: timedelta) -> list[EventRecord]:
        """Events of one kind from `window` before the newest one's time on (none when there is none):
        what a rule that records one event per stored fact needs to tell which facts are logged."""
        of_kind = t.events.c.kind == kind
        with self._tx() as conn:
            newest = conn.execute(select(func.max(t.events.c.opened_at)).where(of_kind)).scalar_one()
            if newest is None:
                return []
            rows = conn.execute(select(t.events).where(of_kind, t.events.c.opened_at >= newest - window)
                                .order_by(t.events.c.opened_at, t.events.c.event_id)).mappings().all()
        return [_event(row) for row in rows]

    # ---- notices ---------------------------------------------------------------------------------
    def create_notice(self, *, kind: str, title: str, body: str, created_at: datetime,
                      starts_at: datetime | None = None, ends_at: datetime | None = None,
                      customer_id: str | None = None, title_en: str | None = None, body_en: str | None = None,
                      created_by: str | None = None) -> Notice:
        """Publish a notice: `title`/`body` in Japanese, `title_en`/`body_en` beside them (optional);
        shown from `starts_at` (None: at once) until `ends_at` (None: until withdrawn)."""
        _check_notice(kind, starts_at, ends_at)
        with self._tx() as conn:
            require_customer(conn, customer_id)
            notice_id = conn.execute(insert(t.notices).values(
                kind=kind, title=title, body=body, starts_at=starts_at, ends_at=ends_at, created_at=created_at,
                customer_id=customer_id, title_en=title_en or None, body_en=body_en or None, created_by=created_by,
            )).inserted_primary_key[0]  # type: ignore[index]
            row = conn.execute(select(t.notices).where(t.notices.c.notice_id == notice_id)).mappings().one()
        return _notice(row)

    def get_notice(self, notice_id: int) -> Notice | None:
        with self._tx() as conn:
            row = conn.execute(select(t.notices).where(t.notices.c.notice_id == notice_id)).mappings().first()
        return None if row is None else _notice(row)

    def update_notice(self, notice_id: int, **changes: Any) -> Notice | None:
        """Change some of a notice's fields (kind, texts, schedule, customer); None for no such notice.
        The schedule is checked as it will be after the change."""
        unknown = set(changes) - set(NOTICE_FIELDS)
        if unknown:
            raise RegistryError(f"a notice has no field {', '.join(sorted(unknown))}")
        current = self.get_notice(notice_id)
        if current is None:
            return None
        merged = {**{name: getattr(current, name) for name in NOTICE_FIELDS}, **changes}
        _check_notice(merged["kind"], merged["starts_at"], merged["ends_at"])
        for text in ("title_en", "body_en"):
            merged[text] = merged[text] or None
        with self._tx() as conn:
            require_customer(conn, merged["customer_id"])
            conn.execute(update(t.notices).where(t.notices.c.notice_id == notice_id).values(**merged))
        return self.get_notice(notice_id)

    def list_notices(self, *, customer_id: str | None = None, current_at: datetime | None = None,
                     state: NoticeState | None = None, at: datetime | None = None,
                     limit: int = 100, offset: int = 0) -> tuple[list[Notice], int]:
        """Notices a customer may see (None = admin: all), newest first, with their total.

        `current_at`: only those in force at that moment (begun, not ended: the home screen's).
        `state` with `at`: current (in force at `at`), scheduled (starting after `at`) or past
        (ended at or before `at`)."""
        condition: ColumnElement[bool] = true()
        if customer_id is not None:
            condition = or_(t.notices.c.customer_id.is_(None), t.notices.c.customer_id == customer_id)
        if current_at is not None:
            condition = and_(condition, _in_force(current_at))
        if state is not None:
            if at is None:
                raise RegistryError("a notice's state is relative to a moment: give `at`")
            starts, ends = t.notices.c.starts_at, t.notices.c.ends_at
            condition = and_(condition, {
                "current": _in_force(at),
                "scheduled": and_(starts.is_not(None), starts > at),
                "past": and_(ends.is_not(None), ends <= at),
            }[state])
        query = (select(t.notices).where(condition)
                 .order_by(t.notices.c.created_at.desc(), t.notices.c.notice_id.desc()).limit(limit).offset(offset))
        with self._tx() as conn:
            rows = conn.execute(query).mappings().all()
            total = conn.execute(select(func.count()).select_from(t.notices).where(condition)).scalar_one()
        return [_notice(row) for row in rows], int(total)

    def delete_notice(self, notice_id: int) -> bool:
        with self._tx() as conn:
            result = conn.execute(delete(t.notices).where(t.notices.c.notice_id == notice_id))
        return bool(result.rowcount)


def _in_force(at: datetime) -> ColumnElement[bool]:
    starts, ends = t.notices.c.starts_at, t.notices.c.ends_at
    return and_(or_(starts.is_(None), starts <= at), or_(ends.is_(None), ends > at))


def _check_notice(kind: str, starts_at: datetime | None, ends_at: datetime | None) -> None:
    if kind not in NOTICE_KINDS:
        raise RegistryError(f"a notice kind is one of {', '.join(NOTICE_KINDS)}, not {kind!r}")
    if starts_at is not None and ends_at is not None and ends_at <= starts_at:
        raise RegistryError("a notice cannot end before it starts")


def _event(row: Any) -> EventRecord:
    return event_record(row)


def _notice(row: Any) -> Notice:
    return Notice(
        notice_id=row["notice_id"], kind=row["kind"], title=row["title"], body=row["body"],
        starts_at=row["starts_at"], ends_at=row["ends_at"], created_at=row["created_at"],
        customer_id=row["customer_id"], title_en=row["title_en"], body_en=row["body_en"],
        created_by=row["created_by"],
    )
