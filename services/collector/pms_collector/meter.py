"""Reading the meter through a link: ECHONET Lite requests in, typed readings out.

A link is the narrow seam of the collector (the B-route session over a serial module or the
simulator's pty; a LAN adapter fits the same shape): it carries one request and returns the
meter's answer frame, and pushes the meter's own notifications to a callback.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Protocol, TypeVar

from echonet import smart_meter as sm
from echonet.errors import EchonetError
from echonet.frame import ESV, Frame, Property
from pms_common import timeutil
from pms_common.messages import EnergyReading, PowerReading

T = TypeVar("T")


class MeterReadError(Exception):
    """The meter did not answer usefully (timeout, Get_SNA, wrong frame, link down)."""


class MeterRefused(MeterReadError):
    """The meter answered with a refusal (Get_SNA, SetC_SNA): asking again will not help."""


class MeterLink(Protocol):
    joins: int

    async def request(self, esv: ESV, properties: Iterable[Property], timeout_s: float) -> Frame: ...


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


@dataclass(frozen=True)
class DayRegisters:
    """E2/E4 of one day: slot end → (forward, reverse) raw registers."""

    day: date
    registers: dict[datetime, tuple[int | None, int | None]]


def slot_readings_from_inf(frame: Frame, scale: RegisterScale) -> EnergyReading | None:
    """The EA/EB registers a meter pushes (INF/INFC) at a slot end, or None for other frames."""
    if frame.esv not in (ESV.INF, ESV.INFC):
        return None
    values = {p.epc: p.edt for p in frame.properties if p.edt}
    if sm.Epc.FIXED_TIME_ENERGY_FORWARD not in values and sm.Epc.FIXED_TIME_ENERGY_REVERSE not in values:
        return None
    return _energy(values, scale)


def _timed_register(spec: sm.PropertySpec[sm.TimedRegister], values: dict[int, bytes]) -> sm.TimedRegister | None:
    edt = values.get(spec.epc)
    return None if edt is None else spec.decode_edt(edt)


def _energy(values: dict[int, bytes], scale: RegisterScale, *, backfilled: bool = False) -> EnergyReading | None:
    try:
        forward = _timed_register(sm.FIXED_TIME_ENERGY_FORWARD, values)
        reverse = _timed_register(sm.FIXED_TIME_ENERGY_REVERSE, values)
    except EchonetError as exc:
        raise MeterReadError(f"the meter sent a bad EA/EB register: {exc}") from exc
    stamps = {r.time for r in (forward, reverse) if r is not None}
    if len(stamps) != 1:
        raise MeterReadError("EA and EB carry different slot times")
    slot_end = timeutil.slot_end_at_or_before(stamps.pop())
    forward_raw = forward.raw if forward is not None else None
    reverse_raw = reverse.raw if reverse is not None else None
    if forward_raw is None and reverse_raw is None:
        return None
    return EnergyReading(
        slot_end=slot_end,
        forward_kwh=None if forward_raw is None else scale.kwh(forward_raw),
        reverse_kwh=None if reverse_raw is None else scale.kwh(reverse_raw),
        register_wrap_kwh=scale.wrap_kwh,
        backfilled=backfilled,
    )


class MeterReader:
    def __init__(self, link: MeterLink, *, timeout_s: float) -> None:
        self.link = link
        self.timeout_s = timeout_s
        self.scale: RegisterScale | None = None

    async def _request(self, esv: ESV, properties: list[Property]) -> dict[int, bytes]:
        try:
            answer = await self.link.request(esv, properties, self.timeout_s)
        except EchonetError as exc:
            raise MeterReadError(str(exc)) from exc
        if answer.esv not in (ESV.GET_RES, ESV.SET_RES):
            refused = [f"{p.epc:02X}" for p in answer.properties if (not p.edt) == (esv == ESV.GET)]
            raise MeterRefused(f"meter refused (ESV 0x{answer.esv:02X}) EPC {', '.join(refused)}")
        return {p.epc: p.edt for p in answer.properties}

    async def get(self, *epcs: int) -> dict[int, bytes]:
        values = await self._request(ESV.GET, [Property(epc) for epc in epcs])
        missing = [epc for epc in epcs if epc not in values]
        if missing:
            raise MeterReadError(f"the answer lacks EPC {', '.join(f'{e:02X}' for e in missing)}")
        return values

    @staticmethod
    def _decode(spec: sm.PropertySpec[T], values: dict[int, bytes]) -> T:
        """The typed value of `spec`'s property in an answer that `get` checked holds it."""
        try:
            return spec.decode_edt(values[spec.epc])
        except EchonetError as exc:
            raise MeterReadError(f"EPC {spec.epc:02X}: {exc}") from exc

    async def read_scale(self) -> RegisterScale:
        values = await self.get(sm.Epc.COEFFICIENT, sm.Epc.ENERGY_UNIT, sm.Epc.EFFECTIVE_DIGITS)
        coefficient = self._decode(sm.COEFFICIENT, values)
        unit = self._decode(sm.ENERGY_UNIT, values)
        digits = self._decode(sm.EFFECTIVE_DIGITS, values)
        self.scale = RegisterScale(coefficient=coefficient, unit=float(unit), digits=digits)
        return self.scale

    async def read_clock(self) -> datetime:
        """The meter's own date and time (minute resolution)."""
        values = await self.get(sm.Epc.CURRENT_DATE, sm.Epc.CURRENT_TIME)
        day, clock = self._decode(sm.CURRENT_DATE, values), self._decode(sm.CURRENT_TIME, values)
        return datetime.combine(day, clock, tzinfo=timeutil.JST)

    async def read_power(self, measured_at: datetime) -> PowerReading | None:
        values = await self.get(sm.Epc.INSTANTANEOUS_POWER, sm.Epc.INSTANTANEOUS_CURRENT)
        watts = self._decode(sm.INSTANTANEOUS_POWER, values)
        if watts is None:
            return None
        currents = self._decode(sm.INSTANTANEOUS_CURRENT, values)
        return PowerReading(measured_at=measured_at, power_w=watts, current_r_a=currents.r_a,
                            current_t_a=currents.t_a)

    async def read_registers_now(self) -> tuple[float | None, float | None]:
        """E0/E3: the cumulative registers at this moment (kWh)."""
        scale = self.scale or await self.read_scale()
        values = await self.get(sm.Epc.CUMULATIVE_ENERGY_FORWARD, sm.Epc.CUMULATIVE_ENERGY_REVERSE)
        forward, reverse = (None if raw is None else scale.kwh(raw)
                            for raw in (self._decode(sm.CUMULATIVE_ENERGY_FORWARD, values),
                                        self._decode(sm.CUMULATIVE_ENERGY_REVERSE, values)))
        return forward, reverse

    async def read_fixed_time_energy(self) -> EnergyReading | None:
        """The EA/EB registers of the last slot end, stamped with the meter's own time."""
        scale = self.scale or await self.read_scale()
        return _energy(await self.get(sm.Epc.FIXED_TIME_ENERGY_FORWARD, sm.Epc.FIXED_TIME_ENERGY_REVERSE), scale)

    async def read_day(self, days_back: int, meter_today: date) -> DayRegisters:
        """E2/E4 of the day `days_back` before the meter's today (E5 set first, as the spec asks)."""
        if not 0 <= days_back <= sm.HISTORY_MAX_DAY:
            raise MeterReadError(f"the meter keeps {sm.HISTORY_MAX_DAY} days of history, not {days_back}")
        await self._request(ESV.SETC, [Property(sm.Epc.HISTORY_DAY, sm.HISTORY_DAY.encode(days_back))])
        values = await self.get(sm.Epc.HISTORY_FORWARD, sm.Epc.HISTORY_REVERSE)
        forward, reverse = self._decode(sm.HISTORY_FORWARD, values), self._decode(sm.HISTORY_REVERSE, values)
        if forward.day != days_back or reverse.day != days_back:
            raise MeterReadError(f"asked for day {days_back} back, the meter answered days {forward.day}/{reverse.day}")
        day = meter_today - timedelta(days=days_back)
        start = timeutil.day_start(day)
        # Index i holds the register at D 00:00 + 30 min × i (the meter's day is 00:00 to 23:30).
        registers = {
            start + timeutil.SLOT * index: (f, r)
            for index, (f, r) in enumerate(zip(forward.raw, reverse.raw, strict=True))
        }
        return DayRegisters(day, registers)

    def energy_at(self, slot_end: datetime, raw: tuple[int | None, int | None]) -> EnergyReading | None:
        scale = self.scale
        if scale is None or (raw[0] is None and raw[1] is None):
            return None
        return EnergyReading(
            slot_end=slot_end,
            forward_kwh=None if raw[0] is None else scale.kwh(raw[0]),
            reverse_kwh=None if raw[1] is None else scale.kwh(raw[1]),
            register_wrap_kwh=scale.wrap_kwh,
            backfilled=True,
        )
