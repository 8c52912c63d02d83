"""The MQTT `Event` of an event-log row: what alerts publishes on pms/v1/events/{kind}.

Alerts' publishers (the service's own rules and the notifier that follows the happenings journal)
build their payloads here, so every `Event` carries the same facts: the row, its alert and
acknowledgement, its `params`, and `message`, the English sentence of the phase it is published in.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from pms_common.event_text import PHASES, Phase, event_params, phase_of, render
from pms_common.messages import Event


class EventRow(Protocol):
    """What an event-log row (pms_registry's `EventRecord`) offers; the fields of alerts (alert_id,
    severity, params, acknowledgement) are read when the row has them."""

    @property
    def event_id(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def gateway_id(self) -> str | None: ...
    @property
    def service_code(self) -> str | None: ...
    @property
    def opened_at(self) -> datetime: ...
    @property
    def recovered_at(self) -> datetime | None: ...
    @property
    def message(self) -> str: ...


def published_kind(kind: str, phase: Phase) -> str:
    """The kind an event is published as: gateway_offline's clear keeps its v1 name, gateway_recovered."""
    return "gateway_recovered" if kind == "gateway_offline" and phase == "cleared" else kind


def event_message(record: EventRow, phase: Phase | None = None, kind: str | None = None, *,
                  plant_name: str | None = None) -> Event:
    """The `Event` telling that `record` was raised, cleared, acknowledged or is news (`phase`; by
    default the row's own, from its state). `kind` overrides the published kind (by default the
    row's, gateway_offline's clear as gateway_recovered)."""
    acknowledged_at = getattr(record, "acknowledged_at", None)
    if phase is None:
        phase = phase_of(record.state, acknowledged_at is not None)
    if phase not in PHASES:
        raise ValueError(f"{phase!r} is no event phase (one of {', '.join(PHASES)}); "
                         "the published kind is the keyword argument kind=")
    params: dict[str, Any] = dict(getattr(record, "params", None) or {})
    text_params = event_params(record, plant_name)
    return Event(
        event_id=record.event_id, kind=kind or published_kind(record.kind, phase),  # type: ignore[arg-type]
        state=record.state,  # type: ignore[arg-type]
        gateway_id=record.gateway_id, service_code=record.service_code, opened_at=record.opened_at,
        recovered_at=record.recovered_at,
        message=render(record.kind, phase, text_params, "en", message=record.message), phase=phase,
        alert_id=getattr(record, "alert_id", None), severity=getattr(record, "severity", None), params=params,
        acknowledged_at=acknowledged_at, acknowledged_by=getattr(record, "acknowledged_by", None),
        ack_comment=getattr(record, "ack_comment", None),
    )
