"""The notification outbox: each channel's queue of happenings, and the deliveries made of them.

The notifier (pms_alerts.notify.dispatcher) fans each journal row out to the channels it concerns
as queue rows (unique per channel and happening, written in the same transaction as the cursor
"notify" moves), groups a channel's queue into one delivery (its idempotency key unique), and
records each attempt's outcome. A delivery is `pending` until it is `delivered`, or `dead` when it
failed for longer than its maximum age; the console lists the dead ones and can send one back to
`pending` (one more attempt: it dies again at once if that fails too, its age being past the limit).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, delete, func, insert, select, true, update

from pms_registry import schema as t
from pms_registry.alerting import event_record, set_cursor
from pms_registry.core import RegistryCore
from pms_registry.errors import RegistryError
from pms_registry.records import Happening

DeliveryState = Literal["pending", "delivered", "dead"]
DELIVERY_STATES = ("pending", "delivered", "dead")


@dataclass(frozen=True)
class Delivery:
    """One notification to one channel: the happenings it carries (in `body`) and how sending went."""

    delivery_id: int
    channel_id: int
    channel_kind: str | None  # None when the channel was deleted since
    channel_name: str | None
    customer_id: str | None  # the channel's customer; None for the operator's own channels
    idempotency_key: str
    body: dict[str, Any]
    state: DeliveryState
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    last_error: str | None
    delivered_at: datetime | None

    @property
    def happening_ids(self) -> list[int]:
        return [int(item["happening_id"]) for item in self.body.get("happenings", [])]


@dataclass(frozen=True)
class QueuedRow:
    queue_id: int
    channel_id: int
    happening_id: int
    queued_at: datetime


_DELIVERY_COLUMNS = (t.deliveries, t.notification_channels.c.kind.label("channel_kind"),
                     t.notification_channels.c.name.label("channel_name"),
                     t.notification_channels.c.customer_id)


def _delivery(row: Any) -> Delivery:
    return Delivery(
        delivery_id=row["delivery_id"], channel_id=row["channel_id"], channel_kind=row["channel_kind"],
        channel_name=row["channel_name"], customer_id=row["customer_id"], idempotency_key=row["idempotency_key"],
        body=dict(row["body"]), state=row["state"], attempts=row["attempts"], created_at=row["created_at"],
        next_attempt_at=row["next_attempt_at"], last_attempt_at=row["last_attempt_at"],
        last_error=row["last_error"], delivered_at=row["delivered_at"],
    )


def _select_deliveries() -> Any:
    return select(*_DELIVERY_COLUMNS).select_from(t.deliveries.outerjoin(
        t.notification_channels, t.notification_channels.c.channel_id == t.deliveries.c.channel_id))


class Deliveries(RegistryCore):
    # ---- fan-out and grouping (the notifier) -----------------------------------------------------
    def enqueue_happenings(self, fan_out: Mapping[int, Sequence[int]], *, cursor: str, cursor_value: int,
                           at: datetime) -> int:
        """Queue each happening (key) for its channels (value) and move `cursor`, in one transaction.
        A happening already queued for a channel is skipped (a repeat after a crash); returns how many
        rows were new."""
        new = 0
        with self._tx() as conn:
            happening_ids = [happening_id for happening_id, channels in fan_out.items() if channels]
            existing: set[tuple[int, int]] = set()
            for chunk in _chunks(happening_ids, 500):
                existing.update((row[0], row[1]) for row in conn.execute(
                    select(t.notification_queue.c.channel_id, t.notification_queue.c.happening_id)
                    .where(t.notification_queue.c.happening_id.in_(chunk))))
            rows = [{"channel_id": channel_id, "happening_id": happening_id, "created_at": at}
                    for happening_id, channels in fan_out.items() for channel_id in dict.fromkeys(channels)
                    if (channel_id, happening_id) not in existing]
            if rows:
                conn.execute(insert(t.notification_queue), rows)
                new = len(rows)
            set_cursor(conn, cursor, cursor_value)
        return new

    def queue_heads(self) -> dict[int, datetime]:
        """Per channel with anything queued and not yet put into a delivery: its oldest entry's time."""
        query = (select(t.notification_queue.c.channel_id, func.min(t.notification_queue.c.created_at))
                 .where(t.notification_queue.c.delivery_id.is_(None)).group_by(t.notification_queue.c.channel_id))
        with self._tx() as conn:
            rows = conn.execute(query).all()
        return {int(row[0]): self._aware(row[1]) for row in rows if row[1] is not None}

    def queued_for(self, channel_id: int) -> list[QueuedRow]:
        """What one channel has queued and not yet put into a delivery, oldest first."""
        query = (select(t.notification_queue).where(t.notification_queue.c.channel_id == channel_id,
                                                    t.notification_queue.c.delivery_id.is_(None))
                 .order_by(t.notification_queue.c.queue_id))
        with self._tx() as conn:
            return [QueuedRow(queue_id=row["queue_id"], channel_id=row["channel_id"],
                              happening_id=row["happening_id"], queued_at=row["created_at"])
                    for row in conn.execute(query).mappings()]

    def _aware(self, value: Any) -> datetime:
        """An aggregate (min, max) of a time column comes back as the engine's raw value: read it as
        the column would be read."""
        result: datetime = t.AwareDateTime().process_result_value(value, self.engine.dialect)  # type: ignore[arg-type,assignment]
        return result

    def discard_queued(self, channel_ids: Sequence[int]) -> int:
        """Drop what disabled or deleted channels still had queued (nothing is sent to them)."""
        if not channel_ids:
            return 0
        with self._tx() as conn:
            result = conn.execute(delete(t.notification_queue).where(
                t.notification_queue.c.channel_id.in_(list(channel_ids)),
                t.notification_queue.c.delivery_id.is_(None)))
        return int(result.rowcount or 0)

    def last_delivery_times(self) -> dict[int, datetime]:
        """When each channel's last delivery was made (the start of its group interval)."""
        query = (select(t.deliveries.c.channel_id, func.max(t.deliveries.c.created_at))
                 .group_by(t.deliveries.c.channel_id))
        with self._tx() as conn:
            rows = conn.execute(query).all()
        return {int(row[0]): self._aware(row[1]) for row in rows if row[1] is not None}

    def create_delivery(self, *, channel_id: int, queue_ids: Sequence[int], idempotency_key: str,
                        body: dict[str, Any], at: datetime) -> Delivery | None:
        """Make one pending delivery of these queue rows, due now; None when the key exists already
        (the same group was made before: its rows are attached to that delivery instead)."""
        with self._tx() as conn:
            existing = conn.execute(select(t.deliveries.c.delivery_id)
                                    .where(t.deliveries.c.idempotency_key == idempotency_key)).scalar()
            if existing is None:
                delivery_id = conn.execute(insert(t.deliveries).values(
                    channel_id=channel_id, idempotency_key=idempotency_key, body=body, state="pending",
                    attempts=0, created_at=at, next_attempt_at=at)).inserted_primary_key[0]  # type: ignore[index]
            else:
                delivery_id = existing
            for chunk in _chunks(list(queue_ids), 500):
                conn.execute(update(t.notification_queue)
                             .where(t.notification_queue.c.queue_id.in_(chunk),
                                    t.notification_queue.c.delivery_id.is_(None))
                             .values(delivery_id=delivery_id))
            if existing is not None:
                return None
            row = conn.execute(_select_deliveries().where(t.deliveries.c.delivery_id == delivery_id)).mappings().one()
        return _delivery(row)

    def due_deliveries(self, *, now: datetime, limit: int = 50) -> list[Delivery]:
        query = (_select_deliveries().where(t.deliveries.c.state == "pending", t.deliveries.c.next_attempt_at <= now)
                 .order_by(t.deliveries.c.next_attempt_at, t.deliveries.c.delivery_id).limit(limit))
        with self._tx() as conn:
            return [_delivery(row) for row in conn.execute(query).mappings()]

    def next_delivery_attempt(self) -> datetime | None:
        """The earliest next attempt of a pending delivery (how long the notifier may sleep)."""
        query = (select(t.deliveries.c.next_attempt_at).where(t.deliveries.c.state == "pending")
                 .order_by(t.deliveries.c.next_attempt_at).limit(1))
        with self._tx() as conn:
            value: datetime | None = conn.execute(query).scalar()
        return value

    def record_delivered(self, delivery_id: int, *, at: datetime, note: str | None = None) -> None:
        with self._tx() as conn:
            conn.execute(update(t.deliveries).where(t.deliveries.c.delivery_id == delivery_id).values(
                state="delivered", attempts=t.deliveries.c.attempts + 1, last_attempt_at=at, delivered_at=at,
                last_error=note))

    def record_failed(self, delivery_id: int, *, at: datetime, error: str, next_attempt_at: datetime | None) -> None:
        """A failed attempt: pending again at `next_attempt_at`, or dead (None)."""
        values: dict[str, Any] = {"attempts": t.deliveries.c.attempts + 1, "last_attempt_at": at,
                                  "last_error": error}
        if next_attempt_at is None:
            values["state"] = "dead"
        else:
            values["next_attempt_at"] = next_attempt_at
        with self._tx() as conn:
            conn.execute(update(t.deliveries).where(t.deliveries.c.delivery_id == delivery_id).values(**values))

    def notify_backlog(self) -> dict[str, int]:
        """For the metrics: happenings queued and not yet grouped, and deliveries by state."""
        with self._tx() as conn:
            queued = conn.execute(select(func.count()).select_from(t.notification_queue)
                                  .where(t.notification_queue.c.delivery_id.is_(None))).scalar_one()
            states = {str(row[0]): int(row[1]) for row in conn.execute(
                select(t.deliveries.c.state, func.count()).group_by(t.deliveries.c.state))}
        return {"queued": int(queued), **{state: int(states.get(state, 0)) for state in DELIVERY_STATES}}

    def happenings_by_id(self, happening_ids: Sequence[int]) -> list[Happening]:
        """These journal rows (oldest first), each with its event as it is now."""
        found: list[Happening] = []
        with self._tx() as conn:
            for chunk in _chunks(sorted(set(happening_ids)), 500):
                query = (select(t.event_happenings.c.happening_id, t.event_happenings.c.phase,
                                t.event_happenings.c.at, t.events)
                         .join(t.events, t.events.c.event_id == t.event_happenings.c.event_id)
                         .where(t.event_happenings.c.happening_id.in_(chunk)))
                found.extend(Happening(happening_id=row["happening_id"], phase=row["phase"], at=row["at"],
                                       event=event_record(row)) for row in conn.execute(query).mappings())
        return sorted(found, key=lambda happening: happening.happening_id)

    def plant_customers(self, service_codes: Sequence[str]) -> dict[str, str]:
        """The customer of each of these plants (plants that no longer exist are left out)."""
        return self._plant_column(service_codes, t.plants.c.customer_id)

    def plant_names(self, service_codes: Sequence[str]) -> dict[str, str]:
        return self._plant_column(service_codes, t.plants.c.name)

    def _plant_column(self, service_codes: Sequence[str], column: Any) -> dict[str, str]:
        found: dict[str, str] = {}
        with self._tx() as conn:
            for chunk in _chunks(sorted(set(service_codes)), 500):
                found.update((row[0], row[1]) for row in conn.execute(
                    select(t.plants.c.service_code, column).where(t.plants.c.service_code.in_(chunk))))
        return found

    # ---- the console (dead letters) ---------------------------------------------------------------
    @staticmethod
    def _delivery_condition(state: str | None, customer_id: str | None) -> ColumnElement[bool]:
        conditions: list[ColumnElement[bool]] = []
        if state is not None:
            if state not in DELIVERY_STATES:
                raise RegistryError(f"a delivery's state is one of {', '.join(DELIVERY_STATES)}, not {state!r}")
            conditions.append(t.deliveries.c.state == state)
        if customer_id is not None:
            conditions.append(t.notification_channels.c.customer_id == customer_id)
        return and_(true(), *conditions)

    def list_deliveries(self, *, state: str | None = None, customer_id: str | None = None, limit: int = 100,
                        offset: int = 0) -> list[Delivery]:
        """Deliveries, newest first; `customer_id` keeps those of that customer's channels."""
        query = (_select_deliveries().where(self._delivery_condition(state, customer_id))
                 .order_by(t.deliveries.c.created_at.desc(), t.deliveries.c.delivery_id.desc())
                 .limit(limit).offset(offset))
        with self._tx() as conn:
            return [_delivery(row) for row in conn.execute(query).mappings()]

    def count_deliveries(self, *, state: str | None = None, customer_id: str | None = None) -> int:
        query = (select(func.count()).select_from(t.deliveries.outerjoin(
            t.notification_channels, t.notification_channels.c.channel_id == t.deliveries.c.channel_id))
            .where(self._delivery_condition(state, customer_id)))
        with self._tx() as conn:
            return int(conn.execute(query).scalar_one())

    def get_delivery(self, delivery_id: int) -> Delivery | None:
        with self._tx() as conn:
            row = conn.execute(_select_deliveries().where(t.deliveries.c.delivery_id == delivery_id)).mappings().first()
        return None if row is None else _delivery(row)

    def retry_delivery(self, delivery_id: int, *, at: datetime) -> Delivery:
        """Send a dead delivery again: pending, due at `at`, its attempts and last error kept."""
        with self._tx() as conn:
            result = conn.execute(update(t.deliveries)
                                  .where(t.deliveries.c.delivery_id == delivery_id, t.deliveries.c.state == "dead")
                                  .values(state="pending", next_attempt_at=at))
            if not result.rowcount:
                found = conn.execute(select(t.deliveries.c.state)
                                     .where(t.deliveries.c.delivery_id == delivery_id)).scalar()
                raise RegistryError(f"no delivery {delivery_id}" if found is None
                                    else f"delivery {delivery_id} is {found}, only a dead one can be retried")
            row = conn.execute(_select_deliveries().where(t.deliveries.c.delivery_id == delivery_id)).mappings().one()
        return _delivery(row)


def _chunks(values: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [values[start:start + size] for start in range(0, len(values), size)]
