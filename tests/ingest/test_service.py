from __future__ import annotations

import json
from typing import Any

import pytest

from pms_ingest.service import Rejected, parse_batch, parse_plant_message, parse_weather

TOPIC = "pms/v1/gw/gw-1/readings"


def _payload(**overrides: Any) -> bytes:
    body: dict[str, Any] = {
        "v": 1, "gateway_id": "gw-1", "stream_id": "0123456789abcdef", "seq": 2, "outbox_floor_seq": 1,
        "sent_at": "2026-06-01T12:00:05+09:00",
        "readings": [{"kind": "power", "measured_at": "2026-06-01T12:00:00+09:00", "power_w": -900}],
    }
    body.update(overrides)
    return json.dumps(body).encode()


def test_parses_a_good_batch() -> None:
    batch = parse_batch(TOPIC, _payload())
    assert (batch.gateway_id, batch.seq, batch.outbox_floor_seq) == ("gw-1", 2, 1)
    assert batch.readings[0].kind == "power"


def test_empty_batch_is_accepted() -> None:
    assert parse_batch(TOPIC, _payload(readings=[])).readings == []


@pytest.mark.parametrize("payload", [b"{not json", b"", b'{"v":1,', b"\xff\xfe"])
def test_bad_json(payload: bytes) -> None:
    with pytest.raises(Rejected) as exc:
        parse_batch(TOPIC, payload)
    assert exc.value.kind == "json"
    assert exc.value.reason


def test_schema_error_names_the_field() -> None:
    with pytest.raises(Rejected) as exc:
        parse_batch(TOPIC, _payload(seq=0))
    assert exc.value.kind == "schema"
    assert exc.value.reason.startswith("seq: ")
    assert str(exc.value) == exc.value.reason


def test_schema_error_inside_a_reading_names_its_path() -> None:
    reading = {"kind": "power", "measured_at": "2026-06-01T12:00:00", "power_w": 1}
    with pytest.raises(Rejected) as exc:
        parse_batch(TOPIC, _payload(readings=[reading]))
    assert exc.value.kind == "schema"
    assert exc.value.reason.startswith("readings.0.power.measured_at: ")
    assert "timezone" in exc.value.reason


def test_schema_error_counts_the_others() -> None:
    with pytest.raises(Rejected) as exc:
        parse_batch(TOPIC, _payload(seq=0, outbox_floor_seq=0, sent_at="2026-06-01T12:00:05"))
    assert exc.value.kind == "schema"
    assert exc.value.reason.endswith("(and 2 more)")


def test_a_json_array_is_a_schema_error() -> None:
    with pytest.raises(Rejected) as exc:
        parse_batch(TOPIC, b"[1, 2]")
    assert exc.value.kind == "schema"


@pytest.mark.parametrize("topic", ["pms/v1/gw/gw-2/readings", "pms/v1/plants/pss00000001/weather", "other"])
def test_topic_mismatch(topic: str) -> None:
    with pytest.raises(Rejected) as exc:
        parse_batch(topic, _payload())
    assert exc.value.kind == "topic"
    assert "'gw-1'" in exc.value.reason
    assert topic in exc.value.reason


def test_a_newer_gateways_fields_are_taken_at_the_top_and_in_a_reading() -> None:
    reading = {"kind": "power", "measured_at": "2026-06-01T12:00:00+09:00", "power_w": -900, "voltage_v": 101.0}
    batch = parse_batch(TOPIC, _payload(readings=[reading], compressed=False))
    assert (batch.seq, batch.readings[0].power_w) == (2, -900)
    assert batch == parse_batch(TOPIC, _payload())


def test_a_newer_weather_services_fields_are_taken() -> None:
    payload = {"v": 1, "service_code": "pss00000001", "observed_at": "2026-06-01T12:00:00+09:00", "ghi_w_m2": 640.0,
               "source": "clear-sky", "cloud_cover": 0.2}
    weather = parse_weather("pms/v1/plants/pss00000001/weather", json.dumps(payload).encode())
    assert weather.ghi_w_m2 == 640.0


def test_an_expected_yield_is_parsed_by_its_topic_and_must_match_it() -> None:
    payload = {"v": 1, "service_code": "pss00000001", "computed_at": "2026-06-01T13:10:00+09:00",
               "calibration": 1.0, "slots": [{"slot_end": "2026-06-01T13:00:00+09:00", "expected_kwh": 1.5,
                                              "source": "clear_sky"}]}
    parsed = parse_plant_message("pms/v1/plants/pss00000001/expected", json.dumps(payload).encode())
    assert parsed.service_code == "pss00000001" and not hasattr(parsed, "ghi_w_m2")
    with pytest.raises(Rejected) as caught:
        parse_plant_message("pms/v1/plants/pss00000002/expected", json.dumps(payload).encode())
    assert caught.value.kind == "topic"
    with pytest.raises(Rejected) as caught:
        parse_plant_message("pms/v1/plants/pss00000001/expected", b'{"v": 1, "service_code": "pss00000001"}')
    assert caught.value.kind == "schema"
