"""The virtual Wi-SUN module's configuration and state, and how it writes its output.

Output goes out now or, for what a real module prints later (scan results, PANA events, meter
answers), is scheduled after a delay in module time (divided by `ModuleConfig.speed`). EVENT lines
and ERXUDP records take the family's form: dual-stack modules add a side (and RSSI after
`SKSREG SA2 1`), single-hop ones do not. The commands are in `module_sim_commands`, the byte
interface and fault injection in `module_sim` (`VirtualModule`).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from echonet import commands
from echonet.sim.meter import SimulatedMeter
from echonet.skstack_events import Family


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
class ScheduledOutput:
    at: float
    seq: int
    data: bytes = field(compare=False)


class VirtualModuleState:
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
        self._scheduled: list[ScheduledOutput] = []
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

    # ---- output helpers -------------------------------------------------------------------------
    def _emit_line(self, line: str, delay: float = 0.0) -> None:
        data = (line + "\r\n").encode("ascii")
        if delay <= 0:
            self._out += data
        else:
            self._seq += 1
            self._scheduled.append(ScheduledOutput(self._now + delay / self.config.speed, self._seq, data))

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
            self._scheduled.append(ScheduledOutput(self._now + delay / self.config.speed, self._seq, record))
