"""The v1 MQTT contract: every happening on `pms/v1/events/{kind}` (QoS 1), never grouped.

It tails the same journal as the notifier with its own cursor "mqtt", moved after each publish: a
restart resumes after the last happening published (at most the one in flight is published again,
as QoS 1 allows anyway). The clear of gateway_offline keeps its v1 name, `gateway_recovered`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from prometheus_client import Counter
from pydantic import ValidationError

from pms_common import topics
from pms_common.event_text import LOG_ONLY_KINDS
from pms_common.events import event_message, published_kind
from pms_registry import Registry
from pms_registry.records import Happening

log = logging.getLogger(__name__)

CURSOR = "mqtt"
PUBLISHED = Counter("pms_alerts_events_published_total", "Happenings published on pms/v1/events", ["kind"])
UNPUBLISHABLE = Counter("pms_alerts_events_unpublishable_total",
                        "Happenings skipped on pms/v1/events because their event breaks the Event contract")

Publish = Callable[[str, bytes], Awaitable[None]]


def mqtt_kind(happening: Happening) -> str:
    return published_kind(happening.event.kind, happening.phase)


def event_payload(happening: Happening) -> bytes:
    """The `Event` message of a happening (pms_common.events, shared with the alerts service): the
    event after the change, its params, the English sentence of the phase."""
    return event_message(happening.event, happening.phase).to_json()


async def publish_pending(registry: Registry, publish: Publish, *, batch: int = 500,
                          stop: asyncio.Event | None = None) -> int:
    """Publish every happening after the cursor, in order, until `stop` is set; returns how many.

    A stop ends the pass at once, after the happening in hand: a first start of a big fleet journals
    a claim per gateway, and a stop that drained that backlog first took minutes. The cursor says
    where the next start goes on."""
    published = 0
    cursor = await asyncio.to_thread(registry.get_cursor, CURSOR)
    while True:
        happenings = await asyncio.to_thread(registry.happenings_after, cursor, batch)
        if not happenings:
            return published
        for happening in happenings:
            if stop is not None and stop.is_set():
                return published
            kind = mqtt_kind(happening)
            if happening.event.kind in LOG_ONLY_KINDS:
                # The event log's own records (claims, paused rollouts) are not v1 Events: not an error.
                cursor = happening.happening_id
                await asyncio.to_thread(registry.set_cursor, CURSOR, cursor)
                continue
            try:
                payload = event_payload(happening)
            except (ValidationError, ValueError) as exc:
                # One row the v1 contract cannot carry must not hold up every later one.
                UNPUBLISHABLE.inc()
                log.error("alerts: happening %d (event %d, %s) breaks the Event contract and is not published: %s",
                          happening.happening_id, happening.event.event_id, kind, exc)
                payload = None
            if payload is not None:
                await publish(topics.event(kind), payload)
                PUBLISHED.labels(kind).inc()
                published += 1
            cursor = happening.happening_id
            await asyncio.to_thread(registry.set_cursor, CURSOR, cursor)
