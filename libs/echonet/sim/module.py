"""A virtual Wi-SUN module with a 0x0288 meter behind it, sans-IO: command bytes in, module bytes out.

It answers as BP35A1 (single-hop) or BP35C0 (dual-stack) modules do, byte for byte: echo, OK/FAIL
codes, EVENT lines with or without a side, EPANDESC, PANA join events, ERXUDP in hex or binary as
ROPT/WOPT say. It checks argument counts per family (FAIL ER05), so a client using the other
family's command forms fails here as it would in the field. Faults are injected with `inject`.
Time: `now` is the caller's monotonic clock; the meter sees `meter_clock(now)` (accelerated).

This module holds the byte interface (command framing, scheduled output, the meter's INF pushes) and
fault injection; the command handlers are in `module_sim_commands`, the configuration, state and
output formatting in `module_sim_state` (`ModuleConfig` is re-exported here).
"""

from __future__ import annotations

import enum
from datetime import datetime

from echonet.sim.meter import SLOT_S
from echonet.sim.module_commands import PANA_PORT, VirtualModuleCommands
from echonet.sim.module_state import ModuleConfig

__all__ = ["PANA_PORT", "Fault", "ModuleConfig", "VirtualModule"]


class Fault(enum.StrEnum):
    NO_RESPONSE = "no-response"  # the module goes silent for a while
    SESSION_EXPIRY = "event29"  # the meter ends the PANA session (EVENT 29)
    JOIN_FAILURE = "join-failure"  # the next join fails (EVENT 24)
    ER10 = "er10"  # the next SKSENDTO answers FAIL ER10
    ARIB_LIMIT = "arib"  # EVENT 32 ... EVENT 33: no transmission meanwhile
    GARBAGE = "garbage"  # noise lines, a cut line, noise glued before a reply
    REGISTER_WRAP = "wrap"  # registers jump to just below 10^D7
    REGISTER_RESET = "reset"  # registers restart from 0


class VirtualModule(VirtualModuleCommands):
    # ---- the byte interface -------------------------------------------------------------------
    def receive_data(self, data: bytes, now: float) -> None:
        self.tick(now)
        if now < self._silent_until:
            return  # a hung module reads nothing
        self._in += data
        while (command := self._next_command()) is not None:
            self._handle(command)

    def tick(self, now: float) -> None:
        self._now = now
        if self._arib_until is not None and now >= self._arib_until:
            self._arib_until = None
            self._emit_line(self._event(0x33, self.own_ip))
        self._scheduled.sort()
        while self._scheduled and self._scheduled[0].at <= now:
            item = self._scheduled.pop(0)
            if now >= self._silent_until:
                self._out += item.data
        slot = int(self.meter_clock(now).timestamp()) // SLOT_S
        if self._last_slot is not None and slot > self._last_slot and self.joined:
            # A real meter pushes EA/EB as INF at each slot end (DESIGN §4).
            slot_end = datetime.fromtimestamp(slot * SLOT_S, self.meter_clock(now).tzinfo)
            self._emit_udp(self.meter.fixed_time_inf(slot_end))
        self._last_slot = slot

    def data_to_send(self) -> bytes:
        if self._now < self._silent_until:
            self._out.clear()
            return b""
        out = bytes(self._out)
        self._out.clear()
        return out

    def next_deadline(self) -> float | None:
        times = [item.at for item in self._scheduled]
        if self._arib_until is not None:
            times.append(self._arib_until)
        return min(times, default=None)

    # ---- faults -------------------------------------------------------------------------------
    def inject(self, fault: Fault, now: float, seconds: float = 10.0) -> None:
        self.tick(now)
        if fault is Fault.NO_RESPONSE:
            self._silent_until = now + seconds
            self._out.clear()
        elif fault is Fault.SESSION_EXPIRY:
            if self.joined:
                self.joined = False
                self._emit_line(self._event(0x29, self.meter_ip))
        elif fault is Fault.JOIN_FAILURE:
            self._join_failures += 1
        elif fault is Fault.ER10:
            self._er10 += 1
        elif fault is Fault.ARIB_LIMIT:
            self._arib_until = now + seconds
            self._emit_line(self._event(0x32, self.own_ip))
        elif fault is Fault.GARBAGE:
            noise = bytes(self.rng.randrange(256) for _ in range(24)).replace(b"\n", b"")
            self._out += noise + b"\r\nEVENT 2\r\n\r\n#!&%\r\n" + noise[:5]
        elif fault is Fault.REGISTER_WRAP:
            self.meter.force_near_wrap(self.meter_clock(now))
        elif fault is Fault.REGISTER_RESET:
            self.meter.reset_registers(self.meter_clock(now))

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
