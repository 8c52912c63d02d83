"""The readings' JSON: as the outbox stores it, and as a batch carries it to the broker.

The outbox keeps each batch's readings as the contract model's JSON text. Publishing splices that
text into the batch envelope instead of parsing it back into models to dump it again: the result is
byte for byte what `ReadingsBatch.model_dump_json()` gives (tests/collector/test_readings_json.py pins this), at a
fraction of the cost while a backlog drains (about 3 µs against 16 µs for one power reading, 4 µs
against 400 µs for a day of history).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from pydantic import TypeAdapter

from pms_common.messages import EnergyReading, PowerReading, Reading

_READINGS = TypeAdapter(list[Reading])


def encode_readings(readings: Sequence[PowerReading | EnergyReading]) -> str:
    """The readings as the outbox stores them: the contract's JSON array."""
    return _READINGS.dump_json(list(readings)).decode()


def readings_batch_payload(*, gateway_id: str, stream_id: str, seq: int, outbox_floor_seq: int, sent_at: datetime,
                           readings_json: str) -> bytes:
    """A `ReadingsBatch` message around readings already encoded by `encode_readings`."""
    return (
        f'{{"v":1,"gateway_id":{json.dumps(gateway_id)},"stream_id":{json.dumps(stream_id)},"seq":{seq},'
        f'"outbox_floor_seq":{outbox_floor_seq},"sent_at":"{sent_at.isoformat()}",'
        f'"readings":{readings_json}}}'
    ).encode()
