"""A virtual Wi-SUN module with a 0x0288 meter behind it, sans-IO: command bytes in, module bytes out.

It answers as BP35A1 (single-hop) or BP35C0 (dual-stack) modules do, byte for byte: echo, OK/FAIL
codes, EVENT lines with or without a side, EPANDESC, PANA join events, ERXUDP in hex or binary as
ROPT/WOPT say. It checks argument counts per family (FAIL ER05), so a client using the other
family's command forms fails here as it would in the field. Faults are injected with `inject`.
Time: `now` is the caller's monotonic clock; the meter sees `meter_clock(now)` (accelerated).
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from echonet import commands
from echonet.errors import FrameError
from echonet.meter_sim import SLOT_S, SimulatedMeter
from echonet.session import scan_seconds
from echonet.skstack_events import Family

PANA_PORT = 0x02CC


class Fault(enum.StrEnum):
    NO_RESPONSE = "no-response"  # the module goes silent for a while
    SESSION_EXPIRY = "event29"  # the meter ends the PANA session (EVENT 29)
    JOIN_FAILURE = "join-failure"  # the next join fails (EVENT 24)
    ER10 = "er10"  # the next SKSENDTO answers FAIL ER10
    ARIB_LIMIT = "arib"  # EVENT 32 ... EVENT 33: no transmission meanwhile
    GARBAGE = "garbage"  # noise lines, a cut line, noise glued before a reply
    REGISTER_WRAP = "wrap"  # registers jump to just below 10^D7
    REGISTER_RESET = "reset"  # registers restart from 0


@dataclass(kw_only=True)
class ModuleConfig:
    family: Family
    rbid: str
    password: str
    hex_payload: bool = True  # what ROPT answers (01 hex, 00 binary); WOPT changes it
    has_ropt: bool = True  # some firmware lacks ROPT/WOPT (FAIL ER04)
    echo: bool = True
    channel: int = 0x21
    pan_id: int = 0x8888
    meter_mac: str = "001C6400030C12A4"
    module_mac: str = "001D129012345678"
    min_scan_duration: int = 5  # the meter's beacon is heard only by scans this long or longer
    speed: float = 1.0  # scans and joins take real module time divided by this
    rssi: bool = False  # dual-stack SKSREG SA2 1: ERXUDP carries RSSI


@dataclass(order=True)
class _Scheduled:
    at: float
    seq: int
    data: bytes = field(compare=False)


class VirtualModule:
    def __init__(self, config: ModuleConfig, meter: SimulatedMeter, meter_clock: Callable[[float], datetime],
                 rng: random.Random | None = None) -> None:
        self.config = config
        self.meter = meter
        self.meter_clock = meter_clock
        self.rng = rng or random.Random(1)
        self.hex_payload = config.hex_payload
        self.joined = False
        self.flash_writes = 0
        self.registers: dict[str, str] = {"S2": "21", "S3": "FFFF", "SFE": "1" if config.echo else "0"}
        self._password: str | None = None
        self._rbid: str | None = None
        self._in = bytearray()
        self._out = bytearray()
        self._scheduled: list[_Scheduled] = []
        self._seq = 0
        self._silent_until = 0.0
        self._arib_until: float | None = None
        self._join_failures = 0
        self._er10 = 0
        self._last_slot: int | None = None
        self._now = 0.0

    @property
    def meter_ip(self) -> str:
        return commands.link_local_address(self.config.meter_mac)

    @property
    def own_ip(self) -> str:
        return commands.link_local_address(self.config.module_mac)

    @property
    def dual(self) -> bool:
        return self.config.family is Family.DUAL_STACK

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

    def _handle(self, command: tuple[bytes, list[str], bytes]) -> None:
        raw, tokens, data = command
        if self.registers.get("SFE") == "1":
            self._out += raw if raw.endswith(b"\r\n") else raw + b"\r\n"
        if any(not t.isprintable() for t in tokens):
            self._emit_line("FAIL ER09")
            return
        name, args = tokens[0], tokens[1:]
        handler = _HANDLERS.get(name)
        if handler is None:
            self._emit_line("FAIL ER04")
            return
        try:
            handler(self, args, data)
        except ValueError:
            self._emit_line("FAIL ER06")  # a number that does not parse

    # ---- output helpers -------------------------------------------------------------------------
    def _emit_line(self, line: str, delay: float = 0.0) -> None:
        data = (line + "\r\n").encode("ascii")
        if delay <= 0:
            self._out += data
        else:
            self._seq += 1
            self._scheduled.append(_Scheduled(self._now + delay / self.config.speed, self._seq, data))

    def _event(self, code: int, sender: str, param: str | None = None) -> str:
        fields = ["EVENT", f"{code:02X}", sender]
        if self.dual:
            fields.append("0")
        if param is not None:
            fields.append(param)
        return " ".join(fields)

    def _emit_udp(self, payload: bytes, port: int = commands.ECHONET_PORT, delay: float = 0.0) -> None:
        fields = ["ERXUDP", self.meter_ip, self.own_ip, f"{port:04X}", f"{port:04X}", self.config.meter_mac]
        if self.dual and (self.config.rssi or self.registers.get("SA2") == "1"):
            fields.append(str(-40 - self.rng.randrange(30)))
        fields.append("1")
        if self.dual:
            fields.append("0")
        fields.append(f"{len(payload):04X}")
        head = (" ".join(fields) + " ").encode("ascii")
        body = payload.hex().upper().encode("ascii") if self.hex_payload else payload
        record = head + body + b"\r\n"
        if delay <= 0:
            self._out += record
        else:
            self._seq += 1
            self._scheduled.append(_Scheduled(self._now + delay / self.config.speed, self._seq, record))

    def _arity(self, args: list[str], single: int, dual: int) -> bool:
        if len(args) != (dual if self.dual else single):
            self._emit_line("FAIL ER05")
            return False
        return True

    # ---- commands -------------------------------------------------------------------------------
    def _skver(self, args: list[str], data: bytes) -> None:
        self._emit_line("EVER 1.5.2" if self.dual else "EVER 1.2.10")
        self._emit_line("OK")

    def _skinfo(self, args: list[str], data: bytes) -> None:
        # Single-hop modules end with ADDR16 (FFFE: none); dual-stack ones end with the side instead.
        last = "0" if self.dual else "FFFE"
        fields = ["EINFO", self.own_ip, self.config.module_mac, self.registers["S2"], self.registers["S3"], last]
        self._emit_line(" ".join(fields))
        self._emit_line("OK")

    def _ropt(self, args: list[str], data: bytes) -> None:
        if not self.config.has_ropt:
            self._emit_line("FAIL ER04")
            return
        self._emit_line("OK 01" if self.hex_payload else "OK 00")

    def _wopt(self, args: list[str], data: bytes) -> None:
        if not self.config.has_ropt:
            self._emit_line("FAIL ER04")
        elif len(args) != 1 or args[0] not in ("00", "01"):
            self._emit_line("FAIL ER06" if len(args) == 1 else "FAIL ER05")
        else:
            self.flash_writes += 1
            self.hex_payload = args[0] == "01"
            self._emit_line("OK")

    def _sksreg(self, args: list[str], data: bytes) -> None:
        if len(args) not in (1, 2):
            self._emit_line("FAIL ER05")
        elif len(args) == 1:
            self._emit_line(f"ESREG {self.registers.get(args[0], '0')}")
            self._emit_line("OK")
        else:
            self.registers[args[0]] = args[1].upper()
            self._emit_line("OK")

    def _sksetpwd(self, args: list[str], data: bytes) -> None:
        if len(args) != 2:
            self._emit_line("FAIL ER05")
        elif int(args[0], 16) != len(args[1]):
            self._emit_line("FAIL ER06")
        else:
            self._password = args[1]
            self._emit_line("OK")

    def _sksetrbid(self, args: list[str], data: bytes) -> None:
        if len(args) != 1:
            self._emit_line("FAIL ER05")
        else:
            self._rbid = args[0]
            self._emit_line("OK")

    def _skscan(self, args: list[str], data: bytes) -> None:
        if not self._arity(args, 3, 4):
            return
        duration = int(args[2], 16)
        self._emit_line("OK")
        took = scan_seconds(duration)
        if duration >= self.config.min_scan_duration:
            side = ["  Side:0"] if self.dual else []
            self._emit_line(self._event(0x20, self.meter_ip), took * 0.5)
            block = ["EPANDESC", f"  Channel:{self.config.channel:02X}", "  Channel Page:09",
                     f"  Pan ID:{self.config.pan_id:04X}", f"  Addr:{self.config.meter_mac}", "  LQI:E1",
                     *side, "  PairID:00AB12CD"]
            self._emit_line("\r\n".join(block), took * 0.5)
        self._emit_line(self._event(0x22, self.own_ip), took)

    def _skll64(self, args: list[str], data: bytes) -> None:
        if len(args) != 1:
            self._emit_line("FAIL ER05")
        else:
            self._emit_line(commands.link_local_address(args[0]))

    def _skjoin(self, args: list[str], data: bytes) -> None:
        if len(args) != 1:
            self._emit_line("FAIL ER05")
            return
        self._emit_line("OK")
        right_pan = (self.registers["S2"] == f"{self.config.channel:02X}"
                     and self.registers["S3"] == f"{self.config.pan_id:04X}" and args[0] == self.meter_ip)
        right_keys = self._password == self.config.password and self._rbid == self.config.rbid
        # PANA: a few exchanges on UDP 716 before the result (EVENT 21 per sent packet).
        self._emit_line(self._event(0x21, args[0], "00"), 0.3)
        self._emit_udp(b"\x00\x00\x00\x1c\x80\x02\x00\x00" + bytes(20), PANA_PORT, 0.6)
        if not right_pan:
            self._emit_line(self._event(0x24, args[0]), 3.0)  # nobody answered on that channel/PAN
        elif not right_keys or self._join_failures > 0:
            self._join_failures = max(0, self._join_failures - 1)
            self._emit_line(self._event(0x24, args[0]), 1.2)
        else:
            self._emit_line(self._event(0x21, args[0], "00"), 0.9)
            self._emit_line(self._event(0x25, args[0]), 1.2)
            self.joined = True
            self._emit_udp(self.meter.instance_list_inf(), delay=1.3)

    def _sksendto(self, args: list[str], data: bytes) -> None:
        if not self._arity(args, 5, 6):
            return
        if len(data) != int(args[-1], 16):
            self._emit_line("FAIL ER06")
            return
        if self._er10 > 0 or self._arib_until is not None or not self.joined:
            self._er10 = max(0, self._er10 - 1)
            self._emit_line("FAIL ER10")
            return
        self._emit_line(self._event(0x21, args[1], "00"))
        self._emit_line("OK")
        try:
            answer = self.meter.handle(data, self.meter_clock(self._now))
        except FrameError:
            answer = None
        if answer is not None:
            self._emit_udp(answer, delay=0.2)

    def _skreset(self, args: list[str], data: bytes) -> None:
        # The stack restarts: session, keys and registers are gone; ROPT/WOPT live in flash and stay.
        self.joined = False
        self._password = self._rbid = None
        self.registers = {"S2": "21", "S3": "FFFF", "SFE": self.registers.get("SFE", "1")}
        self._scheduled.clear()
        self._emit_line("OK")

    def _skterm(self, args: list[str], data: bytes) -> None:
        if not self.joined:
            self._emit_line("FAIL ER10")
            return
        self.joined = False
        self._emit_line("OK")
        self._emit_line(self._event(0x27, self.meter_ip), 0.2)


_HANDLERS: dict[str, Callable[[VirtualModule, list[str], bytes], None]] = {
    "SKVER": VirtualModule._skver,
    "SKINFO": VirtualModule._skinfo,
    "ROPT": VirtualModule._ropt,
    "WOPT": VirtualModule._wopt,
    "SKSREG": VirtualModule._sksreg,
    "SKSETPWD": VirtualModule._sksetpwd,
    "SKSETRBID": VirtualModule._sksetrbid,
    "SKSCAN": VirtualModule._skscan,
    "SKLL64": VirtualModule._skll64,
    "SKJOIN": VirtualModule._skjoin,
    "SKSENDTO": VirtualModule._sksendto,
    "SKTERM": VirtualModule._skterm,
    "SKRESET": VirtualModule._skreset,
}
