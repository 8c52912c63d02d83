from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from pms_common.messages import (
    MAX_EXPECTED_SLOTS,
    MAX_READINGS_PER_BATCH,
    Ack,
    DeadLetter,
    EnergyReading,
    Event,
    ExpectedSlot,
    ExpectedYield,
    GatewayStatus,
    Heartbeat,
    PowerReading,
    ReadingsBatch,
    Weather,
)
from pms_common.timeutil import JST


def _batch(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "v": 1,
        "gateway_id": "gw-1",
        "stream_id": "0123456789abcdef",
        "seq": 5,
        "outbox_floor_seq": 3,
        "sent_at": "2026-06-01T12:00:05+09:00",
        "readings": [
            {"kind": "power", "measured_at": "2026-06-01T12:00:00+09:00", "power_w": -1500,
             "current_r_a": -3.7, "current_t_a": -3.8},
            {"kind": "energy", "slot_end": "2026-06-01T12:00:00+09:00", "forward_kwh": 1000.5,
             "reverse_kwh": 20.1, "register_wrap_kwh": 100000.0},
        ],
    }
    body.update(overrides)
    return body


def _errors(exc: pytest.ExceptionInfo[ValidationError]) -> list[tuple[str, str]]:
    return [(".".join(map(str, e["loc"])), e["type"]) for e in exc.value.errors()]


def test_batch_parses_a_tagged_union_of_readings() -> None:
    batch = ReadingsBatch.model_validate_json(json.dumps(_batch()))
    power, energy = batch.readings
    assert isinstance(power, PowerReading)
    assert power.power_w == -1500
    assert power.sold_power_w == 1500
    assert power.measured_at == datetime(2026, 6, 1, 3, 0, tzinfo=UTC)
    assert isinstance(energy, EnergyReading)
    assert energy.reverse_kwh == 20.1
    assert energy.register_wrap_kwh == 100000.0
    assert energy.backfilled is False
    assert batch.v == 1


def test_batch_round_trips_through_json() -> None:
    batch = ReadingsBatch.model_validate_json(json.dumps(_batch()))
    again = ReadingsBatch.model_validate_json(batch.to_json())
    assert again == batch
    assert json.loads(batch.to_json())["readings"][0]["kind"] == "power"


def test_sold_power_is_zero_when_buying() -> None:
    reading = PowerReading(measured_at=datetime(2026, 6, 1, 21, 0, tzinfo=JST), power_w=800)
    assert reading.sold_power_w == 0


def test_empty_readings_are_allowed() -> None:
    batch = ReadingsBatch.model_validate(_batch(readings=[]))
    assert batch.readings == []


def test_at_most_max_readings_per_batch() -> None:
    power = {"kind": "power", "measured_at": "2026-06-01T12:00:00+09:00", "power_w": 1}
    assert len(ReadingsBatch.model_validate(_batch(readings=[power] * MAX_READINGS_PER_BATCH)).readings) == 1000
    with pytest.raises(ValidationError) as exc:
        ReadingsBatch.model_validate(_batch(readings=[power] * (MAX_READINGS_PER_BATCH + 1)))
    assert _errors(exc) == [("readings", "too_long")]


def test_unknown_fields_are_not_refused_at_the_top() -> None:
    # A newer writer's optional field: v1 grows by such fields, so a reader must take it.
    batch = ReadingsBatch.model_validate_json(json.dumps(_batch(extra_field={"any": [1, 2]})))
    assert batch.seq == 5


def test_unknown_fields_inside_a_reading_are_not_refused() -> None:
    reading = {"kind": "power", "measured_at": "2026-06-01T12:00:00+09:00", "power_w": 1, "voltage": 200}
    batch = ReadingsBatch.model_validate_json(json.dumps(_batch(readings=[reading])))
    assert batch.readings[0].power_w == 1


@pytest.mark.parametrize("model", [Ack, GatewayStatus, Heartbeat, Weather, Event, DeadLetter])
def test_every_message_takes_unknown_fields(model: type[Any]) -> None:
    known = {
        Ack: {"gateway_id": "gw-1", "stream_id": "ab", "acked_seq": 1, "at": "2026-06-01T12:00:00+09:00"},
        GatewayStatus: {"gateway_id": "gw-1", "state": "online"},
        Heartbeat: {"gateway_id": "gw-1", "at": "2026-06-01T12:00:00+09:00", "uptime_s": 1, "firmware": "1",
                    "module_family": "sim", "read_errors_total": 0, "outbox_depth": 0, "power_interval_s": 5,
                    "heartbeat_interval_s": 30},
        Weather: {"service_code": "pss00000001", "observed_at": "2026-06-01T12:00:00+09:00", "ghi_w_m2": 1,
                  "source": "x"},
        Event: {"event_id": 1, "kind": "gateway_offline", "state": "open", "opened_at": "2026-06-01T12:00:00+09:00",
                "message": "m"},
        DeadLetter: {"service": "s", "topic": "t", "reason": "r", "payload": "p", "payload_encoding": "utf-8",
                     "received_at": "2026-06-01T12:00:00+09:00"},
    }[model]
    assert model.model_validate_json(json.dumps({"v": 1, **known, "added_in_v1_9": True})).v == 1


def test_unknown_reading_kind_is_refused() -> None:
    with pytest.raises(ValidationError) as exc:
        ReadingsBatch.model_validate(_batch(readings=[{"kind": "gas", "m3": 1}]))
    assert _errors(exc) == [("readings.0", "union_tag_invalid")]


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValidationError) as exc:
        ReadingsBatch.model_validate_json(json.dumps(_batch(sent_at="2026-06-01T12:00:05")))
    assert [loc for loc, _ in _errors(exc)] == ["sent_at"]
    with pytest.raises(ValidationError):
        PowerReading(measured_at=datetime(2026, 6, 1, 12, 0), power_w=1)


@pytest.mark.parametrize("slot_end", ["2026-06-01T12:15:00+09:00", "2026-06-01T12:00:01+09:00",
                                      "2026-06-01T12:00:00.5+09:00"])
def test_slot_end_must_be_a_30_minute_boundary(slot_end: str) -> None:
    with pytest.raises(ValidationError, match="30-minute boundary"):
        EnergyReading.model_validate_json(json.dumps({"slot_end": slot_end, "forward_kwh": 1.0}))


def test_slot_end_on_a_boundary_in_another_zone_is_accepted() -> None:
    reading = EnergyReading(slot_end=datetime(2026, 6, 1, 3, 30, tzinfo=UTC), reverse_kwh=1.0)
    assert reading.slot_end == datetime(2026, 6, 1, 12, 30, tzinfo=JST)


def test_negative_registers_are_refused() -> None:
    with pytest.raises(ValidationError):
        EnergyReading(slot_end=datetime(2026, 6, 1, 12, 0, tzinfo=JST), forward_kwh=-1.0)
    with pytest.raises(ValidationError):
        EnergyReading(slot_end=datetime(2026, 6, 1, 12, 0, tzinfo=JST), register_wrap_kwh=0.0)


def test_power_must_fit_32_bits() -> None:
    at = datetime(2026, 6, 1, 12, 0, tzinfo=JST)
    assert PowerReading(measured_at=at, power_w=-(2**31)).power_w == -(2**31)
    with pytest.raises(ValidationError):
        PowerReading(measured_at=at, power_w=2**31)


@pytest.mark.parametrize(
    ("field", "value"),
    [("gateway_id", "-gw"), ("gateway_id", "gw/1"), ("stream_id", "XYZ"), ("stream_id", "abc"),
     ("seq", 0), ("outbox_floor_seq", 0), ("v", 2)],
)
def test_batch_field_rules(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as exc:
        ReadingsBatch.model_validate(_batch(**{field: value}))
    assert [loc for loc, _ in _errors(exc)] == [field]


def test_messages_are_frozen() -> None:
    batch = ReadingsBatch.model_validate(_batch())
    with pytest.raises(ValidationError):
        batch.seq = 6  # type: ignore[misc]


def test_gateway_status_and_heartbeat() -> None:
    status = GatewayStatus.model_validate_json(
        b'{"v":1,"gateway_id":"gw-1","state":"offline","reason":"connection lost"}')
    assert (status.state, status.reason, status.at) == ("offline", "connection lost", None)
    with pytest.raises(ValidationError):
        GatewayStatus.model_validate({"gateway_id": "gw-1", "state": "sleeping"})
    heartbeat = Heartbeat(gateway_id="gw-1", at=datetime(2026, 6, 1, 12, 0, tzinfo=JST), uptime_s=10,
                          firmware="1.0", module_family="dual-stack", read_errors_total=0, outbox_depth=2,
                          power_interval_s=60, heartbeat_interval_s=30)
    assert Heartbeat.model_validate_json(heartbeat.to_json()) == heartbeat
    with pytest.raises(ValidationError):
        Heartbeat.model_validate({**heartbeat.model_dump(), "power_interval_s": 0})


def test_other_messages() -> None:
    at = datetime(2026, 6, 1, 12, 0, tzinfo=JST)
    ack = Ack(gateway_id="gw-1", stream_id="ab" * 8, acked_seq=0, at=at)
    assert json.loads(ack.to_json())["acked_seq"] == 0
    weather = Weather(service_code="pss00000001", observed_at=at, ghi_w_m2=800.0, source="clearsky")
    assert weather.temperature_c is None
    with pytest.raises(ValidationError):
        Weather(service_code="pss1", observed_at=at, ghi_w_m2=1.0, source="x")
    with pytest.raises(ValidationError):
        Weather(service_code="pss00000001", observed_at=at, ghi_w_m2=-1.0, source="x")
    event = Event(event_id=1, kind="gateway_offline", state="open", opened_at=at, message="m")
    assert event.recovered_at is None
    with pytest.raises(ValidationError):
        Event(event_id=1, kind="meter_on_fire", state="open", opened_at=at, message="m")  # type: ignore[arg-type]
    letter = DeadLetter(service="ingest", topic="t", reason="r", payload="p", payload_encoding="utf-8",
                        received_at=at)
    assert DeadLetter.model_validate_json(letter.to_json()) == letter


def test_weather_sends_the_fields_of_1_3_only_when_they_hold_a_value() -> None:
    at = datetime(2026, 6, 1, 13, 0, tzinfo=JST)
    bare = Weather(service_code="pss00000001", observed_at=at, ghi_w_m2=500.0, source="clear-sky")
    assert set(json.loads(bare.to_json())) == {"v", "service_code", "observed_at", "ghi_w_m2", "temperature_c", "source"}
    full = Weather(service_code="pss00000001", observed_at=at, ghi_w_m2=500.0, source="open-meteo", stale=False,
                   dni_w_m2=600.0, dhi_w_m2=100.0, gti_w_m2=550.0, cloud_cover_pct=20.0, weather_code=1, model="m")
    assert json.loads(full.to_json())["stale"] is False
    assert Weather.model_validate_json(full.to_json()) == full
    with pytest.raises(ValidationError) as exc:
        Weather(service_code="pss00000001", observed_at=at, ghi_w_m2=1.0, source="x", cloud_cover_pct=101.0)
    assert _errors(exc) == [("cloud_cover_pct", "less_than_equal")]


def _expected(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "v": 1, "service_code": "pss00000001", "computed_at": "2026-06-01T13:10:00+09:00", "calibration": 0.95,
        "slots": [{"slot_end": "2026-06-01T13:00:00+09:00", "expected_kwh": 1.234, "source": "open-meteo:best_match"},
                  {"slot_end": "2026-06-01T13:30:00+09:00", "expected_kwh": 0.0, "source": "clear_sky"}],
    }
    body.update(overrides)
    return body


def test_expected_yield_round_trips_and_names_slots_by_their_end() -> None:
    message = ExpectedYield.model_validate(_expected())
    assert [s.slot_end for s in message.slots] == [datetime(2026, 6, 1, 13, 0, tzinfo=JST),
                                                   datetime(2026, 6, 1, 13, 30, tzinfo=JST)]
    assert ExpectedYield.model_validate_json(message.to_json()) == message


@pytest.mark.parametrize(("change", "field"), [
    ({"slots": [{"slot_end": "2026-06-01T13:10:00+09:00", "expected_kwh": 1.0, "source": "x"}]}, "slot_end"),
    ({"slots": [{"slot_end": "2026-06-01T13:00:00", "expected_kwh": 1.0, "source": "x"}]}, "slot_end"),
    ({"slots": [{"slot_end": "2026-06-01T13:00:00+09:00", "expected_kwh": -0.1, "source": "x"}]}, "expected_kwh"),
    ({"slots": []}, "slots"),
    ({"calibration": 0}, "calibration"),
    ({"service_code": "plant-1"}, "service_code"),
])
def test_expected_yield_refuses_what_it_cannot_store(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ExpectedYield.model_validate(_expected(**change))
    assert any(field in map(str, error["loc"]) for error in caught.value.errors())


def test_expected_yield_takes_a_newer_writers_fields() -> None:
    body = _expected(model_version="2")
    body["slots"][0]["poa_kwh_m2"] = 0.4
    assert ExpectedYield.model_validate(body).slots[0].expected_kwh == 1.234


def test_the_expected_yield_schema_in_asyncapi_names_the_models_fields() -> None:
    import yaml

    doc = yaml.safe_load((Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml").read_text())
    schema = doc["components"]["schemas"]["ExpectedYield"]
    assert set(schema["properties"]) == set(ExpectedYield.model_fields)
    assert set(schema["required"]) == {"v"} | {n for n, f in ExpectedYield.model_fields.items() if f.is_required()}
    slot = schema["properties"]["slots"]["items"]
    assert set(slot["properties"]) == set(slot["required"]) == set(ExpectedSlot.model_fields)
    assert schema["properties"]["slots"]["maxItems"] == MAX_EXPECTED_SLOTS
