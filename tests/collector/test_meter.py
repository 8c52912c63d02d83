from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta

import pytest

from echonet import smart_meter as sm
from echonet.errors import RequestError
from echonet.frame import CONTROLLER, ESV, SMART_METER, Frame, Property, decode_frame, encode_frame
from echonet.sim.meter import MeterProfile, SimulatedMeter
from pms_collector.meter import (
    MeterReader,
    MeterReadError,
    RegisterScale,
    ScaleRefused,
    SlotStampError,
    slot_readings_from_inf,
)
from pms_common.messages import EnergyReading, PowerReading
from pms_common.timeutil import JST

NOON = datetime(2026, 6, 1, 12, 0, tzinfo=JST)
# A recent installation keeps the simulator's register integration short.
PROFILE = MeterProfile(seed=7, installed_at=datetime(2026, 5, 30, tzinfo=JST), coefficient=10, unit=0.01, digits=6,
                       initial_forward_kwh=1234.5, initial_reverse_kwh=56.7)


class ScriptedLink:
    """Answers each request with the frame `answer(request_frame)` builds (bytes, through the codec)."""

    joins = 1

    def __init__(self, answer: Callable[[Frame], bytes]) -> None:
        self.answer = answer
        self.requests: list[Frame] = []
        self._tid = 0

    async def request(self, esv: ESV, properties: Iterable[Property], timeout_s: float) -> Frame:
        self._tid += 1
        frame = Frame(self._tid, CONTROLLER, SMART_METER, esv, tuple(properties))
        self.requests.append(frame)
        return decode_frame(self.answer(decode_frame(encode_frame(frame))))


class MeterModelLink(ScriptedLink):
    """The simulated meter's frames, as the session would hand them over (minus the radio)."""

    def __init__(self, clock: Callable[[], datetime] = lambda: NOON, profile: MeterProfile = PROFILE) -> None:
        self.meter = SimulatedMeter(profile)

        def answer(request: Frame) -> bytes:
            reply = self.meter.handle(encode_frame(request), clock())
            assert reply is not None
            return reply

        super().__init__(answer)


def _link(clock: Callable[[], datetime] = lambda: NOON, profile: MeterProfile = PROFILE) -> MeterModelLink:
    return MeterModelLink(clock, profile)


def _reply(request: Frame, values: dict[int, bytes], *, esv: int = ESV.GET_RES) -> bytes:
    props = tuple(Property(p.epc, values.get(p.epc, b"")) for p in request.properties)
    return encode_frame(Frame(request.tid, SMART_METER, CONTROLLER, esv, props))


def test_read_scale() -> None:
    reader = MeterReader(_link(), timeout_s=1.0)
    scale = asyncio.run(reader.read_scale())
    assert scale == RegisterScale(coefficient=10, unit=0.01, digits=6)
    assert reader.scale == scale
    assert scale.kwh(12345) == 1234.5
    assert scale.wrap_kwh == 100_000.0


def test_read_power_keeps_the_meter_sign_convention() -> None:
    link = _link()
    reading = asyncio.run(MeterReader(link, timeout_s=1.0).read_power(NOON))
    assert isinstance(reading, PowerReading)
    expected = link.meter.power_w(NOON)
    assert expected < 0  # a June noon sells
    assert reading.power_w == expected
    assert reading.sold_power_w == -expected
    assert reading.measured_at == NOON
    assert reading.current_r_a == pytest.approx(round(expected / 200 / 2, 1))
    assert reading.current_t_a == reading.current_r_a


def test_read_power_at_night_buys() -> None:
    night = datetime(2026, 6, 1, 21, 0, tzinfo=JST)
    link = _link(lambda: night)
    reading = asyncio.run(MeterReader(link, timeout_s=1.0).read_power(night))
    assert reading is not None
    assert reading.power_w == link.meter.power_w(night) > 0
    assert reading.sold_power_w == 0


def test_read_fixed_time_energy() -> None:
    clock_time = NOON + timedelta(minutes=10, seconds=7)
    link = _link(lambda: clock_time)
    reading = asyncio.run(MeterReader(link, timeout_s=1.0).read_fixed_time_energy())
    assert isinstance(reading, EnergyReading)
    assert reading.slot_end == NOON
    assert reading.slot_end.minute % 30 == 0
    assert reading.slot_end.second == 0
    forward, reverse = link.meter.registers_kwh_at_slot(NOON)
    step = PROFILE.coefficient * PROFILE.unit
    # kWh = raw × coefficient × unit, raw being the register in steps of coefficient × unit.
    raw_forward = int(forward / step + 1e-9)
    raw_reverse = int(reverse / step + 1e-9)
    assert reading.forward_kwh == round(raw_forward * 10 * 0.01, 6)
    assert reading.reverse_kwh == round(raw_reverse * 10 * 0.01, 6)
    assert reading.forward_kwh == pytest.approx(forward, abs=step)
    assert reading.reverse_kwh == pytest.approx(reverse, abs=step)
    assert reading.reverse_kwh > PROFILE.initial_reverse_kwh  # it sold during the past days
    assert reading.register_wrap_kwh == 100_000.0
    assert reading.backfilled is False


def test_energy_reads_the_scale_once() -> None:
    link = _link()
    reader = MeterReader(link, timeout_s=1.0)

    async def twice() -> None:
        await reader.read_fixed_time_energy()
        await reader.read_fixed_time_energy()

    asyncio.run(twice())
    epcs = [[p.epc for p in r.properties] for r in link.requests]
    assert epcs == [[0xD3, 0xE1, 0xD7], [0xEA, 0xEB], [0xEA, 0xEB]]


def test_link_errors_become_read_errors() -> None:
    class DownLink(ScriptedLink):
        async def request(self, esv: ESV, properties: Iterable[Property], timeout_s: float) -> Frame:
            raise RequestError("the B-route session is backoff, not ready")

    with pytest.raises(MeterReadError, match="not ready"):
        asyncio.run(MeterReader(DownLink(lambda r: b""), timeout_s=1.0).read_power(NOON))


def test_get_sna_is_a_read_error() -> None:
    reader = MeterReader(_link(), timeout_s=1.0)
    with pytest.raises(MeterReadError, match=r"ESV 0x52\): it has no EPC C0"):
        asyncio.run(reader.get(0xE7, 0xC0))


def test_scripted_get_sna_on_power() -> None:
    link = ScriptedLink(lambda req: _reply(req, {0xE7: sm.encode_value(0xE7, 5)}, esv=ESV.GET_SNA))
    with pytest.raises(MeterReadError, match="EPC E8"):
        asyncio.run(MeterReader(link, timeout_s=1.0).read_power(NOON))


def test_power_no_data_gives_none() -> None:
    link = ScriptedLink(lambda req: _reply(req, {0xE7: sm.NO_DATA_POWER.to_bytes(4, "big"),
                                                 0xE8: sm.encode_value(0xE8, sm.Currents(None, None))}))
    assert asyncio.run(MeterReader(link, timeout_s=1.0).read_power(NOON)) is None


def test_energy_with_different_slot_times_is_a_read_error() -> None:
    def answer(req: Frame) -> bytes:
        if req.properties[0].epc == 0xD3:
            return _reply(req, {0xD3: sm.encode_value(0xD3, 1), 0xE1: sm.encode_value(0xE1, 0.1),
                                0xD7: sm.encode_value(0xD7, 6)})
        return _reply(req, {0xEA: sm.encode_value(0xEA, sm.TimedRegister(NOON, 100)),
                            0xEB: sm.encode_value(0xEB, sm.TimedRegister(NOON - timedelta(minutes=30), 5))})

    with pytest.raises(MeterReadError, match="name different slots"):
        asyncio.run(MeterReader(ScriptedLink(answer), timeout_s=1.0).read_fixed_time_energy())


def test_energy_with_no_data_in_both_registers_gives_none() -> None:
    def answer(req: Frame) -> bytes:
        if req.properties[0].epc == 0xD3:
            return _reply(req, {0xD3: sm.encode_value(0xD3, 1), 0xE1: sm.encode_value(0xE1, 0.1),
                                0xD7: sm.encode_value(0xD7, 6)})
        no_data = sm.encode_value(0xEA, sm.TimedRegister(NOON, 0))[:7] + sm.NO_DATA_ENERGY.to_bytes(4, "big")
        return _reply(req, {0xEA: no_data, 0xEB: no_data})

    assert asyncio.run(MeterReader(ScriptedLink(answer), timeout_s=1.0).read_fixed_time_energy()) is None


def test_meter_clock_and_history_day() -> None:
    evening = datetime(2026, 6, 1, 19, 40, 30, tzinfo=JST)
    link = _link(lambda: evening)
    reader = MeterReader(link, timeout_s=1.0)

    async def read() -> tuple[datetime, dict[datetime, tuple[int | None, int | None]]]:
        await reader.read_scale()
        clock = await reader.read_clock()
        day = await reader.read_day(1, evening.date())
        return clock, day.registers

    clock, registers = asyncio.run(read())
    assert clock == datetime(2026, 6, 1, 19, 40, tzinfo=JST)  # the meter's clock has minutes only
    assert link.meter.history_day == 1  # E5 was set before E2/E4 were read
    assert [r.esv for r in link.requests[-2:]] == [ESV.SETC, ESV.GET]
    first = datetime(2026, 5, 31, tzinfo=JST)
    assert sorted(registers) == [first + timedelta(minutes=30 * i) for i in range(48)]
    forward, reverse = link.meter.registers_kwh_at_slot(first + timedelta(hours=12))
    reading = reader.energy_at(first + timedelta(hours=12), registers[first + timedelta(hours=12)])
    assert reading is not None and reading.backfilled
    assert reading.forward_kwh == pytest.approx(forward, abs=0.1)
    assert reading.reverse_kwh == pytest.approx(reverse, abs=0.1)


def test_history_beyond_99_days_is_refused() -> None:
    with pytest.raises(MeterReadError, match="99 days"):
        asyncio.run(MeterReader(_link(), timeout_s=1.0).read_day(100, date(2026, 6, 1)))


def test_the_inf_push_gives_the_slot_registers() -> None:
    meter = SimulatedMeter(PROFILE)
    scale = RegisterScale(coefficient=10, unit=0.01, digits=6)
    reading = slot_readings_from_inf(decode_frame(meter.fixed_time_inf(NOON)), scale)
    assert isinstance(reading, EnergyReading) and reading.slot_end == NOON and not reading.backfilled
    assert slot_readings_from_inf(decode_frame(meter.instance_list_inf()), scale) is None


def _scale_answer(d3: bytes, e1: bytes, d7: bytes) -> Callable[[Frame], bytes]:
    """A meter with the given raw D3/E1/D7 EDTs whose EA/EB registers read 100 and 5 at noon."""

    def answer(req: Frame) -> bytes:
        if req.properties[0].epc == 0xD3:
            return _reply(req, {0xD3: d3, 0xE1: e1, 0xD7: d7})
        if req.properties[0].epc == 0xE0:
            return _reply(req, {0xE0: sm.encode_value(0xE0, 100), 0xE3: sm.encode_value(0xE3, 5)})
        return _reply(req, {0xEA: sm.encode_value(0xEA, sm.TimedRegister(NOON, 100)),
                            0xEB: sm.encode_value(0xEB, sm.TimedRegister(NOON, 5))})

    return answer


GOOD_D3, GOOD_E1, GOOD_D7 = sm.encode_value(0xD3, 1), sm.encode_value(0xE1, 0.1), sm.encode_value(0xD7, 6)


@pytest.mark.parametrize(("edts", "sentence"), [
    ((bytes(4), GOOD_E1, GOOD_D7), r"^D3 \(the energy coefficient\) is 0, outside 1–999999"),
    (((1_000_000).to_bytes(4, "big"), GOOD_E1, GOOD_D7), r"^D3 \(the energy coefficient\) is 1000000, outside"),
    ((GOOD_D3, b"\x05", GOOD_D7), r"^E1 \(the energy unit\) is code 0x05, which the 0x0288 class does not define"),
    ((GOOD_D3, GOOD_E1, b"\x00"), r"^D7 \(the effective digits\) is 0, outside 1–8"),
    ((GOOD_D3, GOOD_E1, b"\x09"), r"^D7 \(the effective digits\) is 9, outside 1–8"),
])
def test_an_impossible_scale_is_refused_in_one_sentence(edts: tuple[bytes, bytes, bytes], sentence: str) -> None:
    """The scale is checked when it is read; no energy value is ever computed from it, while
    power reads on. (Before: D3 = 0 was taken and EA/EB failed in pydantic on every read.)"""
    reader = MeterReader(ScriptedLink(_scale_answer(*edts)), timeout_s=1.0)
    with pytest.raises(ScaleRefused, match=sentence) as refused:
        asyncio.run(reader.read_scale())
    message = str(refused.value)
    assert message.count(". ") == 0 and message.endswith("valid scale")  # one sentence, saying what happens
    assert reader.scale is None and reader.scale_problem == message
    for read in (reader.read_fixed_time_energy, reader.read_registers_now):
        with pytest.raises(ScaleRefused, match=sentence):
            asyncio.run(read())
    assert reader.energy_at(NOON, (100, 5)) is None


def test_a_corrected_scale_is_taken_when_read_again() -> None:
    edts = [bytes(4), GOOD_E1, GOOD_D7]

    def answer(req: Frame) -> bytes:  # the EDTs as they are at each request
        return _scale_answer(*edts)(req)

    reader = MeterReader(ScriptedLink(answer), timeout_s=1.0)
    with pytest.raises(ScaleRefused):
        asyncio.run(reader.read_scale())
    edts[0] = GOOD_D3
    assert asyncio.run(reader.read_scale()) == RegisterScale(coefficient=1, unit=0.1, digits=6)
    assert reader.scale_problem is None
    reading = asyncio.run(reader.read_fixed_time_energy())
    assert reading is not None and reading.forward_kwh == 10.0


def test_a_refusal_without_properties_says_what_was_asked() -> None:
    def refuse(req: Frame) -> bytes:
        return encode_frame(Frame(req.tid, SMART_METER, CONTROLLER, ESV.SETC_SNA, ()))

    with pytest.raises(MeterReadError) as refused:
        asyncio.run(MeterReader(ScriptedLink(refuse), timeout_s=1.0).read_day(3, date(2026, 6, 1)))
    assert str(refused.value) == "the meter refused the SetC of E5 = 03 (ESV 0x51) and named no property"


def test_a_refusal_names_what_was_asked_and_what_was_refused() -> None:
    with pytest.raises(MeterReadError) as refused:
        asyncio.run(MeterReader(_link(), timeout_s=1.0).get(0xE7, 0xC0))
    assert str(refused.value) == "the meter refused the Get of E7, C0 (ESV 0x52): it has no EPC C0"


def _ea_eb(ea_stamp: datetime, eb_stamp: datetime) -> Callable[[Frame], bytes]:
    def answer(req: Frame) -> bytes:
        if req.properties[0].epc == 0xD3:
            return _reply(req, {0xD3: GOOD_D3, 0xE1: GOOD_E1, 0xD7: GOOD_D7})
        return _reply(req, {0xEA: sm.encode_value(0xEA, sm.TimedRegister(ea_stamp, 100)),
                            0xEB: sm.encode_value(0xEB, sm.TimedRegister(eb_stamp, 5))})

    return answer


def test_a_stamp_a_few_seconds_off_the_boundary_is_taken_as_that_slot(caplog: pytest.LogCaptureFixture) -> None:
    link = ScriptedLink(_ea_eb(NOON + timedelta(seconds=20), NOON))
    with caplog.at_level("INFO"):
        reading = asyncio.run(MeterReader(link, timeout_s=1.0).read_fixed_time_energy())
    assert reading is not None and reading.slot_end == NOON and reading.forward_kwh == 10.0
    assert ("EA is stamped 12:00:20, 20 s off the 30-minute boundary: taken as the slot ending 12:00"
            in caplog.text)


def test_a_stamp_far_off_the_boundary_is_named_and_not_stored() -> None:
    link = ScriptedLink(_ea_eb(NOON + timedelta(minutes=14), NOON + timedelta(minutes=14)))
    with pytest.raises(SlotStampError) as refused:
        asyncio.run(MeterReader(link, timeout_s=1.0).read_fixed_time_energy())
    assert str(refused.value) == (
        "EA and EB are stamped 12:14:00, 14 minutes off the 30-minute boundary: the reading is not stored "
        "(the slot is read again, or refilled from the E2/E4 history)")


def test_registers_naming_different_slots_are_told_apart_from_an_off_boundary_stamp() -> None:
    link = ScriptedLink(_ea_eb(NOON, NOON - timedelta(minutes=30)))
    with pytest.raises(SlotStampError, match=r"^EA and EB name different slots \(12:00 and 11:30\)"):
        asyncio.run(MeterReader(link, timeout_s=1.0).read_fixed_time_energy())
