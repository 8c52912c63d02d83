"""The virtual Wi-SUN module's configuration, its state, and the writer of its output.

`ModuleState` holds what the module's commands read and change (registers, payload mode, keys,
the joined flag, the faults armed by injection); `ModuleWriter` owns the output: bytes that go out
now and, for what a real module prints later (scan results, PANA events, meter answers), bytes
scheduled after a delay in module time (divided by `ModuleConfig.speed`). EVENT lines and ERXUDP
records take the family's form: dual-stack modules add a side (and RSSI after `SKSREG SA2 1`),
single-hop ones do not. `VirtualModule` (in `module`) owns one of each and hands them to its
command handler (`module_commands`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from echonet import commands
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


class ModuleState:
    """What the module's commands read and change; `now` is the caller's clock at the last input."""

    def __init__(self, config: ModuleConfig) -> None:
        self.config = config
        self.now = 0.0
        self.hex_payload = config.hex_payload
        self.joined = False
        self.flash_writes = 0
        self.registers: dict[str, str] = {"S2": "21", "S3": "FFFF", "SFE": "1" if config.echo else "0"}
        self.password: str | None = None
        self.rbid: str | None = None
        self.arib_until: float | None = None  # the ARIB transmit-time limit holds until then
        self.join_failures = 0  # joins still to fail, armed by fault injection
        self.er10 = 0  # SKSENDTOs still to answer FAIL ER10, armed by fault injection

    @property
    def meter_ip(self) -> str:
        return commands.link_local_address(self.config.meter_mac)

    @property
    def own_ip(self) -> str:
        return commands.link_local_address(self.config.module_mac)

    @property
    def dual(self) -> bool:
        return self.config.family is Family.DUAL_STACK


class ModuleWriter:
    """The module's output, now or scheduled, in the form of the module's family."""

    def __init__(self, state: ModuleState, rng: random.Random) -> None:
        self._state = state
        self._config = state.config
        self._rng = rng
        self._out = bytearray()
        self._scheduled: list[ScheduledOutput] = []
        self._seq = 0

    def write(self, data: bytes) -> None:
        self._out += data

    def take(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def discard(self) -> None:
        """Drop what is waiting to go out now (a hung module's output is lost)."""
        self._out.clear()

    def cancel_scheduled(self) -> None:
        self._scheduled.clear()

    def pop_due(self, now: float) -> list[bytes]:
        """The scheduled output due by `now`, in order, taken off the schedule."""
        self._scheduled.sort()
        due: list[bytes] = []
        while self._scheduled and self._scheduled[0].at <= now:
            due.append(self._scheduled.pop(0).data)
        return due

    def next_deadline(self) -> float | None:
        return min((item.at for item in self._scheduled), default=None)

    def line(self, line: str, delay: float = 0.0) -> None:
        self._emit((line + "\r\n").encode("ascii"), delay)

    def event(self, code: int, sender: str, param: str | None = None) -> str:
        """An EVENT line in the family's form (dual-stack modules print the side)."""
        fields = ["EVENT", f"{code:02X}", sender]
        if self._state.dual:
            fields.append("0")
        if param is not None:
            fields.append(param)
        return " ".join(fields)

    def udp(self, payload: bytes, port: int = commands.ECHONET_PORT, delay: float = 0.0) -> None:
        """An ERXUDP record from the meter, in hex or binary as the payload mode says."""
        state = self._state
        fields = ["ERXUDP", state.meter_ip, state.own_ip, f"{port:04X}", f"{port:04X}", self._config.meter_mac]
        if state.dual and (self._config.rssi or state.registers.get("SA2") == "1"):
            fields.append(str(-40 - self._rng.randrange(30)))
        fields.append("1")
        if state.dual:
            fields.append("0")
        fields.append(f"{len(payload):04X}")
        head = (" ".join(fields) + " ").encode("ascii")
        body = payload.hex().upper().encode("ascii") if state.hex_payload else payload
        self._emit(head + body + b"\r\n", delay)

    def _emit(self, data: bytes, delay: float) -> None:
        if delay <= 0:
            self._out += data
        else:
            self._seq += 1
            self._scheduled.append(ScheduledOutput(self._state.now + delay / self._config.speed, self._seq, data))
