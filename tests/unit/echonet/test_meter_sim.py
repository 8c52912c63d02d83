from __future__ import annotations

from datetime import datetime, timedelta

from echonet.sim.meter import MeterProfile, SimulatedMeter
from pms_common.timeutil import JST

PROFILE = MeterProfile(seed=3, installed_at=datetime(2026, 5, 31, tzinfo=JST))


def test_sells_around_noon_in_june() -> None:
    meter = SimulatedMeter(PROFILE)
    for minute in range(-60, 61, 20):
        assert meter.power_w(datetime(2026, 6, 1, 12, 0, tzinfo=JST) + timedelta(minutes=minute)) < 0


def test_buys_at_night() -> None:
    meter = SimulatedMeter(PROFILE)
    assert meter.power_w(datetime(2026, 6, 1, 21, 0, tzinfo=JST)) > 0
    assert meter.power_w(datetime(2026, 6, 1, 3, 0, tzinfo=JST)) > 0


def test_power_is_deterministic() -> None:
    moment = datetime(2026, 6, 1, 12, 3, tzinfo=JST)
    assert SimulatedMeter(PROFILE).power_w(moment) == SimulatedMeter(PROFILE).power_w(moment)


def test_registers_never_decrease_over_a_day() -> None:
    meter = SimulatedMeter(PROFILE)
    start = datetime(2026, 6, 1, tzinfo=JST)
    registers = [meter.registers_kwh_at_slot(start + timedelta(minutes=30 * i)) for i in range(49)]
    forwards = [f for f, _ in registers]
    reverses = [r for _, r in registers]
    assert forwards == sorted(forwards)
    assert reverses == sorted(reverses)
    assert reverses[-1] > reverses[0]  # it sold during the day
    assert forwards[-1] > forwards[0]  # and bought at night


def test_registers_start_from_the_initial_values() -> None:
    meter = SimulatedMeter(PROFILE)
    assert meter.registers_kwh_at_slot(PROFILE.installed_at) == (1000.0, 0.0)
