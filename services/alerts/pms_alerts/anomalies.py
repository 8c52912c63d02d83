"""Register-anomaly rule: every register anomaly the store keeps becomes one `register_anomaly` event.

The store keeps each anomaly once (a resend adds none); this rule turns each into exactly one info
event in the registry's log, also across alerts restarts. Its cursor is not kept by alerts but read
from the registry, where the events themselves are: an event is recorded with the anomaly's
detection time as its time, so the newest `register_anomaly` event says how far the log got. The
anomalies detected from a little before it (`OVERLAP`) are read again and matched, by gateway and
message (a message names gateway, register and slot, so it is unique per anomaly), to the events
already recorded: anomalies that share a detection time, or that a writer committed out of detection
order (several ingest replicas, clocks a little apart), are neither lost nor recorded twice. A crash
between two records loses nothing either: the next check starts from what the registry holds.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pms_common import timeutil
from pms_registry import Registry
from pms_registry.registry import EventRecord
from pms_store import RegisterAnomaly, TimeSeriesStore

KIND = "register_anomaly"
OVERLAP = timedelta(minutes=10)
# Anomalies read per store query; a page full of one detection time is read again, twice as large.
PAGE = 500
# Before the first event every anomaly the store keeps is new: PMS holds nothing older than this.
_EARLIEST = datetime(2000, 1, 1, tzinfo=timeutil.JST)


def _kwh(value: float) -> str:
    """1234.5 -> "1234.5", 0 -> "0.0", 999.875 -> "999.875": as precise as a register, no noise."""
    text = f"{value:.3f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def anomaly_message(anomaly: RegisterAnomaly) -> str:
    slot = anomaly.slot_end.astimezone(timeutil.JST).isoformat(timespec="minutes")
    what = f"{anomaly.direction} register of {anomaly.gateway_id}"
    values = f"{_kwh(anomaly.previous_kwh)} → {_kwh(anomaly.current_kwh)} kWh"
    if anomaly.reason == "jump":
        return f"{what} jumped at slot {slot}: {values} (more than one slot can hold: a misread or a meter swap?)"
    return f"{what} went backwards at slot {slot}: {values} (meter replaced?)"


def anomaly_params(anomaly: RegisterAnomaly) -> dict[str, Any]:
    """The facts of the event (docs/alerts.md, "Event texts"): the text is written from them in the
    reader's language; `anomaly_message` stays the stored English sentence (it keys the dedupe)."""
    return {"gateway_id": anomaly.gateway_id, "direction": anomaly.direction,
            "slot_end": anomaly.slot_end.astimezone(timeutil.JST).isoformat(),
            "previous_kwh": anomaly.previous_kwh, "current_kwh": anomaly.current_kwh, "reason": anomaly.reason}


class RegisterAnomalyRule:
    def __init__(self, registry: Registry, store: TimeSeriesStore) -> None:
        self.registry = registry
        self.store = store

    def check(self, now: datetime) -> list[EventRecord]:
        """Record an event for every stored anomaly that has none yet; returns the new events."""
        newest, recorded = self._recorded_window()
        since = newest - OVERLAP if newest is not None else _EARLIEST
        plants: dict[str, str | None] = {}
        events: list[EventRecord] = []
        limit = PAGE
        while True:
            page = self.store.register_anomalies(since, limit)
            for anomaly in page:
                message = anomaly_message(anomaly)
                if (anomaly.gateway_id, message) in recorded:
                    continue
                if anomaly.gateway_id not in plants:
                    plants[anomaly.gateway_id] = self.registry.plant_of_gateway(anomaly.gateway_id)
                events.append(self.registry.record_info_event(
                    kind=KIND, at=anomaly.detected_at, message=message, gateway_id=anomaly.gateway_id,
                    service_code=plants[anomaly.gateway_id], params=anomaly_params(anomaly),
                ))
                recorded.add((anomaly.gateway_id, message))
            if len(page) < limit:
                return events
            # `recorded` holds every event from `since` on, so the next page may start at the last
            # detection time read (inclusive); if the whole page shares it, read a larger page.
            if page[-1].detected_at > since:
                since = page[-1].detected_at
            else:
                limit *= 2

    def _recorded_window(self) -> tuple[datetime | None, set[tuple[str | None, str]]]:
        """The newest register_anomaly event's time, and (gateway, message) of the events from OVERLAP
        before it on."""
        recent = self.registry.latest_events_of_kind(KIND, OVERLAP)
        if not recent:
            return None, set()
        return max(e.opened_at for e in recent), {(e.gateway_id, e.message) for e in recent}
