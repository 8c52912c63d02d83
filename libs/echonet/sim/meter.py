"""A simulated 0x0288 smart meter, sans-IO: request frame bytes and a time in, response bytes out.

The meter serves a small solar plant with a household behind it, so it buys at night and sells in
the daytime. Its registers are a deterministic function of time since its installation, so a
restarted simulator continues the same registers (as a real meter does) instead of jumping.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from echonet import node_profile as np_
from echonet import smart_meter as sm
from echonet.errors import PropertyError
from echonet.frame import CONTROLLER, EOJ, ESV, NODE_PROFILE, SMART_METER, Frame, Property, decode_frame, encode_frame

SLOT_S = 1800
_JST_OFFSET_S = 9 * 3600  # Japan keeps no summer time
_SAMPLES_PER_SLOT = 6  # 5-minute midpoints: fine enough for a smooth profile, cheap for a year
# The meter's property maps are the class table's access rules.
_GET_MAP = sm.epcs_with(sm.Access.GET)
_SET_MAP = sm.epcs_with(sm.Access.SET)
_ANNOUNCEMENT_MAP = sm.epcs_with(sm.Access.ANNOUNCED)


@dataclass(frozen=True, kw_only=True)
class MeterProfile:
    seed: int = 1
    pv_capacity_kw: float = 5.0
    base_load_w: float = 250.0
    installed_at: datetime = datetime(2026, 1, 1, tzinfo=sm.JST)
    initial_forward_kwh: float = 1000.0
    initial_reverse_kwh: float = 0.0
    coefficient: int = 1
    unit: float = 0.1
    digits: int = 6


def _noise(seed: int, *key: int) -> float:
    """Deterministic pseudo-random value in [0, 1) for the given key."""
    digest = hashlib.blake2b(repr((seed, *key)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@functools.lru_cache(maxsize=1 << 16)
def _noise_of_window(seed: int, window: int) -> float:
    """`_noise` of a day's weather or a 10-minute flicker, which many samples in a row share."""
    return _noise(seed, window)


@functools.lru_cache(maxsize=1 << 12)
def _day_of_year(day_index: int) -> int:
    """The day of the year (1 = 1 January) of Japan's day `day_index` days after 1970-01-01."""
    return (date(1970, 1, 1) + timedelta(days=day_index)).timetuple().tm_yday


@dataclass
class SimulatedMeter:
    profile: MeterProfile = field(default_factory=MeterProfile)
    history_day: int = 0  # E5
    _slot_cache: dict[int, tuple[float, float]] = field(default_factory=dict, repr=False)
    _cumulative: tuple[int, float, float] | None = field(default=None, repr=False)
    _checkpoints: dict[int, tuple[float, float]] = field(default_factory=dict, repr=False)  # every 48th slot
    # kWh added to the modelled (forward, reverse) registers: how the wrap and reset faults are made.
    offsets_kwh: list[float] = field(default_factory=lambda: [0.0, 0.0])
    history2: sm.History2Request | None = None  # ED
    history_refused: bool = False  # a meter that keeps no E2/E4 history: Get_SNA for them (fault no-history)
    # Faults of the meter's own settings: raw EDTs served instead of the profile's D3/E1/D7 (a D3
    # of 0 is the default of some meters and emulators), and a clock that is off or stopped.
    scale_edts: dict[int, bytes] = field(default_factory=dict)
    clock_offset: timedelta = timedelta(0)
    clock_frozen_at: datetime | None = None
    # History faults (meter time): E5 Sets refused until then, E2/E4 Gets unanswered until then, and
    # spans of slots (first, last slot end, steps) whose E2 history reads off the registers pushed live (EA).
    history_day_refused_until: datetime | None = None
    history_silent_until: datetime | None = None
    history_misstated: list[tuple[datetime, datetime, int]] = field(default_factory=list)

    # ---- the physical model -------------------------------------------------------------------
    def power_w(self, moment: datetime) -> int:
        """Net power at the meter: positive = buying, negative = selling (E7 sign convention)."""
        return self._power_at(moment.timestamp())

    def _power_at(self, epoch: float) -> int:
        """`power_w` at a Unix time. Japan time has a fixed offset, so the local hour and day come from
        arithmetic on `epoch` rather than a datetime (the same figures, to the bit, in a third of the time:
        a meter's first read adds up every slot since its installation, and `pms up` has a thousand)."""
        day_index, second_of_day = divmod(int(epoch + _JST_OFFSET_S), 86400)
        hour = second_of_day // 3600 + second_of_day % 3600 // 60 / 60 + second_of_day % 60 / 3600
        p = self.profile
        cloud = 0.35 + 0.65 * _noise_of_window(p.seed, day_index)  # one weather per day
        flicker = 0.9 + 0.2 * _noise_of_window(p.seed, int(epoch // 600))
        season = 0.75 + 0.25 * math.cos(2 * math.pi * (_day_of_year(day_index) - 172) / 365)
        sun = max(0.0, math.sin(math.pi * (hour - 6) / 12)) ** 1.3 if 6 < hour < 18 else 0.0
        pv = p.pv_capacity_kw * 1000 * sun * cloud * flicker * season * 0.85
        load = (
            p.base_load_w
            + 450 * math.exp(-(((hour - 7.5) / 1.0) ** 2))
            + 800 * math.exp(-(((hour - 19.5) / 1.8) ** 2))
            + 150 * _noise(p.seed, int(epoch // 60), 1)
        )
        return round(load - pv)

    def _slot_energy(self, slot_index: int) -> tuple[float, float]:
        """(forward, reverse) kWh of the slot ending at slot_index × 30 min."""
        cached = self._slot_cache.get(slot_index)
        if cached is None:
            start = (slot_index - 1) * SLOT_S
            step = SLOT_S / _SAMPLES_PER_SLOT
            forward = reverse = 0.0
            for sample in range(_SAMPLES_PER_SLOT):
                watts = self._power_at(start + (sample + 0.5) * step)
                kwh = abs(watts) * step / 3_600_000
                if watts >= 0:
                    forward += kwh
                else:
                    reverse += kwh
            cached = (forward, reverse)
            self._slot_cache[slot_index] = cached
        return cached

    def registers_kwh_at_slot(self, slot_end: datetime) -> tuple[float, float]:
        """Cumulative (forward, reverse) kWh at a slot boundary, unwrapped."""
        target = int(slot_end.timestamp()) // SLOT_S
        first = int(self.profile.installed_at.timestamp()) // SLOT_S
        if self._cumulative is None or self._cumulative[0] > target:
            # Going back (a history read): from the nearest daily checkpoint, not from the installation.
            below = [index for index in self._checkpoints if index <= target]
            if below:
                start = max(below)
                self._cumulative = (start, *self._checkpoints[start])
            else:
                self._cumulative = (first, self.profile.initial_forward_kwh, self.profile.initial_reverse_kwh)
        index, forward, reverse = self._cumulative
        while index < target:
            index += 1
            slot_forward, slot_reverse = self._slot_energy(index)
            forward += slot_forward
            reverse += slot_reverse
            if index % 48 == 0:
                self._checkpoints[index] = (forward, reverse)
        self._cumulative = (index, forward, reverse)
        return forward, reverse

    def add_up_registers(self, now: datetime, max_slots: int) -> bool:
        """Add up at most `max_slots` more slots towards the registers at `now`; True while slots are
        left. The first read of a register adds up every slot since the installation (milliseconds
        a day of them); a simulator serving many meters from one thread does it a little at a time
        beforehand, so that no meter's first answer holds up the others'."""
        target = int(now.timestamp()) // SLOT_S
        first = int(self.profile.installed_at.timestamp()) // SLOT_S
        done = self._cumulative[0] if self._cumulative is not None else first
        if done >= target:
            return False
        step = min(target, done + max_slots)
        self.registers_kwh_at_slot(datetime.fromtimestamp(step * SLOT_S, sm.JST))
        return step < target

    def registers_kwh(self, moment: datetime) -> tuple[float, float]:
        """Cumulative registers now: the last boundary plus this slot's energy so far (10 s steps)."""
        boundary = datetime.fromtimestamp(int(moment.timestamp()) // SLOT_S * SLOT_S, sm.JST)
        forward, reverse = self.registers_kwh_at_slot(boundary)
        t = boundary.timestamp()
        while t + 10 <= moment.timestamp():
            watts = self._power_at(t + 5)
            if watts >= 0:
                forward += watts * 10 / 3_600_000
            else:
                reverse += -watts * 10 / 3_600_000
            t += 10
        return forward, reverse

    def _raw(self, kwh: float, direction: int = 0) -> int:
        p = self.profile
        kwh = max(0.0, kwh + self.offsets_kwh[direction])
        return int(kwh / (p.coefficient * p.unit) + 1e-9) % int(10**p.digits)

    # ---- faults -------------------------------------------------------------------------------
    def displayed_time(self, now: datetime) -> datetime:
        """What the meter's clock shows when the world's time is `now`: everything the meter says
        (0x97/0x98, the EA/EB stamps, its pushes, its history days) follows this clock."""
        return self.clock_frozen_at if self.clock_frozen_at is not None else now + self.clock_offset

    def set_clock_offset(self, offset: timedelta) -> None:
        self.clock_offset = offset

    def freeze_clock(self, now: datetime) -> None:
        self.clock_frozen_at = self.displayed_time(now)

    def correct_scale(self, epc: int) -> None:
        self.scale_edts.pop(epc, None)

    def restore_clock(self) -> None:
        self.clock_offset = timedelta(0)
        self.clock_frozen_at = None

    def stray_fixed_time_inf(self, now: datetime, tid: int = 0) -> bytes:
        """An EA/EB push stamped at the first slot end at least 30 minutes after the meter's clock
        (e.g. 13:00 at 12:14, 46 minutes ahead), as some meters send one after a clock glitch."""
        shown = self.displayed_time(now)
        stamp = datetime.fromtimestamp((int(shown.timestamp()) // SLOT_S + 2) * SLOT_S, sm.JST)
        forward, reverse = self.registers_kwh(shown)
        props = (
            Property(0xEA, sm.encode_value(0xEA, sm.TimedRegister(stamp, self._raw(forward, 0)))),
            Property(0xEB, sm.encode_value(0xEB, sm.TimedRegister(stamp, self._raw(reverse, 1)))),
        )
        return encode_frame(Frame(tid, SMART_METER, CONTROLLER, ESV.INF, props))

    def force_near_wrap(self, now: datetime, steps_before: int = 3) -> None:
        """Move both registers to a few steps below 10^D7, so they wrap within minutes."""
        p = self.profile
        self.offsets_kwh = [0.0, 0.0]
        wrap_kwh = (10**p.digits - steps_before) * p.coefficient * p.unit
        for direction, kwh in enumerate(self.registers_kwh(now)):
            self.offsets_kwh[direction] = wrap_kwh - kwh
        self._slot_cache.clear()

    def reset_registers(self, now: datetime) -> None:
        """Registers restart from 0 (a meter replaced, or a glitch): a register going backwards."""
        self.offsets_kwh = [0.0, 0.0]
        for direction, kwh in enumerate(self.registers_kwh(now)):
            self.offsets_kwh[direction] = -kwh

    def misstate_history(self, first: datetime, last: datetime, steps: int = 1) -> None:
        """From now on, E2 serves the slots ending from `first` to `last` `steps` register steps above
        the EA it pushed live (a meter whose history and registers disagree, as some firmware does)."""
        self.history_misstated.append((first, last, steps))

    def refuse_history_day(self, until: datetime) -> None:
        """Refuse every Set of E5 (SetC_SNA) until `until` (meter time)."""
        self.history_day_refused_until = until

    def silence_history(self, until: datetime) -> None:
        """Leave every Get of E2/E4 unanswered until `until` (meter time); other requests are answered."""
        self.history_silent_until = until

    def fixed_time_inf(self, slot_end: datetime, tid: int = 0) -> bytes:
        """The INF a meter pushes at every slot end: EA and EB stamped with that slot end."""
        forward, reverse = self.registers_kwh_at_slot(slot_end)
        props = (
            Property(0xEA, sm.encode_value(0xEA, sm.TimedRegister(slot_end, self._raw(forward, 0)))),
            Property(0xEB, sm.encode_value(0xEB, sm.TimedRegister(slot_end, self._raw(reverse, 1)))),
        )
        return encode_frame(Frame(tid, SMART_METER, CONTROLLER, ESV.INF, props))

    def instance_list_inf(self, tid: int = 0) -> bytes:
        """The node profile's D5 INF a meter multicasts when a controller joins."""
        edt = np_.encode_instance_list((SMART_METER,))
        return encode_frame(Frame(tid, NODE_PROFILE, NODE_PROFILE, ESV.INF, (Property(0xD5, edt),)))

    def node_profile_value(self, epc: int) -> bytes | None:
        values: dict[int, object] = {
            0x80: 0x30,
            0x82: "010D0100",
            0x8A: "000016",
            0x9D: (0x80, 0xD5),
            0x9E: (0x80,),
            0x9F: (0x80, 0x82, 0x83, 0x8A, 0x9D, 0x9E, 0x9F, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7),
            0xD3: 1,
            0xD4: 2,
            0xD5: (SMART_METER,),
            0xD6: (SMART_METER,),
            0xD7: (0x0288,),
        }
        if epc == 0x83:
            return bytes.fromhex("FE000016") + self.profile.seed.to_bytes(13, "big")
        return np_.encode_value(epc, values[epc]) if epc in values else None

    # ---- the ECHONET Lite face ----------------------------------------------------------------
    def property_value(self, epc: int, now: datetime) -> bytes | None:
        """The EDT of `epc` at `now`, the meter's displayed time (see `displayed_time`)."""
        p = self.profile
        if epc in self.scale_edts:
            return self.scale_edts[epc]
        if epc == 0xE7:
            return sm.encode_value(epc, self.power_w(now))
        if epc == 0xE8:
            amps = self.power_w(now) / 200  # single-phase three-wire at 200 V, split over R and T
            return sm.encode_value(epc, sm.Currents(round(amps / 2, 1), round(amps / 2, 1)))
        if epc in (0xEA, 0xEB):
            boundary = datetime.fromtimestamp(int(now.timestamp()) // SLOT_S * SLOT_S, sm.JST)
            forward, reverse = self.registers_kwh_at_slot(boundary)
            raw = self._raw(forward, 0) if epc == 0xEA else self._raw(reverse, 1)
            return sm.encode_value(epc, sm.TimedRegister(boundary, raw))
        if epc in (0xE0, 0xE3):
            forward, reverse = self.registers_kwh(now)
            return sm.encode_value(epc, self._raw(forward, 0) if epc == 0xE0 else self._raw(reverse, 1))
        if epc in (0xE2, 0xE4):
            return None if self.history_refused else sm.encode_value(epc, self._history(epc, now))
        if epc == 0xEC:
            return sm.encode_value(epc, self._history2(now))
        local = now.astimezone(sm.JST)
        fixed: dict[int, object] = {
            0x80: 0x30,
            0x81: 0x00,
            0x82: "J",
            0x88: 0x42,
            0x8A: "000016",
            0x8D: f"PMS{self.profile.seed:09d}",
            0x97: local.time(),
            0x98: local.date(),
            0xED: self.history2 or sm.History2Request(
                datetime.fromtimestamp(int(now.timestamp()) // SLOT_S * SLOT_S, sm.JST), 6),
            0xD3: p.coefficient,
            0xD7: p.digits,
            0xE1: p.unit,
            0xE5: self.history_day,
            0x9F: _GET_MAP,
            0x9E: _SET_MAP,
            0x9D: _ANNOUNCEMENT_MAP,
        }
        if epc in fixed:
            return sm.encode_value(epc, fixed[epc])
        return None

    def _history(self, epc: int, now: datetime) -> sm.DayHistory:
        day_start = now.astimezone(sm.JST).replace(hour=0, minute=0, second=0, microsecond=0)
        day_start -= timedelta(days=self.history_day)
        registers: list[int | None] = []
        for index in range(48):
            boundary = day_start + timedelta(minutes=30 * index)
            if boundary > now or boundary < self.profile.installed_at:
                registers.append(None)
                continue
            forward, reverse = self.registers_kwh_at_slot(boundary)
            raw = self._raw(forward, 0) if epc == 0xE2 else self._raw(reverse, 1)
            if epc == 0xE2:
                raw += sum(steps for first, last, steps in self.history_misstated if first <= boundary <= last)
            registers.append(raw % 10**self.profile.digits)
        return sm.DayHistory(self.history_day, tuple(registers))

    def _history2(self, now: datetime) -> sm.History2:
        """EC: from the slot set in ED backwards, one (forward, reverse) pair per 30 minutes."""
        request = self.history2 or sm.History2Request(
            datetime.fromtimestamp(int(now.timestamp()) // SLOT_S * SLOT_S, sm.JST), 6)
        segments: list[tuple[int | None, int | None]] = []
        for index in range(request.segments):
            boundary = request.time - timedelta(minutes=30 * index)
            if boundary > now or boundary < self.profile.installed_at:
                segments.append((None, None))
                continue
            forward, reverse = self.registers_kwh_at_slot(boundary)
            segments.append((self._raw(forward, 0), self._raw(reverse, 1)))
        return sm.History2(request.time, tuple(segments))

    def handle(self, request: bytes, now: datetime) -> bytes | None:
        """Answer one request frame; None when the meter stays silent (not addressed to it)."""
        now = self.displayed_time(now)
        frame = decode_frame(request)
        deoj = frame.deoj
        if deoj.instance == 0:  # instance code 0 addresses every instance of the class (part II, 3.2.4)
            deoj = EOJ(deoj.class_group, deoj.class_code, 1)
        if deoj not in (SMART_METER, NODE_PROFILE):
            return None
        node = deoj == NODE_PROFILE
        source = NODE_PROFILE if node else SMART_METER
        if frame.esv in (ESV.GET, ESV.INF_REQ):
            if (not node and self.history_silent_until is not None and now < self.history_silent_until
                    and any(p.epc in (0xE2, 0xE4) for p in frame.properties)):
                return None  # the history fault: the request is lost, the meter never answers it
            answers = []
            failed = False
            for prop in frame.properties:
                edt = self.node_profile_value(prop.epc) if node else self.property_value(prop.epc, now)
                if edt is None:
                    failed = True
                    answers.append(Property(prop.epc))
                else:
                    answers.append(Property(prop.epc, edt))
            if frame.esv == ESV.INF_REQ:
                esv = ESV.INF_SNA if failed else ESV.INF
            else:
                esv = ESV.GET_SNA if failed else ESV.GET_RES
            return encode_frame(Frame(frame.tid, source, frame.seoj, esv, tuple(answers)))
        if frame.esv in (ESV.SETC, ESV.SETI):
            answers = []
            failed = False
            refusing = self.history_day_refused_until is not None and now < self.history_day_refused_until
            for prop in frame.properties:
                if refusing and prop.epc == sm.Epc.HISTORY_DAY:
                    failed = True
                    answers.append(prop)
                elif not node and self.set_property(prop.epc, prop.edt):
                    answers.append(Property(prop.epc))
                else:
                    failed = True
                    answers.append(prop)
            if frame.esv == ESV.SETI and not failed:
                return None
            esv = (ESV.SETC_SNA if frame.esv == ESV.SETC else ESV.SETI_SNA) if failed else ESV.SET_RES
            return encode_frame(Frame(frame.tid, source, frame.seoj, esv, tuple(answers)))
        return None

    # ---- Set ----------------------------------------------------------------------------------
    def set_property(self, epc: int, edt: bytes) -> bool:
        """Apply a Set of one 0x0288 property; False (refused) unless the table's access rules allow
        Set and the value is one the meter takes."""
        spec = sm.PROPERTIES.get(epc)
        if spec is None or not spec.access & sm.Access.SET:
            return False
        return SET_HANDLERS[spec.epc](self, edt)

    def _set_history_day(self, edt: bytes) -> bool:
        try:
            day = sm.HISTORY_DAY.decode_edt(edt)
        except PropertyError:
            return False
        if day > sm.HISTORY_MAX_DAY:
            return False
        self.history_day = day
        return True

    def _set_history2_request(self, edt: bytes) -> bool:
        try:
            request = sm.HISTORY_2_REQUEST.decode_edt(edt)
        except PropertyError:
            return False
        if not (1 <= request.segments <= sm.HISTORY2_MAX_SEGMENTS and request.time.minute in (0, 30)):
            return False
        self.history2 = request
        return True


# How the meter takes each Set the table allows (a test keeps the two in step).
SET_HANDLERS: dict[sm.Epc, Callable[[SimulatedMeter, bytes], bool]] = {
    sm.Epc.HISTORY_DAY: SimulatedMeter._set_history_day,
    sm.Epc.HISTORY_2_REQUEST: SimulatedMeter._set_history2_request,
}
