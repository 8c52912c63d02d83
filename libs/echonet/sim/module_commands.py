"""The virtual Wi-SUN module's SKSTACK commands: dispatch by name and one handler per command.

Each handler answers as BP35A1 (single-hop) or BP35C0 (dual-stack) modules do, byte for byte: OK or
the FAIL code a real module gives (ER04 unknown command, ER05 argument count per family, ER06 bad
argument, ER09 unprintable input, ER10 failed), then what follows later (EPANDESC, PANA join events,
meter answers as ERXUDP). The bytes in and out, and fault injection, are in `module_sim`.
"""

from __future__ import annotations

from collections.abc import Callable

from echonet import commands
from echonet.errors import FrameError
from echonet.session_dialogue import scan_seconds
from echonet.sim.module_state import VirtualModuleState

PANA_PORT = 0x02CC


class VirtualModuleCommands(VirtualModuleState):
    # ---- dispatch -------------------------------------------------------------------------------
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


_HANDLERS: dict[str, Callable[[VirtualModuleCommands, list[str], bytes], None]] = {
    "SKVER": VirtualModuleCommands._skver,
    "SKINFO": VirtualModuleCommands._skinfo,
    "ROPT": VirtualModuleCommands._ropt,
    "WOPT": VirtualModuleCommands._wopt,
    "SKSREG": VirtualModuleCommands._sksreg,
    "SKSETPWD": VirtualModuleCommands._sksetpwd,
    "SKSETRBID": VirtualModuleCommands._sksetrbid,
    "SKSCAN": VirtualModuleCommands._skscan,
    "SKLL64": VirtualModuleCommands._skll64,
    "SKJOIN": VirtualModuleCommands._skjoin,
    "SKSENDTO": VirtualModuleCommands._sksendto,
    "SKTERM": VirtualModuleCommands._skterm,
    "SKRESET": VirtualModuleCommands._skreset,
}
