"""What a delivery says (sans-IO): the happenings it carries, its body and its idempotency key.

A delivery's body is built once, when its group goes out, and stored with it: every retry sends the
same bytes, and the e-mail is rendered from the same facts. A webhook receives the body as JSON:

    {"v": 1, "idempotency_key": "...", "channel_id": 3, "count": 2,
     "happenings": [{"happening_id": 17, "phase": "raised", "at": "...", "event_id": 40,
                     "kind": "gateway_offline", "state": "open", "severity": "critical",
                     "service_code": "pss00000001", "plant_name": "...", "gateway_id": "...",
                     "opened_at": "...", "recovered_at": null, "params": {...}, "message": "..."}]}
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

BODY_VERSION = 1


@dataclass(frozen=True)
class Told:
    """One happening as people are told about it: the event after the change, and the plant's name."""

    happening_id: int
    phase: str  # raised, cleared, acknowledged, info
    at: datetime
    event_id: int
    kind: str
    state: str
    severity: str | None
    service_code: str | None
    plant_name: str | None
    gateway_id: str | None
    opened_at: datetime
    recovered_at: datetime | None
    message: str  # the English sentence
    params: Mapping[str, Any] = field(default_factory=dict)
    acknowledged_by: str | None = None
    ack_comment: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["params"] = dict(self.params)
        for name in ("at", "opened_at", "recovered_at"):
            value = data[name]
            data[name] = value.isoformat() if value is not None else None
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Told:
        values = dict(data)
        for name in ("at", "opened_at", "recovered_at"):
            value = values.get(name)
            values[name] = datetime.fromisoformat(value) if value is not None else None
        known = {name for name in cls.__dataclass_fields__}
        return cls(**{name: value for name, value in values.items() if name in known})

    @property
    def mqtt_kind(self) -> str:
        """The v1 topic name: the clear of gateway_offline has always been `gateway_recovered`."""
        return "gateway_recovered" if self.kind == "gateway_offline" and self.phase == "cleared" else self.kind


def idempotency_key(channel_id: int, happening_ids: Iterable[int]) -> str:
    """A stable key (64 hex) for the delivery of these happenings on this channel: the same group
    built again after a crash gets the same key, and the registry's unique key refuses it."""
    ids = ",".join(str(happening_id) for happening_id in sorted(set(happening_ids)))
    return hashlib.sha256(f"pms-delivery:{channel_id}:{ids}".encode()).hexdigest()


def delivery_body(channel_id: int, told: Sequence[Told]) -> dict[str, Any]:
    ordered = sorted(told, key=lambda item: item.happening_id)
    return {
        "v": BODY_VERSION,
        "idempotency_key": idempotency_key(channel_id, [item.happening_id for item in ordered]),
        "channel_id": channel_id,
        "count": len(ordered),
        "happenings": [item.to_json() for item in ordered],
    }


def told_of(body: Mapping[str, Any]) -> list[Told]:
    return [Told.from_json(item) for item in body.get("happenings", [])]


def body_bytes(body: Mapping[str, Any]) -> bytes:
    """The exact bytes signed and sent: compact, keys sorted, UTF-8 (plant names are Japanese)."""
    return json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
