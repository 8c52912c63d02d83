from __future__ import annotations

from datetime import datetime, timedelta

from echonet import smart_meter as sm
from echonet.frame import CONTROLLER, ESV, SMART_METER, Frame, Property, decode_frame, encode_frame
from echonet.sim.meter import SET_HANDLERS, MeterProfile, SimulatedMeter
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


def _ask(meter: SimulatedMeter, esv: ESV, *props: Property) -> Frame:
    answer = meter.handle(encode_frame(Frame(1, CONTROLLER, SMART_METER, esv, props)), datetime(2026, 6, 1, tzinfo=JST))
    assert answer is not None
    return decode_frame(answer)


def test_property_maps_are_the_tables_access_rules() -> None:
    answer = _ask(SimulatedMeter(PROFILE), ESV.GET, Property(0x9D), Property(0x9E), Property(0x9F))
    edts = {p.epc: p.edt.hex().upper() for p in answer.properties}
    assert edts == {
        0x9D: "048088EAEB",  # announced: 80 and 88 on change, EA and EB at every slot end
        0x9E: "02E5ED",  # Set: the history day and the history 2 request
        0x9F: "1941414160404000624300414040430202",  # Get: all 25 properties, as a bitmap
    }


def test_set_is_accepted_where_the_table_allows_it() -> None:
    assert set(SET_HANDLERS) == set(sm.epcs_with(sm.Access.SET))
    meter = SimulatedMeter(PROFILE)
    answer = _ask(meter, ESV.SETC, Property(0xE5, b"\x02"))
    assert answer.esv == ESV.SET_RES and meter.history_day == 2
    for refused in (Property(0x80, b"\x31"), Property(0xE7, bytes(4)), Property(0xE5, b"\x64"), Property(0xE5, b"")):
        answer = _ask(meter, ESV.SETC, refused)
        assert answer.esv == ESV.SETC_SNA
    assert meter.history_day == 2


def test_scale_and_clock_faults_change_what_the_meter_says() -> None:
    meter = SimulatedMeter(PROFILE)
    noon = datetime(2026, 6, 1, 12, 14, tzinfo=JST)
    meter.scale_edts[0xD3] = bytes(4)
    assert meter.property_value(0xD3, noon) == bytes(4)
    meter.correct_scale(0xD3)
    assert sm.decode_value(0xD3, meter.property_value(0xD3, noon) or b"") == PROFILE.coefficient

    def clock(now: datetime) -> datetime:
        request = encode_frame(Frame(1, CONTROLLER, SMART_METER, ESV.GET, (Property(0x97), Property(0x98))))
        values = {p.epc: sm.decode_value(p.epc, p.edt) for p in decode_frame(meter.handle(request, now) or b"").properties}
        return datetime.combine(values[0x98], values[0x97], tzinfo=JST)

    meter.set_clock_offset(timedelta(minutes=20))
    assert clock(noon) == noon + timedelta(minutes=20)
    meter.restore_clock()
    meter.freeze_clock(noon)
    assert clock(noon + timedelta(hours=1)) == noon
    meter.restore_clock()
    stray = decode_frame(meter.stray_fixed_time_inf(noon))
    stamps = {sm.decode_value(p.epc, p.edt).time for p in stray.properties}
    assert stamps == {datetime(2026, 6, 1, 13, 0, tzinfo=JST)}  # 46 minutes ahead, on a boundary


def _request(meter: SimulatedMeter, esv: ESV, props: tuple[Property, ...], now: datetime) -> Frame | None:
    answer = meter.handle(encode_frame(Frame(7, CONTROLLER, SMART_METER, esv, props)), now)
    return None if answer is None else decode_frame(answer)


def test_history_faults_refuse_e5_leave_e2_unanswered_and_misstate_a_day() -> None:
    """The faults `pms sim --fault e5-refused|e2-silent|history-mismatch` give a collector to handle."""
    meter = SimulatedMeter(PROFILE)
    now = datetime(2026, 6, 1, 10, 5, tzinfo=JST)
    set_e5 = (Property(0xE5, sm.HISTORY_DAY.encode(0)),)
    get_e2 = (Property(0xE2),)
    meter.refuse_history_day(until=now + timedelta(minutes=10))
    refused = _request(meter, ESV.SETC, set_e5, now)
    assert refused is not None and refused.esv == ESV.SETC_SNA
    accepted = _request(meter, ESV.SETC, set_e5, now + timedelta(minutes=10))
    assert accepted is not None and accepted.esv == ESV.SET_RES

    meter.silence_history(until=now + timedelta(minutes=10))
    assert _request(meter, ESV.GET, get_e2, now) is None
    power = _request(meter, ESV.GET, (Property(0xE7),), now)
    assert power is not None and power.esv == ESV.GET_RES  # only the history is silent
    assert _request(meter, ESV.GET, get_e2, now + timedelta(minutes=10)) is not None

    later = now + timedelta(minutes=10)
    live = sm.decode_value(0xEA, meter.property_value(0xEA, later) or b"")
    assert isinstance(live, sm.TimedRegister)
    meter.misstate_history(later.replace(hour=0, minute=0), later)
    answer = _request(meter, ESV.GET, get_e2, later)
    assert answer is not None
    history = sm.decode_value(0xE2, answer.properties[0].edt)
    assert isinstance(history, sm.DayHistory)
    assert history.raw[20] == live.raw + 1  # 10:00 is index 20: one step above what EA said live


def test_the_registers_are_added_up_a_step_at_a_time_to_the_same_sums() -> None:
    installed = datetime(2026, 5, 1, tzinfo=sm.JST)
    now = datetime(2026, 5, 3, 10, 0, tzinfo=sm.JST)
    stepwise, at_once = (SimulatedMeter(MeterProfile(installed_at=installed)) for _ in range(2))
    steps = 1
    while stepwise.add_up_registers(now, 10):
        steps += 1
    assert steps == 12  # 106 slots, ten at a time
    assert stepwise.add_up_registers(now, 10) is False
    assert stepwise.registers_kwh_at_slot(now) == at_once.registers_kwh_at_slot(now)
