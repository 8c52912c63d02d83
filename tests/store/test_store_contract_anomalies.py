"""The register-anomaly part of the store contract, on both stores (the `store` fixture).

A register that goes backwards or jumps is stored once per (gateway, slot, register) with its facts,
and found again by `register_anomalies`; a resend or a backfill overlap of the same slot adds none.
(That such a slot gets no energy is in test_store_contract.py.) The InfluxDB tests share one
database, so every query here is narrowed to the test's own gateway.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from pms_common import timeutil
from pms_store.base import GatewayReadings, RegisterAnomaly, TimeSeriesStore

from .test_store_contract import NewId, at, slot, sold_in

EARLIER = datetime(2000, 1, 1, tzinfo=timeutil.JST)


def anomalies_of(store: TimeSeriesStore, gateway_id: str, since: datetime = EARLIER) -> list[RegisterAnomaly]:
    return [a for a in store.register_anomalies(since, 10_000) if a.gateway_id == gateway_id]


def test_a_register_that_goes_backwards_is_stored_once_with_its_facts(
    store: TimeSeriesStore, new_id: NewId
) -> None:
    gw = new_id("gw")
    before = timeutil.now_jst() - timedelta(seconds=1)
    readings = [slot(at(10), 1234.5, 80.0), slot(at(10, 30), 0.0, 80.5), slot(at(11), 0.4, 81.0)]
    outcome = store.write_readings(gw, [], readings)
    assert outcome.register_anomalies == [
        "reverse register at slot 2024-06-01T10:30:00+09:00: register went backwards from 1234.500 to 0.000 kWh"
    ]
    [anomaly] = anomalies_of(store, gw)
    assert (anomaly.gateway_id, anomaly.slot_end, anomaly.direction, anomaly.reason) == (
        gw, at(10, 30), "reverse", "backwards"
    )
    assert (anomaly.previous_kwh, anomaly.current_kwh) == (1234.5, 0.0)
    assert anomaly.slot_end.utcoffset() is not None
    assert before <= anomaly.detected_at <= timeutil.now_jst()

    # The same readings again, live or as backfill overlapping more slots: nothing new, nothing changed.
    again = store.write_readings(gw, [], readings)
    assert again.register_anomalies == []
    backfill = [slot(at(9, 30), 1234.0, 79.5, backfilled=True)] + [
        slot(r.slot_end, r.reverse_kwh, r.forward_kwh, backfilled=True) for r in readings
    ]
    assert store.write_readings(gw, [], backfill).register_anomalies == []
    assert anomalies_of(store, gw) == [anomaly]
    assert sold_in(store, gw, at(9), at(11)) == pytest.approx(0.5 + 0.4, abs=1e-9)


def test_a_glitch_to_zero_is_a_backwards_and_a_jump_anomaly_in_detection_order(
    store: TimeSeriesStore, new_id: NewId
) -> None:
    gw = new_id("gw")
    store.write_readings(gw, [], [slot(at(12), 500.0), slot(at(12, 30), 0.0)])
    first = timeutil.now_jst()
    # Two batches of one write reach the same slot: still one anomaly for it.
    outcomes = store.write_many([
        GatewayReadings(gw, energy=[slot(at(13), 500.6)]),
        GatewayReadings(gw, energy=[slot(at(13), 500.6), slot(at(13, 30), 501.0)]),
    ])
    assert [len(o.register_anomalies) for o in outcomes] == [1, 0]
    assert "jumped by 500.600 kWh" in outcomes[0].register_anomalies[0]
    found = anomalies_of(store, gw)
    assert [(a.slot_end, a.reason, a.previous_kwh, a.current_kwh) for a in found] == [
        (at(12, 30), "backwards", 500.0, 0.0),
        (at(13), "jump", 0.0, 500.6),
    ]
    assert found[0].detected_at < found[1].detected_at
    assert anomalies_of(store, gw, since=first) == found[1:]
    # Neither slot has energy, neither negative nor huge; the slot after them is ordinary.
    assert sold_in(store, gw, at(12), at(13)) == 0.0
    assert sold_in(store, gw, at(12), at(13, 30)) == pytest.approx(0.4, abs=1e-9)


def test_register_anomalies_are_limited_oldest_detection_first(store: TimeSeriesStore, new_id: NewId) -> None:
    gws = [new_id("gw") for _ in range(3)]
    since = timeutil.now_jst() - timedelta(seconds=1)
    for gw in gws:
        store.write_readings(gw, [], [slot(at(8), 90.0, 40.0), slot(at(8, 30), 1.0, 39.0)])
    ours = [a for a in store.register_anomalies(since, 10_000) if a.gateway_id in gws]
    # Both registers of each gateway went backwards: six, ordered by detection, then gateway.
    assert [(a.gateway_id, a.direction) for a in ours] == [
        (gw, direction) for gw in gws for direction in ("forward", "reverse")
    ]
    assert len(store.register_anomalies(since, 2)) == 2
    assert store.register_anomalies(timeutil.now_jst() + timedelta(minutes=1), 10) == []
