"""One contract, both time-series stores: SQLite (embedded) and InfluxDB (a real server).

Every test runs against each store through the `store` fixture and asserts the same figures, so the
InfluxDB store cannot drift from the SQLite one.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from datetime import date, datetime, timedelta

import pytest

from pms_common import timeutil
from pms_common.messages import EnergyReading, PowerReading, Weather
from pms_store.base import DailyPeak, EnergyInterval, LatestPower, PowerPoint, TimeSeriesStore
from pms_store.energy import slot_delta

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


# ---- the queries of the API and console ---------------------------------------------------------


def energy(
    store: TimeSeriesStore, gw: str, start: datetime, end: datetime, interval: EnergyInterval
) -> list[tuple[datetime, datetime, float | None, float | None, int, bool]]:
    """The energy series as plain tuples, sold/bought rounded so float noise cannot fail a test."""
    points = store.energy_series([gw], start, end, interval)
    assert all(p.gateway_id == gw for p in points)
    return [
        (
            p.period_start,
            p.period_end,
            None if p.sold_kwh is None else round(p.sold_kwh, 6),
            None if p.bought_kwh is None else round(p.bought_kwh, 6),
            p.slots,
            p.backfilled,
        )
        for p in points
    ]


def test_the_power_series_is_half_open_ordered_and_keeps_the_currents(
    store: TimeSeriesStore, new_id: NewId
) -> None:
    a, b = sorted([new_id("gw"), new_id("gw")])
    # Written out of order and partly twice, as a resent outbox delivers them.
    store.write_readings(b, [PowerReading(measured_at=at(10, 1), power_w=-50)], [])
    store.write_readings(
        a,
        [
            PowerReading(measured_at=at(10, 2), power_w=120, current_r_a=1.5, current_t_a=-0.5),
            PowerReading(measured_at=at(10, 0), power_w=-2000, current_r_a=-10.0),
            PowerReading(measured_at=at(10, 3), power_w=-1),
        ],
        [],
    )
    store.write_readings(a, [PowerReading(measured_at=at(10, 0), power_w=-2000, current_r_a=-10.0)], [])
    points = store.power_series([b, a], at(10), at(10, 3))
    assert points == [
        PowerPoint(a, at(10, 0), -2000, -10.0, None),
        PowerPoint(a, at(10, 2), 120, 1.5, -0.5),
        PowerPoint(b, at(10, 1), -50, None, None),
    ]
    assert [p.sold_power_w for p in points] == [2000, 0, 50]
    assert all(p.measured_at.utcoffset() == timedelta(hours=9) for p in points)
    assert store.power_series([a], at(10, 3), at(10, 3)) == []
    assert store.power_series([], at(0), at(23)) == []


def test_30_minute_energy_names_each_slot_by_its_end_and_skips_underivable_slots(
    store: TimeSeriesStore, new_id: NewId
) -> None:
    gw = new_id("gw")
    store.write_readings(
        gw,
        [],
        [
            slot(at(9), 10.0, 3.0),  # the first register: no energy of its own
            slot(at(9, 30), 10.5, 3.25, backfilled=True),
            slot(at(10), 11.5, None),  # no forward register: sold only
            slot(at(11), 12.0, 3.5),  # 10:30 missing: 11:00 cannot be derived
        ],
    )
    assert energy(store, gw, at(9), at(11), "30min") == [
        (at(9), at(9, 30), 0.5, 0.25, 1, True),
        (at(9, 30), at(10), 1.0, None, 1, False),
    ]
    # Overlap: a window that starts inside a slot still returns that slot.
    assert [p[1] for p in energy(store, gw, at(9, 45), at(9, 50), "30min")] == [at(10)]
    assert energy(store, gw, at(10), at(11, 30), "30min") == []


def test_hourly_energy_holds_the_slots_ending_in_the_hour_after_its_start(
    store: TimeSeriesStore, new_id: NewId
) -> None:
    gw = new_id("gw")
    store.write_readings(
        gw, [], [slot(at(10), 1.0, 0.0), slot(at(10, 30), 1.25, 0.0), slot(at(11), 2.0, 0.5), slot(at(11, 30), 2.5, 0.5)]
    )
    assert energy(store, gw, at(0), at(23), "hour") == [
        (at(10), at(11), 1.0, 0.5, 2, False),  # slots ending 10:30 and 11:00
        (at(11), at(12), 0.5, 0.0, 1, False),  # the slot ending 11:30
    ]
    # A window starting mid-hour overlaps that hour; one ending at 11:00 does not reach 11:00-12:00.
    assert [p[0] for p in energy(store, gw, at(10, 40), at(11), "hour")] == [at(10)]


def test_daily_and_monthly_energy_follow_the_japan_calendar(store: TimeSeriesStore, new_id: NewId) -> None:
    gw = new_id("gw")
    june_30, july_1 = date(2024, 6, 30), date(2024, 7, 1)
    store.write_readings(
        gw,
        [],
        [
            slot(at(23, 30, june_30), 100.0),
            slot(at(0, 0, july_1), 101.0),  # ends 00:00 JST on 1 July: June's last slot
            slot(at(0, 30, july_1), 103.0),  # July's first slot (15:30 UTC on 30 June)
            slot(at(9, 0, july_1), 104.0),  # 09:00 JST = 00:00 UTC: the UTC day would begin here
            slot(at(9, 30, july_1), 108.0),
        ],
    )
    assert energy(store, gw, at(0, day=june_30), at(0, day=date(2024, 7, 2)), "day") == [
        (at(0, day=june_30), at(0, day=july_1), 1.0, None, 1, False),
        (at(0, day=july_1), at(0, day=date(2024, 7, 2)), 6.0, None, 2, False),
    ]
    assert energy(store, gw, at(0, day=date(2024, 1, 1)), at(0, day=date(2025, 1, 1)), "month") == [
        (at(0, day=date(2024, 6, 1)), at(0, day=july_1), 1.0, None, 1, False),
        (at(0, day=july_1), at(0, day=date(2024, 8, 1)), 6.0, None, 2, False),
    ]
    # A window inside July returns all of July; one ending as July begins returns June only.
    assert [p[0] for p in energy(store, gw, at(12, day=date(2024, 7, 15)), at(13, day=date(2024, 7, 15)), "month")] == [
        at(0, day=july_1)
    ]
    assert [p[0] for p in energy(store, gw, at(0, day=june_30), at(0, day=july_1), "month")] == [at(0, day=DAY)]
    assert [p[0] for p in energy(store, gw, at(0, day=june_30), at(0, day=july_1), "day")] == [at(0, day=june_30)]


def test_a_year_of_monthly_energy_sums_every_slot_once(store: TimeSeriesStore, new_id: NewId) -> None:
    gw = new_id("gw")
    readings = []
    # At every turn of month from 2024-01 to 2025-01, slots ending 23:30, 00:00 and 00:30 JST, 0.5 kWh
    # apart: 00:00 on the 1st closes the month before, 00:30 opens the new one.
    firsts = [date(2024 + (m // 12), m % 12 + 1, 1) for m in range(13)]
    for n, first in enumerate(firsts):
        base = 10.0 * n
        readings += [slot(at(-1, 30, first), base), slot(at(0, 0, first), base + 0.5), slot(at(0, 30, first), base + 1)]
    store.write_readings(gw, [], readings)
    store.write_readings(gw, [], readings[::-1])  # resent, in another order: stored once
    months = energy(store, gw, at(0, day=date(2024, 1, 1)), at(0, day=date(2025, 1, 1)), "month")
    assert months == [
        (at(0, day=first), at(0, day=after), 1.0, None, 2, False) for first, after in itertools.pairwise(firsts)
    ]
    assert len(energy(store, gw, at(0, day=date(2023, 1, 1)), at(0, day=date(2026, 1, 1)), "month")) == 14
    assert store.total_sold_kwh([gw]) == {gw: pytest.approx(13.0, abs=1e-6)}


def test_a_late_slot_corrects_every_rollup(store: TimeSeriesStore, new_id: NewId) -> None:
    gw = new_id("gw")
    store.write_readings(gw, [], [slot(at(10), 5.0), slot(at(11), 6.0)])
    day = (at(0), at(0, day=DAY + timedelta(days=1)))
    assert energy(store, gw, *day, "hour") == []
    assert energy(store, gw, *day, "day") == []
    assert store.total_sold_kwh([gw]) == {gw: 0.0}

    store.write_readings(gw, [], [slot(at(10, 30), 5.25, backfilled=True)])
    assert energy(store, gw, *day, "hour") == [(at(10), at(11), 1.0, None, 2, True)]
    assert energy(store, gw, *day, "day") == [(*day, 1.0, None, 2, True)]
    assert energy(store, gw, at(0), at(1), "month") == [(at(0), at(0, day=date(2024, 7, 1)), 1.0, None, 2, True)]

    # The live copy of 10:30 arrives with the true register: the flag and the split are corrected.
    store.write_readings(gw, [], [slot(at(10, 30), 5.75)])
    assert energy(store, gw, *day, "30min") == [
        (at(10), at(10, 30), 0.75, None, 1, False),
        (at(10, 30), at(11), 0.25, None, 1, False),
    ]
    assert energy(store, gw, *day, "day") == [(*day, 1.0, None, 2, False)]
    assert store.total_sold_kwh([gw]) == {gw: pytest.approx(1.0, abs=1e-9)}


def test_a_backfilled_slot_flags_its_hour_day_and_month(store: TimeSeriesStore, new_id: NewId) -> None:
    gw = new_id("gw")
    store.write_readings(gw, [], [slot(at(12), 1.0), slot(at(12, 30), 1.5), slot(at(13), 2.0)])
    store.write_readings(gw, [], [slot(at(14), 2.25, backfilled=True), slot(at(13, 30), 2.1, backfilled=True)])
    assert energy(store, gw, at(0), at(23), "hour") == [
        (at(12), at(13), 1.0, None, 2, False),
        (at(13), at(14), 0.25, None, 2, True),
    ]
    assert energy(store, gw, at(0), at(23), "day")[0][2:] == (1.25, None, 4, True)
    assert energy(store, gw, at(0), at(23), "month")[0][2:] == (1.25, None, 4, True)


def test_an_underivable_correction_leaves_no_empty_periods(store: TimeSeriesStore, new_id: NewId) -> None:
    gw = new_id("gw")
    store.write_readings(gw, [], [slot(at(10), 5.0), slot(at(10, 30), 5.5)])
    assert energy(store, gw, at(0), at(23), "month")[0][2:] == (0.5, None, 1, False)
    outcome = store.write_readings(gw, [], [slot(at(10), 7.0)])  # 10:30 now goes backwards
    assert len(outcome.register_anomalies) == 1
    for interval in ("30min", "hour", "day", "month"):
        assert energy(store, gw, at(0), at(23), interval) == [], interval
    assert store.total_sold_kwh([gw]) == {gw: 0.0}


def test_a_wrap_and_a_reset_reach_the_rollups_as_energy_and_as_nothing(
    store: TimeSeriesStore, new_id: NewId
) -> None:
    gw = new_id("gw")
    store.write_readings(
        gw,
        [],
        [
            slot(at(14), 99999.5, 10.0, wrap=100000.0),
            slot(at(14, 30), 0.7, 10.5, wrap=100000.0),  # wraps: 1.2 kWh sold
            slot(at(15), 1.0, 11.0, wrap=100000.0),
            slot(at(15, 30), 0.0, 11.5, wrap=100000.0),  # reset: no sold energy, bought still counts
            slot(at(16), 0.5, 11.5, wrap=100000.0),
        ],
    )
    assert energy(store, gw, at(0), at(23), "hour") == [
        (at(14), at(15), 1.5, 1.0, 2, False),
        (at(15), at(16), 0.5, 0.5, 2, False),
    ]
    assert energy(store, gw, at(0), at(23), "day")[0][2:4] == (2.0, 1.5)
    assert all(0 <= (p.sold_kwh or 0) <= 25 for p in store.energy_series([gw], at(0), at(23), "30min"))


def test_daily_peaks_are_per_japan_day_with_the_time_of_the_peak(store: TimeSeriesStore, new_id: NewId) -> None:
    gw, buyer = new_id("gw"), new_id("buyer")
    next_day = DAY + timedelta(days=1)
    store.write_readings(
        gw,
        [
            PowerReading(measured_at=at(11, 0), power_w=-3000),
            PowerReading(measured_at=at(12, 0), power_w=-3500),
            PowerReading(measured_at=at(13, 0), power_w=-3500),  # a tie: the earlier sample is the peak
            PowerReading(measured_at=at(23, 59), power_w=-100),
            PowerReading(measured_at=at(0, 0, next_day), power_w=-4000),  # 00:00 JST opens the next day
        ],
        [],
    )
    store.write_readings(buyer, [PowerReading(measured_at=at(12), power_w=800)], [])
    assert store.daily_peaks([gw, buyer], DAY, next_day) == sorted(
        [
            DailyPeak(gw, DAY, 3500, at(12, 0)),
            DailyPeak(gw, next_day, 4000, at(0, 0, next_day)),
            DailyPeak(buyer, DAY, 0, at(12)),
        ],
        key=lambda p: (p.gateway_id, p.day),
    )
    # A late, higher sample raises the peak; a resent lower one changes nothing.
    store.write_readings(gw, [PowerReading(measured_at=at(9, 30), power_w=-3600)], [])
    store.write_readings(gw, [PowerReading(measured_at=at(11, 0), power_w=-3000)], [])
    assert store.daily_peaks([gw], DAY, DAY) == [DailyPeak(gw, DAY, 3600, at(9, 30))]
    assert store.daily_peaks([gw], next_day, next_day + timedelta(days=30)) == [
        DailyPeak(gw, next_day, 4000, at(0, 0, next_day))
    ]
    assert store.daily_peaks([gw], DAY - timedelta(days=1), DAY - timedelta(days=1)) == []


def test_the_total_sold_energy_spans_all_time(store: TimeSeriesStore, new_id: NewId) -> None:
    gw, other, silent = new_id("gw"), new_id("gw"), new_id("silent")
    store.write_readings(gw, [], [slot(at(12, day=date(2023, 12, 31)), 1.0), slot(at(12, 30, date(2023, 12, 31)), 2.0)])
    store.write_readings(gw, [], [slot(at(12), 50.0), slot(at(12, 30), 52.5)])
    store.write_readings(other, [], [slot(at(12), 7.0), slot(at(12, 30), 7.25)])
    assert store.total_sold_kwh([gw, other, silent]) == {
        gw: pytest.approx(3.5, abs=1e-9),
        other: pytest.approx(0.25, abs=1e-9),
        silent: 0.0,
    }
    assert store.total_sold_kwh([]) == {}


def test_the_weather_series_is_half_open_and_oldest_first(
    store: TimeSeriesStore, new_service_code: Callable[[], str]
) -> None:
    plant, other = new_service_code(), new_service_code()
    observations = [
        Weather(service_code=plant, observed_at=at(h), ghi_w_m2=100.0 * h, temperature_c=20.5, source="JMA")
        for h in (12, 10, 11, 13)
    ]
    store.write_weather(observations)
    store.write_weather([Weather(service_code=other, observed_at=at(11), ghi_w_m2=1.0, source="sim")])
    series = store.weather_series(plant, at(10), at(13))
    assert series == sorted(observations[:3], key=lambda w: w.observed_at)
    assert [w.observed_at.utcoffset() for w in series] == [timedelta(hours=9)] * 3
    assert store.weather_series(plant, at(14), at(15)) == []


def test_weather_keeps_every_field_of_a_provider_observation(
    store: TimeSeriesStore, new_service_code: Callable[[], str]
) -> None:
    plant = new_service_code()
    full = Weather(service_code=plant, observed_at=at(12, 30), ghi_w_m2=640.0, temperature_c=24.0,
                   source="open-meteo-jma", dni_w_m2=705.5, dhi_w_m2=150.0, gti_w_m2=700.0, cloud_cover_pct=35.0,
                   weather_code=2, model="jma_seamless", stale=True)
    bare = Weather(service_code=plant, observed_at=at(13), ghi_w_m2=600.0, source="clear-sky")
    store.write_weather([full, bare])
    assert store.weather_series(plant, at(12), at(14)) == [full, bare]
    assert store.latest_weather(plant) == bare
    whole = Weather(service_code=plant, observed_at=at(13, 30), ghi_w_m2=1.0, source="x", cloud_cover_pct=100.0,
                    weather_code=0, stale=False)
    store.write_weather([whole])  # whole numbers and false come back typed as written
    latest = store.latest_weather(plant)
    assert latest == whole
    assert latest is not None and isinstance(latest.cloud_cover_pct, float) and latest.stale is False


def test_any_order_and_batching_of_the_same_registers_gives_the_same_figures(
    store: TimeSeriesStore, new_id: NewId
) -> None:
    """Three days of slots around a month end, with gaps, a wrap and a reset, written shuffled, in
    random batches, partly twice and partly as backfill: every series equals the in-order model."""
    rng = random.Random(20240630)
    gw = new_id("gw")
    start = at(0, day=date(2024, 6, 29))
    registers: dict[datetime, tuple[float, float]] = {}
    sold, bought = 99_990.0, 50.0
    for n in range(1, 3 * 48 + 1):
        end = start + timeutil.SLOT * n
        sold, bought = (sold + rng.choice([0.0, 0.25, 1.5])) % 100_000.0, bought + rng.choice([0.0, 0.1])
        if n == 100:
            sold = 0.0  # the meter was replaced
        if n % 37 != 0:  # a few slots are never read
            registers[end] = (round(sold, 6), round(bought, 6))
    readings = [
        slot(end, s, b, wrap=100_000.0, backfilled=rng.random() < 0.2) for end, (s, b) in registers.items()
    ]
    shuffled = readings + rng.sample(readings, 40)
    rng.shuffle(shuffled)
    while shuffled:
        size = rng.randint(1, 30)
        store.write_readings(gw, [], shuffled[:size])
        shuffled = shuffled[size:]

    # The model: each slot from its predecessor, in order, by the one rule.
    model: dict[datetime, tuple[float | None, float | None]] = {}
    for end, (s, b) in registers.items():
        before = registers.get(end - timeutil.SLOT)
        if before is not None:
            model[end] = (slot_delta(before[0], s, 100_000.0).kwh, slot_delta(before[1], b, 100_000.0).kwh)
    window = (start, start + timedelta(days=3))
    got = {p.period_end: (p.sold_kwh, p.bought_kwh) for p in store.energy_series([gw], *window, "30min")}
    assert got.keys() == {end for end, (s, b) in model.items() if s is not None or b is not None}
    for end, (s, b) in got.items():
        assert s == pytest.approx(model[end][0], abs=1e-9) if model[end][0] is not None else s is None
        assert b == pytest.approx(model[end][1], abs=1e-9)
    for interval, bucket in (
        ("hour", lambda end: (end - timeutil.SLOT).replace(minute=0)),
        ("day", lambda end: timeutil.day_start(timeutil.jst_day_of_slot(end))),
        ("month", lambda end: timeutil.day_start(timeutil.jst_day_of_slot(end).replace(day=1))),
    ):
        expected: dict[datetime, list[float]] = {}
        for end, (s, b) in model.items():
            if s is not None or b is not None:
                totals = expected.setdefault(bucket(end), [0.0, 0.0, 0])
                totals[0] += s or 0.0
                totals[1] += b or 0.0
                totals[2] += 1
        series = store.energy_series([gw], *window, interval)  # type: ignore[arg-type]
        assert [p.period_start for p in series] == sorted(expected), interval
        for p in series:
            assert (p.sold_kwh, p.bought_kwh, p.slots) == (
                pytest.approx(expected[p.period_start][0], abs=1e-6),
                pytest.approx(expected[p.period_start][1], abs=1e-6),
                expected[p.period_start][2],
            ), (interval, p)
    assert store.total_sold_kwh([gw])[gw] == pytest.approx(sum(s or 0.0 for s, _ in model.values()), abs=1e-6)
