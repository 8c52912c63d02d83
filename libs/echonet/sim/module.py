"""A virtual Wi-SUN module with a 0x0288 meter behind it, sans-IO: command bytes in, module bytes out.

It answers as BP35A1 (single-hop) or BP35C0 (dual-stack) modules do, byte for byte: echo, OK/FAIL
codes, EVENT lines with or without a side, EPANDESC, PANA join events, ERXUDP in hex or binary as
ROPT/WOPT say. It checks argument counts per family (FAIL ER05), so a client using the other
family's command forms fails here as it would in the field. Faults are injected with `inject`.
Time: `now` is the caller's monotonic clock; the meter sees `meter_clock(now)` (accelerated).

`VirtualModule` holds the byte interface (command framing, scheduled output, the meter's INF pushes)
and fault injection. It owns the parts it is composed of and hands each what it needs: the
`ModuleState` (registers, keys, joined, armed faults) and the `ModuleWriter` (output now or later)
from `module_state`, and the `ModuleCommands` handler from `module_commands`, which reads and
changes that state and writes through that writer. `ModuleConfig` is re-exported here.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from datetime import datetime, timedelta

from echonet.sim.meter import SLOT_S, SimulatedMeter
from echonet.sim.module_commands import PANA_PORT, ModuleCommands
from echonet.sim.module_state import ModuleConfig, ModuleState, ModuleWriter

__all__ = ["PANA_PORT", "Fault", "ModuleConfig", "VirtualModule"]


class Fault(enum.StrEnum):
    NO_RESPONSE = "no-response"  # the module goes silent for a while
    SESSION_EXPIRY = "event29"  # the meter ends the PANA session (EVENT 29)
    JOIN_FAILURE = "join-failure"  # the next join fails (EVENT 24)
    NO_HISTORY = "no-history"  # the meter answers Get_SNA for E2/E4 from then on
    ER10 = "er10"  # the next SKSENDTO answers FAIL ER10
    ARIB_LIMIT = "arib"  # EVENT 32 ... EVENT 33: no transmission meanwhile
    GARBAGE = "garbage"  # noise lines, a cut line, noise glued before a reply
    REGISTER_WRAP = "wrap"  # registers jump to just below 10^D7
    REGISTER_RESET = "reset"  # registers restart from 0
    # The meter's settings and clock, for SECONDS, then corrected:
    SCALE_ZERO = "scale-zero"  # D3 (coefficient) reads 0
    SCALE_UNIT = "scale-unit"  # E1 (unit) reads 0x05, a code the class does not define
    SCALE_DIGITS = "scale-digits"  # D7 (effective digits) reads 9
    CLOCK_AHEAD = "clock-ahead"  # the meter's clock runs 20 minutes ahead
    CLOCK_FROZEN = "clock-frozen"  # the meter's clock stops
    STRAY_INF = "stray-inf"  # one EA/EB push stamped up to an hour ahead of the meter's clock
    # The meter's history:
    HISTORY_MISMATCH = "history-mismatch"  # E2 of the meter's day so far reads a step above the live EA
    HISTORY_DAY_REFUSED = "e5-refused"  # the meter refuses the E5 day Set for SECONDS
    HISTORY_SILENT = "e2-silent"  # the meter leaves E2/E4 Gets unanswered for SECONDS


# The bad EDTs the scale faults serve, and how far the clock-ahead fault moves the clock.
SCALE_FAULT_EDTS = {Fault.SCALE_ZERO: (0xD3, bytes(4)), Fault.SCALE_UNIT: (0xE1, b"\x05"),
                    Fault.SCALE_DIGITS: (0xD7, b"\x09")}
CLOCK_AHEAD_BY = timedelta(minutes=20)


class VirtualModule:
    def __init__(self, config: ModuleConfig, meter: SimulatedMeter, meter_clock: Callable[[float], datetime],
                 rng: random.Random | None = None) -> None:
        self.config = config
        self.meter = meter
        self.meter_clock = meter_clock
        self.rng = rng or random.Random(1)
        self.state = ModuleState(config)
        self._output = ModuleWriter(self.state, self.rng)
        self._commands = ModuleCommands(self.state, self._output, meter, meter_clock)
        self._in = bytearray()
        self._silent_until = 0.0  # a hung module (fault injection) reads and writes nothing until then
        self._last_slot: int | None = None
        self._corrections: list[tuple[float, Callable[[], None]]] = []  # (when, undo) of timed meter faults

    # ---- the module's state, as a test inspects it ------------------------------------------------
    @property
    def registers(self) -> dict[str, str]:
        return self.state.registers

    @property
    def joined(self) -> bool:
        return self.state.joined

    @property
    def hex_payload(self) -> bool:
        return self.state.hex_payload

    @property
    def flash_writes(self) -> int:
        return self.state.flash_writes

    @property
    def meter_ip(self) -> str:
        return self.state.meter_ip

    @property
    def own_ip(self) -> str:
        return self.state.own_ip

    # ---- the byte interface -------------------------------------------------------------------
    def receive_data(self, data: bytes, now: float) -> None:
        self.tick(now)
        if now < self._silent_until:
            return  # a hung module reads nothing
        self._in += data
        while (command := self._next_command()) is not None:
            self._commands.handle(command)

    def tick(self, now: float) -> None:
        state = self.state
        state.now = now
        if state.arib_until is not None and now >= state.arib_until:
            state.arib_until = None
            self._output.line(self._output.event(0x33, state.own_ip))
        for data in self._output.pop_due(now):
            if now >= self._silent_until:
                self._output.write(data)
        for correction in [c for c in self._corrections if now >= c[0]]:
            self._corrections.remove(correction)
            correction[1]()
        shown = self.meter.displayed_time(self.meter_clock(now))
        slot = int(shown.timestamp()) // SLOT_S
        if self._last_slot is not None and slot > self._last_slot and state.joined:
            # A real meter pushes EA/EB (the fixed-time registers) as INF at the end of each 30-minute slot.
            slot_end = datetime.fromtimestamp(slot * SLOT_S, shown.tzinfo)
            self._output.udp(self.meter.fixed_time_inf(slot_end))
        self._last_slot = slot

    def data_to_send(self) -> bytes:
        if self.state.now < self._silent_until:
            self._output.discard()
            return b""
        return self._output.take()

    def next_deadline(self) -> float | None:
        """The earliest time `tick` has work to do: scheduled output, the end of an ARIB pause, the
        correction of a timed meter fault. The meter's slot-end pushes follow its clock, whose rate
        the caller knows (`slot_end_after`)."""
        times = [t for t in (self._output.next_deadline(), self.state.arib_until) if t is not None]
        times += [when for when, _ in self._corrections]
        return min(times, default=None)

    def slot_end_after(self, now: float) -> float:
        """Meter seconds from `now` until the meter's clock (as it shows it) ends its slot: the time of
        its next EA/EB push. A frozen clock shows none coming; its correction is in `next_deadline`."""
        shown = self.meter.displayed_time(self.meter_clock(now)).timestamp()
        return SLOT_S - shown % SLOT_S

    def add_up_registers(self, now: float, max_slots: int = 48) -> bool:
        """A step of the meter's register sums up to its clock's now (`SimulatedMeter.add_up_registers`);
        True while steps are left. For a caller with time to spare: answers never need it first."""
        return self.meter.add_up_registers(self.meter.displayed_time(self.meter_clock(now)), max_slots)

    # ---- faults -------------------------------------------------------------------------------
    def inject(self, fault: Fault, now: float, seconds: float = 10.0) -> None:
        self.tick(now)
        state = self.state
        if fault is Fault.NO_RESPONSE:
            self._silent_until = now + seconds
            self._output.discard()
        elif fault is Fault.SESSION_EXPIRY:
            if state.joined:
                state.joined = False
                self._output.line(self._output.event(0x29, state.meter_ip))
        elif fault is Fault.JOIN_FAILURE:
            state.join_failures += 1
        elif fault is Fault.ER10:
            state.er10 += 1
        elif fault is Fault.ARIB_LIMIT:
            state.arib_until = now + seconds
            self._output.line(self._output.event(0x32, state.own_ip))
        elif fault is Fault.GARBAGE:
            noise = bytes(self.rng.randrange(256) for _ in range(24)).replace(b"\n", b"")
            self._output.write(noise + b"\r\nEVENT 2\r\n\r\n#!&%\r\n" + noise[:5])
        elif fault is Fault.REGISTER_WRAP:
            self.meter.force_near_wrap(self.meter_clock(now))
        elif fault is Fault.REGISTER_RESET:
            self.meter.reset_registers(self.meter_clock(now))
        elif fault is Fault.NO_HISTORY:
            self.meter.history_refused = True
        elif fault in SCALE_FAULT_EDTS:
            epc, edt = SCALE_FAULT_EDTS[fault]
            self.meter.scale_edts[epc] = edt
            self._corrections.append((now + seconds, lambda: self.meter.correct_scale(epc)))
        elif fault is Fault.CLOCK_AHEAD:
            self.meter.set_clock_offset(CLOCK_AHEAD_BY)
            self._corrections.append((now + seconds, self.meter.restore_clock))
        elif fault is Fault.CLOCK_FROZEN:
            self.meter.freeze_clock(self.meter_clock(now))
            self._corrections.append((now + seconds, self.meter.restore_clock))
        elif fault is Fault.STRAY_INF and state.joined:
            self._output.udp(self.meter.stray_fixed_time_inf(self.meter_clock(now)))
        elif fault is Fault.HISTORY_MISMATCH:
            meter_now = self.meter_clock(now)
            midnight = meter_now.replace(hour=0, minute=0, second=0, microsecond=0)
            self.meter.misstate_history(midnight, meter_now)
        elif fault is Fault.HISTORY_DAY_REFUSED:
            self.meter.refuse_history_day(self.meter_clock(now + seconds))
        elif fault is Fault.HISTORY_SILENT:
            self.meter.silence_history(self.meter_clock(now + seconds))

    # ---- command input ------------------------------------------------------------------------
    def _next_command(self) -> tuple[bytes, list[str], bytes] | None:
        buf = self._in
        del buf[: len(buf) - len(buf.lstrip(b"\r\n"))]
        if buf.startswith(b"SKSENDTO "):
            # The data follows the length field as raw bytes without a line break.
            tokens: list[str] = []
            pos = 0
            while True:
                space = buf.find(b" ", pos)
                if space < 0:
                    return None
                token = buf[pos:space].decode("ascii", "replace")
                tokens.append(token)
                pos = space + 1
                if len(tokens) >= 6 and len(token) == 4:
                    length = int(token, 16) if all(c in "0123456789ABCDEFabcdef" for c in token) else 0
                    if len(buf) < pos + length:
                        return None
                    raw = bytes(buf[: pos + length])
                    del buf[: pos + length]
                    return raw, tokens, raw[pos:]
                if len(tokens) > 8:
                    raw = bytes(buf[:pos])
                    del buf[:pos]
                    return raw, tokens, b""
        # CRLF ends most commands, but clients end ROPT/WOPT (as the manuals write them) and
        # sometimes every command with a bare CR: either byte ends a line, empty lines are skipped.
        end = min((i for i in (buf.find(b"\r"), buf.find(b"\n")) if i >= 0), default=-1)
        if end < 0:
            return None
        raw = bytes(buf[:end]) + b"\r\n"
        del buf[: end + 1]
        return raw, raw[:-2].decode("ascii", "replace").split(" "), b""
