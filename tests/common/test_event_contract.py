"""The Event message of pms_common.messages and its schema in docs/asyncapi.yaml say the same: the same
fields, the same kinds, the same required ones; the fields since 1.5.0 are sent only with a value."""

from __future__ import annotations

import json
import typing
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from pms_common.event_text import CATALOGUE, KIND_LABELS, LOG_ONLY_KINDS
from pms_common.messages import EVENT_OPTIONAL_FIELDS, Event, EventKind
from pms_common.timeutil import JST

ASYNCAPI = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"
AT = datetime(2026, 12, 3, 11, 30, tzinfo=JST)


def _schema() -> dict[str, Any]:
    doc = yaml.safe_load(ASYNCAPI.read_text())
    schema: dict[str, Any] = doc["components"]["schemas"]["Event"]
    return schema


def test_the_schema_and_the_model_have_the_same_fields_and_kinds() -> None:
    schema = _schema()
    assert set(schema["properties"]) == set(Event.model_fields)
    assert set(schema["required"]) == {"v"} | {n for n, f in Event.model_fields.items() if f.is_required()}
    kinds = set(typing.get_args(EventKind))
    assert set(schema["properties"]["kind"]["enum"]) == kinds
    doc = yaml.safe_load(ASYNCAPI.read_text())
    assert set(doc["components"]["parameters"]["event_kind"]["enum"]) == kinds
    # Every kind published has a text (and a label).
    assert {kind for kind, _ in CATALOGUE} - LOG_ONLY_KINDS | {"gateway_recovered"} == kinds
    assert set(KIND_LABELS) - LOG_ONLY_KINDS == kinds
    assert doc["info"]["version"] == "1.6.0"  # 1.6.0 added the expected-yield topic, not Event fields


def test_a_plain_event_is_sent_as_before_1_5() -> None:
    event = Event(event_id=1, kind="gateway_offline", state="open", gateway_id="gw-0001", opened_at=AT, message="m")
    sent = json.loads(event.to_json())
    assert set(sent) == {"v", "event_id", "kind", "state", "gateway_id", "service_code", "opened_at",
                         "recovered_at", "message"}
    assert Event.model_validate_json(event.to_json()) == event


def test_an_alert_event_carries_its_facts() -> None:
    event = Event(event_id=42, kind="no_generation", state="open", service_code="pss00000001", opened_at=AT,
                  message="m", phase="acknowledged", alert_id=7, severity="warning", params={"sold_w": 0, "for_s": 3600},
                  acknowledged_at=AT, acknowledged_by="tanaka", ack_comment="on site at 14:00")
    sent = json.loads(event.to_json())
    assert set(sent) >= EVENT_OPTIONAL_FIELDS
    assert sent["params"] == {"sold_w": 0, "for_s": 3600} and sent["severity"] == "warning"
    assert Event.model_validate_json(event.to_json()) == event
