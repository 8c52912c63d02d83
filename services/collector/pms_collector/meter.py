"""Reading the meter through a link: ECHONET Lite Get requests in, typed readings out.

A link is the narrow seam of the collector (serial Wi-SUN module, LAN, or the in-process
simulated meter): it carries one request frame and returns the meter's answer frame.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from echonet import smart_meter as sm
from echonet.errors import EchonetError
from echonet.frame import CONTROLLER, ESV, SMART_METER, Frame, Property, decode_frame, encode_frame
from echonet.meter_sim import MeterProfile, SimulatedMeter
from pms_common import timeutil
from pms_common.messages import EnergyReading, PowerReading


class MeterReadError(Exception):
    """The meter did not answer usefully (timeout, Get_SNA, wrong frame)."""


class MeterLink(Protocol):
    async def exchange(self, request: bytes, timeout_s: float) -> bytes: ...

    @property
    def family(self) -> str: ...


class SimulatedMeterLink:
    """The in-process simulated meter: frames still go through the real codec both ways."""

    family = "sim"

    def __init__(self, profile: MeterProfile, clock: Callable[[], datetime] = timeutil.now_jst) -> None:
        self.meter = SimulatedMeter(profile)
        self.clock = clock

    async def exchange(self, request: bytes, timeout_s: float) -> bytes:
        # The model integrates a year of slots on first use; keep that off the event loop.
        answer = await asyncio.to_thread(self.meter.handle, request, self.clock())
        if answer is None:
            raise MeterReadError("the simulated meter did not answer")
        return answer


@dataclass(frozen=True)
class RegisterScale:
    coefficient: int
    unit: float
    digits: int

    def kwh(self, raw: int) -> float:
        return sm.register_kwh(raw, self.coefficient, self.unit)

    @property
    def wrap_kwh(self) -> float:
        return sm.register_wrap_kwh(self.digits, self.coefficient, self.unit)


class MeterReader:
    def __init__(self, link: MeterLink, *, timeout_s: float) -> None:
        self.link = link
        self.timeout_s = timeout_s
        self._tid = 0
        self.scale: RegisterScale | None = None

    async def get(self, *epcs: int) -> dict[int, bytes]:
        self._tid = (self._tid + 1) & 0xFFFF
        request = Frame(self._tid, CONTROLLER, SMART_METER, ESV.GET, tuple(Property(epc) for epc in epcs))
        raw = await self.link.exchange(encode_frame(request), self.timeout_s)
        try:
            answer = decode_frame(raw)
        except EchonetError as exc:
            raise MeterReadError(f"meter answered with a bad frame: {exc}") from exc
        if answer.tid != self._tid:
            raise MeterReadError(f"answer TID {answer.tid} does not match request TID {self._tid}")
        if answer.esv != ESV.GET_RES:
            missing = [f"{p.epc:02X}" for p in answer.properties if not p.edt]
            raise MeterReadError(f"meter refused Get (ESV 0x{answer.esv:02X}) for EPC {', '.join(missing)}")
        return {p.epc: p.edt for p in answer.properties}

    async def read_scale(self) -> RegisterScale:
        values = await self.get(0xD3, 0xE1, 0xD7)
        self.scale = RegisterScale(
            coefficient=sm.decode_value(0xD3, values[0xD3]),
            unit=sm.decode_value(0xE1, values[0xE1]),
            digits=sm.decode_value(0xD7, values[0xD7]),
        )
        return self.scale

    async def read_power(self, measured_at: datetime) -> PowerReading | None:
        values = await self.get(0xE7, 0xE8)
        watts = sm.decode_value(0xE7, values[0xE7])
        if watts is None:
            return None
        currents: sm.Currents = sm.decode_value(0xE8, values[0xE8])
        return PowerReading(measured_at=measured_at, power_w=watts, current_r_a=currents.r_a,
                            current_t_a=currents.t_a)

    async def read_fixed_time_energy(self) -> EnergyReading | None:
        """The EA/EB registers of the last slot end, stamped with the meter's own time."""
        scale = self.scale or await self.read_scale()
        values = await self.get(0xEA, 0xEB)
        forward: sm.TimedRegister = sm.decode_value(0xEA, values[0xEA])
        reverse: sm.TimedRegister = sm.decode_value(0xEB, values[0xEB])
        if forward.time != reverse.time:
            raise MeterReadError("EA and EB carry different slot times")
        slot_end = timeutil.slot_end_at_or_before(forward.time)
        if forward.raw is None and reverse.raw is None:
            return None
        return EnergyReading(
            slot_end=slot_end,
            forward_kwh=None if forward.raw is None else scale.kwh(forward.raw),
            reverse_kwh=None if reverse.raw is None else scale.kwh(reverse.raw),
            register_wrap_kwh=scale.wrap_kwh,
        )
