"""One contract, both time-series stores: SQLite (embedded) and InfluxDB (a real server).

Every test runs against each store through the `store` fixture and asserts the same figures, so the
InfluxDB store cannot drift from the SQLite one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta

import pytest

from pms_common import timeutil
from pms_common.messages import EnergyReading, PowerReading, Weather
from pms_store.base import LatestPower, TimeSeriesStore

from .conftest import RawReader

JST = timeutil.JST
DAY = date(2024, 6, 1)
NewId = Callable[[str], str]


def at(hour: int, minute: int = 0, day: date = DAY, *, second: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=JST) + timedelta(
        hours=hour, minutes=minute, seconds=second
    )


def slot(
    end: datetime,
    reverse: float | None,
    forward: float | None = None,
    *,
    wrap: float | None = None,
    backfilled: bool = False,
) -> EnergyReading:
    return EnergyReading(
        slot_end=end, forward_kwh=forward, reverse_kwh=reverse, register_wrap_kwh=wrap, backfilled=backfilled
    )


def sold_in(store: TimeSeriesStore, gateway_id: str, start: datetime, end: datetime) -> float:
    return store.sold_kwh_between([gateway_id], start, end)[gateway_id]


def sold_on(store: TimeSeriesStore, gateway_id: str, day: date) -> float:
    start, end = timeutil.today_bounds(datetime(day.year, day.month, day.day, 12, tzinfo=JST))
    return sold_in(store, gateway_id, start, end)


def test_latest_power_is_the_newest_measured_at_not_the_last_written(
    store: TimeSeriesStore, new_id: NewId
) -> None:
    gw = new_id("gw")
    # The newest reading is written first and older ones after it, as a resent outbox delivers them.
    store.write_readings(
        gw, [PowerReading(measured_at=at(12, 0, second=30), power_w=-1500, current_r_a=7.5)], []
    )
    outcome = store.write_readings(
        gw,
        [
            PowerReading(measured_at=at(12, 0, second=10), power_w=300),
            PowerReading(measured_at=at(11, 59), power_w=-800),
        ],
        [],
    )
    assert outcome.power_written == 2
    latest = store.latest_power([gw])
    assert latest == {gw: LatestPower(gw, at(12, 0, second=30), -1500)}
    assert latest[gw].sold_power_w == 1500
    assert latest[gw].measured_at.utcoffset() == timedelta(hours=9)

    # A newer reading does replace it; a buying reading sells nothing.
    store.write_readings(gw, [PowerReading(measured_at=at(12, 1), power_w=250)], [])
    assert store.latest_power([gw])[gw] == LatestPower(gw, at(12, 1), 250)
    assert store.latest_power([gw])[gw].sold_power_w == 0


def test_the_same_readings_written_twice_are_stored_once(
    store: TimeSeriesStore, raw: RawReader, new_id: NewId
) -> None:
    gw = new_id("gw")
    power = [PowerReading(measured_at=at(9, m), power_w=-1000 - m) for m in range(0, 30, 10)]
    energy = [slot(at(9), 100.0), slot(at(9, 30), 100.5), slot(at(10), 101.25)]
    first = store.write_readings(gw, power, energy)
    assert (first.power_written, first.slots_written, first.register_anomalies) == (3, 3, [])
    assert sold_on(store, gw, DAY) == pytest.approx(1.25, abs=1e-9)

    again = store.write_readings(gw, power, energy)
    assert again.register_anomalies == []
    assert sold_on(store, gw, DAY) == pytest.approx(1.25, abs=1e-9)
    assert raw.power_points(gw) == 3
    assert store.latest_power([gw])[gw] == LatestPower(gw, at(9, 20), -1020)


def test_sold_kwh_is_summed_per_japan_day_with_the_midnight_slot_closing_the_day(
    store: TimeSeriesStore, new_id: NewId
) -> None:
    gw = new_id("gw")
    next_day = DAY + timedelta(days=1)
    store.write_readings(
        gw,
        [],
        [
            slot(at(23, 30), 10.0),
            slot(at(0, 0, next_day), 10.4),  # ends 00:00 JST: the last slot of DAY
            slot(at(0, 30, next_day), 11.0),  # ends 00:30 JST: the first slot of the next day
            slot(at(1, 0, next_day), 11.5),
        ],
    )
    assert sold_on(store, gw, DAY) == pytest.approx(0.4, abs=1e-9)
    assert sold_on(store, gw, next_day) == pytest.approx(1.1, abs=1e-9)
    # 00:00 JST is 15:00 UTC of the day before: a UTC day boundary would split these differently.
    assert sold_in(store, gw, at(0, 0, next_day), at(0, 30, next_day)) == pytest.approx(0.6, abs=1e-9)


def test_a_late_slot_corrects_its_own_and_the_next_slot_energy(store: TimeSeriesStore, new_id: NewId) -> None:
    gw = new_id("gw")
    store.write_readings(gw, [], [slot(at(10), 5.0, 20.0), slot(at(11), 6.0, 20.5)])
    # 10:30 is missing: neither 10:30 nor 11:00 can have energy yet.
    assert sold_in(store, gw, at(10), at(11)) == 0.0

    outcome = store.write_readings(gw, [], [slot(at(10, 30), 5.25, 20.1, backfilled=True)])
    assert outcome.slots_written == 1
    assert outcome.register_anomalies == []
    assert sold_in(store, gw, at(10), at(10, 30)) == pytest.approx(0.25, abs=1e-9)
    assert sold_in(store, gw, at(10, 30), at(11)) == pytest.approx(0.75, abs=1e-9)
    assert sold_on(store, gw, DAY) == pytest.approx(1.0, abs=1e-9)


def test_a_late_slot_corrects_a_next_slot_derived_from_an_older_register(
    store: TimeSeriesStore, raw: RawReader, new_id: NewId
) -> None:
    gw = new_id("gw")
    # 10:30 first arrives with a glitched register, then the meter's real value is read back.
    store.write_readings(
        gw, [], [slot(at(10), 5.0, 20.0), slot(at(10, 30), 5.1, 20.05), slot(at(11), 6.0, 20.5)]
    )
    assert sold_in(store, gw, at(10, 30), at(11)) == pytest.approx(0.9, abs=1e-9)
    store.write_readings(gw, [], [slot(at(10, 30), 5.4, 20.2)])
    assert sold_in(store, gw, at(10), at(10, 30)) == pytest.approx(0.4, abs=1e-9)
    assert sold_in(store, gw, at(10, 30), at(11)) == pytest.approx(0.6, abs=1e-9)
    stored = raw.slot(gw, timeutil.to_epoch(at(11)))
    assert stored is not None
    assert stored.bought_kwh == pytest.approx(0.3, abs=1e-9)


def test_a_correction_that_makes_a_slot_underivable_removes_its_energy(
    store: TimeSeriesStore, new_id: NewId
) -> None:
    gw = new_id("gw")
    store.write_readings(gw, [], [slot(at(10), 5.0), slot(at(10, 30), 5.5)])
    assert sold_in(store, gw, at(10), at(10, 30)) == pytest.approx(0.5, abs=1e-9)
    # The 10:00 register is read again and was 7.0: 10:30 now goes backwards, its 0.5 kWh is void.
    outcome = store.write_readings(gw, [], [slot(at(10), 7.0)])
    assert len(outcome.register_anomalies) == 1
    assert "backwards from 7.000 to 5.500" in outcome.register_anomalies[0]
    assert sold_on(store, gw, DAY) == 0.0


def test_the_backfilled_flag_is_stored_and_a_live_copy_wins(
    store: TimeSeriesStore, raw: RawReader, new_id: NewId
) -> None:
    gw = new_id("gw")
    store.write_readings(gw, [], [slot(at(8), 1.0, backfilled=True), slot(at(8, 30), 1.5)])
    first, second = timeutil.to_epoch(at(8)), timeutil.to_epoch(at(8, 30))
    assert_slot(raw, gw, first, backfilled=True, sold=None)
    assert_slot(raw, gw, second, backfilled=False, sold=0.5)

    # The live push of 08:00 clears its flag; a backfilled copy of 08:30 does not set one.
    store.write_readings(gw, [], [slot(at(8), 1.0), slot(at(8, 30), 1.5, backfilled=True)])
    assert_slot(raw, gw, first, backfilled=False, sold=None)
    assert_slot(raw, gw, second, backfilled=False, sold=0.5)
    assert sold_on(store, gw, DAY) == pytest.approx(0.5, abs=1e-9)


def assert_slot(raw: RawReader, gw: str, slot_end: int, *, backfilled: bool, sold: float | None) -> None:
    stored = raw.slot(gw, slot_end)
    assert stored is not None
    assert stored.backfilled is backfilled
    assert stored.bought_kwh is None  # these slots carry no forward register
    if sold is None:
        assert stored.sold_kwh is None
    else:
        assert stored.sold_kwh == pytest.approx(sold, abs=1e-9)


def test_a_wrapping_register_continues_from_zero(
    store: TimeSeriesStore, raw: RawReader, new_id: NewId
) -> None:
    gw = new_id("gw")
    outcome = store.write_readings(
        gw,
        [],
        [slot(at(14), 99999.5, 99999.9, wrap=100000.0), slot(at(14, 30), 0.7, 0.2, wrap=100000.0)],
    )
    assert outcome.register_anomalies == []
    assert sold_on(store, gw, DAY) == pytest.approx(1.2, abs=1e-6)
    stored = raw.slot(gw, timeutil.to_epoch(at(14, 30)))
    assert stored is not None
    assert stored.sold_kwh == pytest.approx(1.2, abs=1e-6)
    assert stored.bought_kwh == pytest.approx(0.3, abs=1e-6)


def test_a_register_reset_to_zero_yields_no_energy_and_an_anomaly(
    store: TimeSeriesStore, new_id: NewId
) -> None:
    gw = new_id("gw")
    outcome = store.write_readings(
        gw, [], [slot(at(15), 500.0, 80.0, wrap=100000.0), slot(at(15, 30), 0.0, 80.5, wrap=100000.0)]
    )
    assert len(outcome.register_anomalies) == 1
    assert "reverse register" in outcome.register_anomalies[0]
    assert "backwards from 500.000 to 0.000" in outcome.register_anomalies[0]
    assert sold_in(store, gw, at(15), at(15, 30)) == 0.0

    # After the reset the register counts from zero again: the next slot is ordinary energy.
    later = store.write_readings(gw, [], [slot(at(16), 0.4, 81.0, wrap=100000.0)])
    assert later.register_anomalies == []
    assert sold_on(store, gw, DAY) == pytest.approx(0.4, abs=1e-9)
    assert all(v >= 0 for v in store.sold_kwh_between([gw], at(0), at(23, 59)).values())


def test_a_gateway_with_no_data_sells_zero_and_has_no_latest_power(
    store: TimeSeriesStore, new_id: NewId
) -> None:
    silent, power_only = new_id("silent"), new_id("power-only")
    store.write_readings(power_only, [PowerReading(measured_at=at(12), power_w=-300)], [])
    start, end = timeutil.today_bounds(at(12))
    assert store.sold_kwh_between([silent, power_only], start, end) == {silent: 0.0, power_only: 0.0}
    assert store.sold_kwh_between([], start, end) == {}
    assert store.latest_power([silent]) == {}
    assert set(store.latest_power([silent, power_only])) == {power_only}


def test_the_latest_weather_is_the_newest_observation(
    store: TimeSeriesStore, new_service_code: Callable[[], str]
) -> None:
    plant, other = new_service_code(), new_service_code()
    assert store.latest_weather(plant) is None
    newest = Weather(
        service_code=plant,
        observed_at=at(13),
        ghi_w_m2=612.5,
        temperature_c=27.25,
        source='JMA "AMeDAS" 44132, Tokyo',
    )
    store.write_weather(
        [newest, Weather(service_code=plant, observed_at=at(12), ghi_w_m2=700.0, source="JMA")]
    )
    store.write_weather(
        [Weather(service_code=plant, observed_at=at(11), ghi_w_m2=650.0, temperature_c=-1.5, source="JMA")]
    )
    store.write_weather([Weather(service_code=other, observed_at=at(14), ghi_w_m2=0.0, source="sim")])
    assert store.latest_weather(plant) == newest
    latest_other = store.latest_weather(other)
    assert latest_other is not None
    assert (latest_other.observed_at, latest_other.ghi_w_m2, latest_other.temperature_c) == (
        at(14),
        0.0,
        None,
    )


def test_gateways_are_isolated(store: TimeSeriesStore, new_id: NewId) -> None:
    a, b = new_id("plant.a"), new_id("plant_b")
    store.write_readings(
        a, [PowerReading(measured_at=at(12), power_w=-2000)], [slot(at(12), 1.0), slot(at(12, 30), 2.0)]
    )
    store.write_readings(
        b, [PowerReading(measured_at=at(11), power_w=-100)], [slot(at(12), 50.0), slot(at(12, 30), 50.25)]
    )
    assert store.sold_kwh_between([a, b], at(0), at(23, 30)) == {
        a: pytest.approx(1.0, abs=1e-9),
        b: pytest.approx(0.25, abs=1e-9),
    }
    assert store.latest_power([a, b]) == {a: LatestPower(a, at(12), -2000), b: LatestPower(b, at(11), -100)}
    # A slot of b arriving late derives against b's registers only.
    store.write_readings(b, [], [slot(at(13), 50.5)])
    assert store.sold_kwh_between([a, b], at(0), at(23, 30)) == {
        a: pytest.approx(1.0, abs=1e-9),
        b: pytest.approx(0.5, abs=1e-9),
    }


def test_identifiers_with_separator_characters_round_trip(store: TimeSeriesStore, new_id: NewId) -> None:
    # Line protocol and InfluxQL both give meaning to these characters; a store must not.
    gw = new_id("gw a,b=c'd\"e\\f")
    lookalike = new_id("gw a")
    store.write_readings(
        gw, [PowerReading(measured_at=at(7), power_w=-42)], [slot(at(7), 3.0), slot(at(7, 30), 3.5)]
    )
    store.write_readings(lookalike, [PowerReading(measured_at=at(8), power_w=-7)], [])
    assert store.latest_power([gw]) == {gw: LatestPower(gw, at(7), -42)}
    assert store.sold_kwh_between([gw, lookalike], at(0), at(23, 30)) == {
        gw: pytest.approx(0.5, abs=1e-9),
        lookalike: 0.0,
    }
