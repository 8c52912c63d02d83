"""The event log as GET /api/v1/events and the console's events page show it: one reading of the
filters (pms_api.models.EventQuery) into the registry's, one page or one CSV of the events found.

"open" here is what needs someone: an open event nobody has acknowledged yet; "acknowledged" is an
open event someone has seen. The registry keeps the stored state ("open" for both) and the
acknowledgement apart, so both readings are one query each."""

from __future__ import annotations

from dataclasses import asdict

from flask import Response

from pms_api.csvout import csv_response
from pms_api.models import EventOut, EventPage, EventQuery
from pms_common import timeutil
from pms_common.event_text import Lang, kind_label, phase_label, phase_of, render_event
from pms_registry import Registry
from pms_registry.eventlog import EventFilter
from pms_registry.records import EventRecord

MAX_CSV_EVENTS = 100_000
CSV_COLUMNS = ["event_id", "opened_at", "recovered_at", "phase", "kind", "kind_label", "severity", "service_code",
               "plant_name", "gateway_id", "text", "acknowledged_at", "acknowledged_by", "ack_comment"]


def registry_filter(query: EventQuery) -> tuple[str | None, EventFilter]:
    """The registry's stored state and filter for the query's."""
    stored = {"acknowledged": "open"}.get(query.state or "", query.state)
    acknowledged = {"open": False, "acknowledged": True}.get(query.state or "")
    return stored, EventFilter(service_code=query.service_code, kind=query.kind, acknowledged=acknowledged,
                               opened_from=query.since, opened_until=query.until)


def event_out(record: EventRecord, lang: Lang, plant_name: str | None = None) -> EventOut:
    """An event with its text in `lang` (pms_common.event_text), and the facts it is written from."""
    phase = phase_of(record.state, record.acknowledged_at is not None)
    return EventOut(**asdict(record), phase=phase, kind_label=kind_label(record.kind, lang), plant_name=plant_name,
                    # An acknowledged alert still says what is wrong; who saw it is in acknowledged_by.
                    text=render_event(record, lang, "raised" if phase == "acknowledged" else phase,
                                      plant_name=plant_name))


def find_events(registry: Registry, customer_id: str | None, query: EventQuery,
                *, limit: int | None = None, offset: int | None = None) -> tuple[list[EventOut], int]:
    """The events of the query's page (or of `limit`/`offset`) in the customer's scope, and how many match."""
    state, where = registry_filter(query)
    records = registry.list_events(customer_id=customer_id, state=state, where=where,
                                   limit=query.limit if limit is None else limit,
                                   offset=query.offset if offset is None else offset)
    total = registry.count_events(customer_id=customer_id, state=state, where=where)
    names = registry.plant_names([r.service_code for r in records if r.service_code])
    return [event_out(r, query.lang, names.get(r.service_code or "")) for r in records], total


def events_page(registry: Registry, customer_id: str | None, query: EventQuery) -> EventPage:
    items, total = find_events(registry, customer_id, query)
    return EventPage(items=items, total=total, limit=query.limit, offset=query.offset)


def events_csv(registry: Registry, customer_id: str | None, query: EventQuery) -> Response:
    """Every matching event (newest first, at most MAX_CSV_EVENTS) as CSV: JST times, the plant's
    name, the state as the reader's word when the headers are Japanese."""
    items, _ = find_events(registry, customer_id, query, limit=MAX_CSV_EVENTS, offset=0)
    rows = [{**item.model_dump(), "phase": phase_label(item.phase, "ja") if query.headers == "ja" else item.phase}
            for item in items]
    stamp = timeutil.now_jst().strftime("%Y%m%d-%H%M")
    return csv_response(rows, CSV_COLUMNS, query.encoding, f"events-{stamp}.csv", headers=query.headers)
