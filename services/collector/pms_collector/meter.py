"""Reading the meter through a link: ECHONET Lite requests in, typed readings out.

A link is the narrow seam of the collector (the B-route session over a serial module or the
simulator's pty; a LAN adapter fits the same shape): it carries one request and returns the
meter's answer frame, and pushes the meter's own notifications to a callback.
"""

from __future__ import annotations

import logging
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
log = logging.getLogger(__name__)

# A register stamp this close to a slot boundary is that boundary (a meter that stamps when it
# sampled, a few seconds late); further off, the stamp names no slot the collector can trust.
STAMP_TOLERANCE = timedelta(seconds=60)
# What the class allows for D3 and D7; E1 is checked against the codes the class defines.
COEFFICIENT_RANGE = range(1, 1_000_000)
DIGITS_RANGE = range(1, 9)
_REQUEST_NAMES = {ESV.GET: "Get", ESV.SETC: "SetC", ESV.SETI: "SetI", ESV.INF_REQ: "INF_REQ", ESV.SETGET: "SetGet"}


class MeterReadError(Exception):
    """The meter did not answer usefully (timeout, Get_SNA, wrong frame, link down)."""


class MeterRefused(MeterReadError):
    """The meter answered a request with a refusal (Get_SNA: it has no such property; SetC_SNA: it
    did not take the value). `request` is the ESV that was refused."""

    def __init__(self, message: str, request: ESV) -> None:
        super().__init__(message)
        self.request = request


class ScaleRefused(MeterReadError):
    """D3, E1 or D7 hold a value no energy register can be scaled by: energy is not read until the
    meter reports a valid scale (power is, meanwhile)."""


class SlotStampError(MeterReadError):
    """EA/EB carry a stamp that names no 30-minute slot (or two different ones): not stored."""


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
    slot_end = _slot_of_stamps({"EA": forward, "EB": reverse})
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


def _clock_text(moment: datetime) -> str:
    return moment.astimezone(timeutil.JST).strftime("%H:%M:%S")


def _offset_text(offset: timedelta) -> str:
    seconds = abs(offset.total_seconds())
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} minutes"


def _slot_of_stamps(registers: dict[str, sm.TimedRegister | None]) -> datetime:
    """The slot EA/EB name: each stamp is taken as the nearest boundary when within STAMP_TOLERANCE."""
    slots: dict[str, datetime] = {}
    off: dict[datetime, list[str]] = {}
    for name, register in registers.items():
        if register is None:
            continue
        stamp = register.time
        nearest = timeutil.slot_end_at_or_before(stamp + timeutil.SLOT / 2)
        if abs(stamp - nearest) > STAMP_TOLERANCE:
            off.setdefault(stamp, []).append(name)
        elif stamp != nearest:
            log.info("%s is stamped %s, %s off the 30-minute boundary: taken as the slot ending %s", name,
                     _clock_text(stamp), _offset_text(stamp - nearest), nearest.astimezone(timeutil.JST)
                     .strftime("%H:%M"))
        slots[name] = nearest
    for stamp, names in off.items():
        nearest = timeutil.slot_end_at_or_before(stamp + timeutil.SLOT / 2)
        raise SlotStampError(f"{' and '.join(names)} {'are' if len(names) > 1 else 'is'} stamped "
                             f"{_clock_text(stamp)}, {_offset_text(stamp - nearest)} off the 30-minute boundary: "
                             "the reading is not stored (the slot is read again, or refilled from the E2/E4 history)")
    distinct = sorted(set(slots.values()), reverse=True)
    if len(distinct) > 1:
        named = " and ".join(s.astimezone(timeutil.JST).strftime("%H:%M") for s in distinct)
        raise SlotStampError(f"EA and EB name different slots ({named}): the reading is not stored "
                             "(the slot is read again, or refilled from the E2/E4 history)")
    if not distinct:
        raise SlotStampError("the meter sent neither EA nor EB")
    return distinct[0]


def check_scale(coefficient: int, unit_code: int, digits: int) -> RegisterScale:
    """The register scale D3/E1/D7 describe, or ScaleRefused naming the first impossible one."""
    problem = None
    if coefficient not in COEFFICIENT_RANGE:
        problem = f"D3 (the energy coefficient) is {coefficient}, outside 1–999999"
    elif unit_code not in sm.UNIT_MULTIPLIERS:
        problem = f"E1 (the energy unit) is code 0x{unit_code:02X}, which the 0x0288 class does not define"
    elif digits not in DIGITS_RANGE:
        problem = f"D7 (the effective digits) is {digits}, outside 1–8"
    if problem is not None:
        raise ScaleRefused(f"{problem}: no energy is read from this meter until it reports a valid scale")
    return RegisterScale(coefficient=coefficient, unit=sm.UNIT_MULTIPLIERS[unit_code], digits=digits)


class MeterReader:
    def __init__(self, link: MeterLink, *, timeout_s: float) -> None:
        self.link = link
        self.timeout_s = timeout_s
        self.scale: RegisterScale | None = None
        # Why the scale the meter reports was refused (one sentence), or None while it is valid.
        self.scale_problem: str | None = None

    @property
    def scale_checked(self) -> bool:
        """The scale was read (and found valid or refused) since the reader was made."""
        return self.scale is not None or self.scale_problem is not None

    async def _request(self, esv: ESV, properties: list[Property]) -> dict[int, bytes]:
        try:
            answer = await self.link.request(esv, properties, self.timeout_s)
        except EchonetError as exc:
            raise MeterReadError(str(exc)) from exc
        if answer.esv not in (ESV.GET_RES, ESV.SET_RES):
            asked = ", ".join(f"{p.epc:02X}" + (f" = {p.edt.hex().upper()}" if p.edt else "") for p in properties)
            request = _REQUEST_NAMES.get(esv, f"ESV 0x{esv:02X}")
            what = f"the meter refused the {request} of {asked} (ESV 0x{answer.esv:02X})"
            # A Get_SNA leaves what it lacks empty; a Set_SNA echoes the value it did not take.
            refused = [f"{p.epc:02X}" for p in answer.properties if (not p.edt) == (esv == ESV.GET)]
            if not refused:
                raise MeterRefused(f"{what} and named no property", esv)
            reason = "it has no" if esv == ESV.GET else "it did not take"
            raise MeterRefused(f"{what}: {reason} EPC {', '.join(refused)}", esv)
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
        """D3/E1/D7, checked: ScaleRefused (and no scale) when one of them is impossible."""
        values = await self.get(sm.Epc.COEFFICIENT, sm.Epc.ENERGY_UNIT, sm.Epc.EFFECTIVE_DIGITS)
        coefficient = self._decode(sm.COEFFICIENT, values)
        digits = self._decode(sm.EFFECTIVE_DIGITS, values)
        unit_edt = values[sm.Epc.ENERGY_UNIT]
        if len(unit_edt) != 1:
            raise MeterReadError(f"EPC E1: {len(unit_edt)} bytes where the class has 1")
        try:
            self.scale = check_scale(coefficient, unit_edt[0], digits)
        except ScaleRefused as exc:
            self.scale, self.scale_problem = None, str(exc)
            raise
        self.scale_problem = None
        return self.scale

    async def _valid_scale(self) -> RegisterScale:
        if self.scale is not None:
            return self.scale
        return await self.read_scale()

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
        scale = await self._valid_scale()
        values = await self.get(sm.Epc.CUMULATIVE_ENERGY_FORWARD, sm.Epc.CUMULATIVE_ENERGY_REVERSE)
        forward, reverse = (None if raw is None else scale.kwh(raw)
                            for raw in (self._decode(sm.CUMULATIVE_ENERGY_FORWARD, values),
                                        self._decode(sm.CUMULATIVE_ENERGY_REVERSE, values)))
        return forward, reverse

    async def read_fixed_time_energy(self) -> EnergyReading | None:
        """The EA/EB registers of the last slot end, stamped with the meter's own time."""
        scale = await self._valid_scale()
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
