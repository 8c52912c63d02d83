"""The v1 MQTT contract: every happening on `pms/v1/events/{kind}` (QoS 1), never grouped.

It tails the same journal as the notifier with its own cursor "mqtt", moved after each publish: a
restart resumes after the last happening published (at most the one in flight is published again,
as QoS 1 allows anyway). The clear of gateway_offline keeps its v1 name, `gateway_recovered`."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import Counter
from pydantic import ValidationError

from pms_common import event_text, topics
from pms_common.messages import Event
from pms_registry import Registry
from pms_registry.records import Happening

log = logging.getLogger(__name__)

CURSOR = "mqtt"
PUBLISHED = Counter("pms_alerts_events_published_total", "Happenings published on pms/v1/events", ["kind"])

Publish = Callable[[str, bytes], Awaitable[None]]


def mqtt_kind(happening: Happening) -> str:
    event = happening.event
    return "gateway_recovered" if event.kind == "gateway_offline" and happening.phase == "cleared" else event.kind


def event_payload(happening: Happening) -> bytes:
    """The `Event` message of a happening: the event after the change, its params, the English text."""
    event = happening.event
    fields: dict[str, Any] = {
        "event_id": event.event_id, "kind": mqtt_kind(happening), "state": event.state,
        "gateway_id": event.gateway_id, "service_code": event.service_code, "opened_at": event.opened_at,
        "recovered_at": event.recovered_at,
        "message": event_text.render(event.kind, happening.phase, event_text.event_params(event), "en",
                                     message=event.message),
        "severity": event.severity, "params": dict(event.params), "phase": happening.phase,
        "alert_id": event.alert_id, "acknowledged_at": event.acknowledged_at,
        "acknowledged_by": event.acknowledged_by, "ack_comment": event.ack_comment,
    }
    # Fields the Event model of this version does not name ride along (the model allows extra fields).
    try:
        return Event.model_validate(fields).to_json()
    except ValidationError as exc:
        # A kind this version's contract does not list yet: told as it is rather than never.
        log.warning("alerts: event %s breaks the Event contract (%s); published as it is", event.event_id,
                    exc.errors()[0]["msg"])
        return json.dumps({"v": 1, **fields}, default=str).encode()


async def publish_pending(registry: Registry, publish: Publish, *, batch: int = 500) -> int:
    """Publish every happening after the cursor, in order; returns how many."""
    published = 0
    cursor = await asyncio.to_thread(registry.get_cursor, CURSOR)
    while True:
        happenings = await asyncio.to_thread(registry.happenings_after, cursor, batch)
        if not happenings:
            return published
        for happening in happenings:
            kind = mqtt_kind(happening)
            await publish(topics.event(kind), event_payload(happening))
            cursor = happening.happening_id
            await asyncio.to_thread(registry.set_cursor, CURSOR, cursor)
            PUBLISHED.labels(kind).inc()
            published += 1
