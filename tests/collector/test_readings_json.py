"""The uplink splices the outbox's readings text into the batch: byte for byte the contract model's JSON."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from pms_collector.readings_json import encode_readings, readings_batch_payload
from pms_common.messages import EnergyReading, PowerReading, ReadingsBatch
from pms_common.timeutil import JST

SLOT_END = datetime(2026, 6, 1, 12, 30, tzinfo=JST)
POWER = [
    PowerReading(measured_at=datetime(2026, 6, 1, 12, 31, 7, tzinfo=JST), power_w=1234, current_r_a=12.5,
                 current_t_a=3.1),
    PowerReading(measured_at=datetime(2026, 6, 1, 12, 31, 7, 250_000, tzinfo=JST), power_w=-2_147_483_648),
    PowerReading(measured_at=datetime(2026, 6, 1, 3, 31, 7, tzinfo=JST).astimezone(JST), power_w=0,
                 current_r_a=None, current_t_a=0.1),
    PowerReading(measured_at=datetime(2026, 6, 1, 12, 31, tzinfo=JST), power_w=2_147_483_647, current_r_a=-0.0,
                 current_t_a=1e-7),
]
ENERGY = [
    EnergyReading(slot_end=SLOT_END, forward_kwh=12345.6, reverse_kwh=0.0, register_wrap_kwh=100000.0),
    EnergyReading(slot_end=SLOT_END - timedelta(days=3), forward_kwh=1.05, reverse_kwh=2.5, register_wrap_kwh=1e5,
                  backfilled=True),
    EnergyReading(slot_end=SLOT_END, forward_kwh=None, reverse_kwh=7.25, backfilled=True),
    EnergyReading(slot_end=SLOT_END, forward_kwh=99999.999),
    EnergyReading(slot_end=SLOT_END),
]
SENT_AT = [datetime(2026, 6, 1, 12, 31, 9, tzinfo=JST), datetime(2026, 6, 1, 12, 31, 9, 123_456, tzinfo=JST),
           datetime(2026, 6, 1, 12, 31, 9, 5, tzinfo=JST)]


@pytest.mark.parametrize("readings", [
    [], POWER[:1], ENERGY[:1], POWER, ENERGY, [*POWER, *ENERGY], [ENERGY[1]] * 48,
    *([reading] for reading in POWER + ENERGY),
], ids=lambda readings: f"{len(readings)}-readings")
@pytest.mark.parametrize("sent_at", SENT_AT, ids=["whole-second", "micro", "few-micro"])
def test_the_spliced_batch_is_the_models_json(readings: list[PowerReading | EnergyReading], sent_at: datetime) -> None:
    fields: dict[str, Any] = {"gateway_id": "gw-0042", "stream_id": "0123456789abcdef" * 2, "seq": 4711, "outbox_floor_seq": 4700,
              "sent_at": sent_at}
    spliced = readings_batch_payload(**fields, readings_json=encode_readings(readings))
    model = ReadingsBatch(**fields, readings=readings)
    assert spliced == model.model_dump_json().encode()
    assert ReadingsBatch.model_validate_json(spliced) == model


def test_every_optional_field_is_present_or_absent_in_the_cases_above() -> None:
    """The cases cover each optional field both set and unset, and both kinds, backfilled or not."""
    for field in ("current_r_a", "current_t_a"):
        assert {getattr(r, field) is None for r in POWER} == {True, False}
    for field in ("forward_kwh", "reverse_kwh", "register_wrap_kwh"):
        assert {getattr(r, field) is None for r in ENERGY} == {True, False}
    assert {r.backfilled for r in ENERGY} == {True, False}
