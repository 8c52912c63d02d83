from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from echonet import smart_meter as sm
from echonet.frame import CONTROLLER, ESV, SMART_METER, Frame, Property, decode_frame, encode_frame
from echonet.meter_sim import MeterProfile
from pms_collector.meter import MeterReader, MeterReadError, RegisterScale, SimulatedMeterLink
from pms_common.messages import EnergyReading, PowerReading
from pms_common.timeutil import JST

NOON = datetime(2026, 6, 1, 12, 0, tzinfo=JST)
# A recent installation keeps the simulator's register integration short.
PROFILE = MeterProfile(seed=7, installed_at=datetime(2026, 5, 30, tzinfo=JST), coefficient=10, unit=0.01, digits=6,
                       initial_forward_kwh=1234.5, initial_reverse_kwh=56.7)


def _link(clock: Callable[[], datetime] = lambda: NOON, profile: MeterProfile = PROFILE) -> SimulatedMeterLink:
    return SimulatedMeterLink(profile, clock)


class ScriptedLink:
    """Answers each Get with a frame built by `answer(request_frame)`."""

    family = "fake"

    def __init__(self, answer: Callable[[Frame], bytes]) -> None:
        self.answer = answer
        self.requests: list[Frame] = []

    async def exchange(self, request: bytes, timeout_s: float) -> bytes:
        frame = decode_frame(request)
        self.requests.append(frame)
        return self.answer(frame)


def _reply(request: Frame, values: dict[int, bytes], *, tid: int | None = None, esv: int = ESV.GET_RES) -> bytes:
    props = tuple(Property(p.epc, values.get(p.epc, b"")) for p in request.properties)
    return encode_frame(Frame(request.tid if tid is None else tid, SMART_METER, CONTROLLER, esv, props))


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
    requests: list[bytes] = []
    original = link.exchange

    async def spy(request: bytes, timeout_s: float) -> bytes:
        requests.append(request)
        return await original(request, timeout_s)

    link.exchange = spy  # type: ignore[method-assign]
    reader = MeterReader(link, timeout_s=1.0)

    async def twice() -> None:
        await reader.read_fixed_time_energy()
        await reader.read_fixed_time_energy()

    asyncio.run(twice())
    epcs = [[p.epc for p in decode_frame(r).properties] for r in requests]
    assert epcs == [[0xD3, 0xE1, 0xD7], [0xEA, 0xEB], [0xEA, 0xEB]]


def test_tids_increase() -> None:
    link = ScriptedLink(lambda req: _reply(req, {0xD3: sm.encode_value(0xD3, 1), 0xE1: sm.encode_value(0xE1, 0.1),
                                                 0xD7: sm.encode_value(0xD7, 6)}))
    reader = MeterReader(link, timeout_s=1.0)

    async def three() -> None:
        for _ in range(3):
            await reader.read_scale()

    asyncio.run(three())
    assert [r.tid for r in link.requests] == [1, 2, 3]
    assert all(r.esv == ESV.GET and r.deoj == SMART_METER for r in link.requests)


def test_tid_mismatch_is_a_read_error() -> None:
    link = ScriptedLink(lambda req: _reply(req, {0xE7: sm.encode_value(0xE7, -100),
                                                 0xE8: sm.encode_value(0xE8, sm.Currents(-0.3, -0.2))},
                                           tid=req.tid + 100))
    with pytest.raises(MeterReadError, match="answer TID 101 does not match request TID 1"):
        asyncio.run(MeterReader(link, timeout_s=1.0).read_power(NOON))


def test_get_sna_is_a_read_error() -> None:
    reader = MeterReader(_link(), timeout_s=1.0)
    with pytest.raises(MeterReadError, match=r"ESV 0x52\) for EPC C0"):
        asyncio.run(reader.get(0xE7, 0xC0))


def test_scripted_get_sna_on_power() -> None:
    link = ScriptedLink(lambda req: _reply(req, {0xE7: sm.encode_value(0xE7, 5)}, esv=ESV.GET_SNA))
    with pytest.raises(MeterReadError, match="for EPC E8"):
        asyncio.run(MeterReader(link, timeout_s=1.0).read_power(NOON))


def test_bad_frame_is_a_read_error() -> None:
    link = ScriptedLink(lambda req: b"\x10\x81garbage")
    with pytest.raises(MeterReadError, match="bad frame"):
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

    with pytest.raises(MeterReadError, match="different slot times"):
        asyncio.run(MeterReader(ScriptedLink(answer), timeout_s=1.0).read_fixed_time_energy())


def test_energy_with_no_data_in_both_registers_gives_none() -> None:
    def answer(req: Frame) -> bytes:
        if req.properties[0].epc == 0xD3:
            return _reply(req, {0xD3: sm.encode_value(0xD3, 1), 0xE1: sm.encode_value(0xE1, 0.1),
                                0xD7: sm.encode_value(0xD7, 6)})
        no_data = sm.encode_value(0xEA, sm.TimedRegister(NOON, 0))[:7] + sm.NO_DATA_ENERGY.to_bytes(4, "big")
        return _reply(req, {0xEA: no_data, 0xEB: no_data})

    assert asyncio.run(MeterReader(ScriptedLink(answer), timeout_s=1.0).read_fixed_time_energy()) is None


def test_simulated_link_is_sim_family() -> None:
    assert _link().family == "sim"
