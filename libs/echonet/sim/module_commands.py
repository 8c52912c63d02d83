"""The virtual Wi-SUN module's SKSTACK commands: dispatch by name and one handler per command.

Each handler answers as BP35A1 (single-hop) or BP35C0 (dual-stack) modules do, byte for byte: OK or
the FAIL code a real module gives (ER04 unknown command, ER05 argument count per family, ER06 bad
argument, ER09 unprintable input, ER10 failed), then what follows later (EPANDESC, PANA join events,
meter answers as ERXUDP). A `ModuleCommands` is handed the module's state, its output writer and
the meter behind it by `VirtualModule` (in `module`), which owns them and the byte interface.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from echonet import commands
from echonet.errors import FrameError
from echonet.session_dialogue import scan_seconds
from echonet.sim.meter import SimulatedMeter
from echonet.sim.module_state import ModuleState, ModuleWriter

PANA_PORT = 0x02CC


class ModuleCommands:
    def __init__(self, state: ModuleState, output: ModuleWriter, meter: SimulatedMeter,
                 meter_clock: Callable[[float], datetime]) -> None:
        self.state = state
        self.config = state.config
        self.output = output
        self.meter = meter
        self.meter_clock = meter_clock

    # ---- dispatch -------------------------------------------------------------------------------
    def handle(self, command: tuple[bytes, list[str], bytes]) -> None:
        """Answer one command: (its raw bytes, its space-separated tokens, SKSENDTO's data)."""
        raw, tokens, data = command
        if self.state.registers.get("SFE") == "1":
            self.output.write(raw if raw.endswith(b"\r\n") else raw + b"\r\n")
        if any(not t.isprintable() for t in tokens):
            self.output.line("FAIL ER09")
            return
        name, args = tokens[0], tokens[1:]
        handler = _HANDLERS.get(name)
        if handler is None:
            self.output.line("FAIL ER04")
            return
        try:
            handler(self, args, data)
        except ValueError:
            self.output.line("FAIL ER06")  # a number that does not parse

    def _arity(self, args: list[str], single: int, dual: int) -> bool:
        if len(args) != (dual if self.state.dual else single):
            self.output.line("FAIL ER05")
            return False
        return True

    # ---- commands -------------------------------------------------------------------------------
    def _skver(self, args: list[str], data: bytes) -> None:
        self.output.line("EVER 1.5.2" if self.state.dual else "EVER 1.2.10")
        self.output.line("OK")

    def _skinfo(self, args: list[str], data: bytes) -> None:
        # Single-hop modules end with ADDR16 (FFFE: none); dual-stack ones end with the side instead.
        last = "0" if self.state.dual else "FFFE"
        registers = self.state.registers
        fields = ["EINFO", self.state.own_ip, self.config.module_mac, registers["S2"], registers["S3"], last]
        self.output.line(" ".join(fields))
        self.output.line("OK")

    def _ropt(self, args: list[str], data: bytes) -> None:
        if not self.config.has_ropt:
            self.output.line("FAIL ER04")
            return
        self.output.line("OK 01" if self.state.hex_payload else "OK 00")

    def _wopt(self, args: list[str], data: bytes) -> None:
        if not self.config.has_ropt:
            self.output.line("FAIL ER04")
        elif len(args) != 1 or args[0] not in ("00", "01"):
            self.output.line("FAIL ER06" if len(args) == 1 else "FAIL ER05")
        else:
            self.state.flash_writes += 1
            self.state.hex_payload = args[0] == "01"
            self.output.line("OK")

    def _sksreg(self, args: list[str], data: bytes) -> None:
        if len(args) not in (1, 2):
            self.output.line("FAIL ER05")
        elif len(args) == 1:
            self.output.line(f"ESREG {self.state.registers.get(args[0], '0')}")
            self.output.line("OK")
        else:
            self.state.registers[args[0]] = args[1].upper()
            self.output.line("OK")

    def _sksetpwd(self, args: list[str], data: bytes) -> None:
        if len(args) != 2:
            self.output.line("FAIL ER05")
        elif int(args[0], 16) != len(args[1]):
            self.output.line("FAIL ER06")
        else:
            self.state.password = args[1]
            self.output.line("OK")

    def _sksetrbid(self, args: list[str], data: bytes) -> None:
        if len(args) != 1:
            self.output.line("FAIL ER05")
        else:
            self.state.rbid = args[0]
            self.output.line("OK")

    def _skscan(self, args: list[str], data: bytes) -> None:
        if not self._arity(args, 3, 4):
            return
        duration = int(args[2], 16)
        self.output.line("OK")
        took = scan_seconds(duration)
        if duration >= self.config.min_scan_duration:
            side = ["  Side:0"] if self.state.dual else []
            self.output.line(self.output.event(0x20, self.state.meter_ip), took * 0.5)
            block = ["EPANDESC", f"  Channel:{self.config.channel:02X}", "  Channel Page:09",
                     f"  Pan ID:{self.config.pan_id:04X}", f"  Addr:{self.config.meter_mac}", "  LQI:E1",
                     *side, "  PairID:00AB12CD"]
            self.output.line("\r\n".join(block), took * 0.5)
        self.output.line(self.output.event(0x22, self.state.own_ip), took)

    def _skll64(self, args: list[str], data: bytes) -> None:
        if len(args) != 1:
            self.output.line("FAIL ER05")
        else:
            self.output.line(commands.link_local_address(args[0]))

    def _skjoin(self, args: list[str], data: bytes) -> None:
        if len(args) != 1:
            self.output.line("FAIL ER05")
            return
        self.output.line("OK")
        right_pan = (self.state.registers["S2"] == f"{self.config.channel:02X}"
                     and self.state.registers["S3"] == f"{self.config.pan_id:04X}" and args[0] == self.state.meter_ip)
        right_keys = self.state.password == self.config.password and self.state.rbid == self.config.rbid
        # PANA: a few exchanges on UDP 716 before the result (EVENT 21 per sent packet).
        self.output.line(self.output.event(0x21, args[0], "00"), 0.3)
        self.output.udp(b"\x00\x00\x00\x1c\x80\x02\x00\x00" + bytes(20), PANA_PORT, 0.6)
        if not right_pan:
            self.output.line(self.output.event(0x24, args[0]), 3.0)  # nobody answered on that channel/PAN
        elif not right_keys or self.state.join_failures > 0:
            self.state.join_failures = max(0, self.state.join_failures - 1)
            self.output.line(self.output.event(0x24, args[0]), 1.2)
        else:
            self.output.line(self.output.event(0x21, args[0], "00"), 0.9)
            self.output.line(self.output.event(0x25, args[0]), 1.2)
            self.state.joined = True
            self.output.udp(self.meter.instance_list_inf(), delay=1.3)

    def _sksendto(self, args: list[str], data: bytes) -> None:
        if not self._arity(args, 5, 6):
            return
        if len(data) != int(args[-1], 16):
            self.output.line("FAIL ER06")
            return
        if self.state.er10 > 0 or self.state.arib_until is not None or not self.state.joined:
            self.state.er10 = max(0, self.state.er10 - 1)
            self.output.line("FAIL ER10")
            return
        self.output.line(self.output.event(0x21, args[1], "00"))
        self.output.line("OK")
        try:
            answer = self.meter.handle(data, self.meter_clock(self.state.now))
        except FrameError:
            answer = None
        if answer is not None:
            self.output.udp(answer, delay=0.2)

    def _skreset(self, args: list[str], data: bytes) -> None:
        # The stack restarts: session, keys and registers are gone; ROPT/WOPT live in flash and stay.
        self.state.joined = False
        self.state.password = self.state.rbid = None
        self.state.registers = {"S2": "21", "S3": "FFFF", "SFE": self.state.registers.get("SFE", "1")}
        self.output.cancel_scheduled()
        self.output.line("OK")

    def _skterm(self, args: list[str], data: bytes) -> None:
        if not self.state.joined:
            self.output.line("FAIL ER10")
            return
        self.state.joined = False
        self.output.line("OK")
        self.output.line(self.output.event(0x27, self.state.meter_ip), 0.2)


_HANDLERS: dict[str, Callable[[ModuleCommands, list[str], bytes], None]] = {
    "SKVER": ModuleCommands._skver,
    "SKINFO": ModuleCommands._skinfo,
    "ROPT": ModuleCommands._ropt,
    "WOPT": ModuleCommands._wopt,
    "SKSREG": ModuleCommands._sksreg,
    "SKSETPWD": ModuleCommands._sksetpwd,
    "SKSETRBID": ModuleCommands._sksetrbid,
    "SKSCAN": ModuleCommands._skscan,
    "SKLL64": ModuleCommands._skll64,
    "SKJOIN": ModuleCommands._skjoin,
    "SKSENDTO": ModuleCommands._sksendto,
    "SKTERM": ModuleCommands._skterm,
    "SKRESET": ModuleCommands._skreset,
}
