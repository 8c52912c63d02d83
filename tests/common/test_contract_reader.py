"""The tolerant reader: unknown fields are dropped, counted by message and logged once, never refused."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter
from pydantic import ValidationError

from pms_common.contract_reader import ContractReader, drop_unknown
from pms_common.messages import Ack, EnergyReading, Heartbeat, PowerReading, ReadingsBatch


def _batch(**overrides: Any) -> dict[str, Any]:
    return {"v": 1, "gateway_id": "gw-1", "stream_id": "0123456789abcdef", "seq": 5, "outbox_floor_seq": 3,
            "sent_at": "2026-06-01T12:00:05+09:00",
            "readings": [{"kind": "power", "measured_at": "2026-06-01T12:00:00+09:00", "power_w": -1500},
                         {"kind": "energy", "slot_end": "2026-06-01T12:00:00+09:00", "forward_kwh": 1.5}],
            **overrides}


def _counter() -> Counter:
    return Counter("test_unknown_fields_total", "test", ["message"], registry=CollectorRegistry())


def _count(counter: Counter, message: str) -> float:
    return counter.labels(message)._value.get()  # type: ignore[no-any-return]


def test_a_payload_without_unknown_fields_comes_back_as_it_is_and_is_not_counted() -> None:
    counter = _counter()
    batch = ContractReader("test", counter).parse(ReadingsBatch, json.dumps(_batch()))
    assert batch == ReadingsBatch.model_validate(_batch())
    assert _count(counter, "ReadingsBatch") == 0


def test_unknown_fields_at_the_top_and_nested_are_dropped_and_the_message_counted_once(
        caplog: pytest.LogCaptureFixture) -> None:
    counter = _counter()
    reader = ContractReader("test", counter)
    readings = _batch()["readings"]
    readings[0]["voltage_v"] = 101.5
    readings[1]["quality"] = {"estimated": True}
    payload = json.dumps(_batch(readings=readings, compression="none"))
    with caplog.at_level(logging.INFO, logger="pms_common.contract_reader"):
        batch = reader.parse(ReadingsBatch, payload)
        reader.parse(ReadingsBatch, payload)
    assert batch == ReadingsBatch.model_validate(_batch())  # what this version knows, nothing more
    power, energy = batch.readings
    assert isinstance(power, PowerReading) and isinstance(energy, EnergyReading)
    assert (power.model_extra, energy.model_extra, batch.model_extra) in [({}, {}, {}), (None, None, None)]
    assert "voltage_v" not in batch.to_json().decode() and "compression" not in batch.to_json().decode()
    assert _count(counter, "ReadingsBatch") == 2
    logged = [r.getMessage() for r in caplog.records]
    assert logged == ["test: ReadingsBatch carries fields this version does not know, ignored: "
                      "compression, readings[].quality, readings[].voltage_v"]


def test_drop_unknown_names_every_path() -> None:
    found: list[str] = []
    readings = _batch()["readings"]
    readings[1]["quality"] = 1
    drop_unknown(ReadingsBatch.model_validate(_batch(readings=readings, a=1)), found)
    assert sorted(found) == ["a", "readings[].quality"]


def test_a_known_field_that_breaks_the_contract_is_still_refused() -> None:
    with pytest.raises(ValidationError):
        ContractReader("test").parse(Ack, b'{"v":1,"gateway_id":"gw-1","stream_id":"a","acked_seq":-1,'
                                          b'"at":"2026-06-01T12:00:00+09:00","new":1}')


def test_heartbeat_of_a_newer_gateway_is_read() -> None:
    counter = _counter()
    beat = {"v": 1, "gateway_id": "gw-1", "at": "2026-06-01T12:00:00+09:00", "uptime_s": 1, "firmware": "2.0",
            "module_family": "single-hop", "read_errors_total": 0, "outbox_depth": 0, "power_interval_s": 5,
            "heartbeat_interval_s": 30, "grid_frequency_hz": 50.0}
    heartbeat = ContractReader("test", counter).parse(Heartbeat, json.dumps(beat))
    assert heartbeat.firmware == "2.0" and "grid_frequency_hz" not in heartbeat.model_dump()
    assert _count(counter, "Heartbeat") == 1
