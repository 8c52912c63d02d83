"""Typed events of the SKSTACK IP module dialogue: what one line (or binary record) from a module means.

`ModuleOutput` is the union of them all: what the parser yields. Small immutable values that compare
structurally, so a test is `assert events == [Ok(), ModuleEvent(0x25, ...)]`.
Field names follow the Rohm/Tessera command references (BP35A1, BP35C0); `side` is None on single-hop
modules, which do not print it, and 0 (B-route) or 1 (HAN) on dual-stack modules.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Family(enum.StrEnum):
    """The two SKSTACK IP text families: they differ in argument and field counts (SKSCAN, SKSENDTO,
    EVENT, ERXUDP, EINFO print a side on dual-stack modules only)."""

    SINGLE_HOP = "single_hop"  # BP35A1, RL7023 Stick-D/IPS, WSR35A1
    DUAL_STACK = "dual_stack"  # BP35C0/C2, RS-WSUHA-P, RL7023 Stick-D/DSS


class PayloadMode(enum.StrEnum):
    """How ERXUDP prints its data: ROPT answers OK 01 (hex ASCII) or OK 00 (raw bytes)."""

    HEX = "hex"
    BINARY = "binary"
    AUTO = "auto"  # unknown (module without ROPT): decided per record from the bytes themselves


# EVENT numbers (command references, "EVENT" section).
EVENT_NS_RECEIVED = 0x01
EVENT_NA_RECEIVED = 0x02
EVENT_ECHO_REQUEST = 0x05
EVENT_ED_SCAN_DONE = 0x1F
EVENT_BEACON = 0x20
EVENT_UDP_SENT = 0x21
EVENT_SCAN_DONE = 0x22
EVENT_PANA_FAILED = 0x24
EVENT_PANA_JOINED = 0x25
EVENT_SESSION_END_REQUEST = 0x26
EVENT_SESSION_ENDED = 0x27
EVENT_PANA_TIMEOUT = 0x28
EVENT_SESSION_EXPIRED = 0x29
EVENT_ARIB_LIMIT = 0x32
EVENT_ARIB_RELEASED = 0x33

EVENT_NAMES: dict[int, str] = {
    EVENT_NS_RECEIVED: "neighbour solicitation received",
    EVENT_NA_RECEIVED: "neighbour advertisement received",
    EVENT_ECHO_REQUEST: "echo request received",
    EVENT_ED_SCAN_DONE: "energy-detect scan finished",
    EVENT_BEACON: "beacon received",
    EVENT_UDP_SENT: "UDP send finished",
    EVENT_SCAN_DONE: "active scan finished",
    EVENT_PANA_FAILED: "PANA join failed",
    EVENT_PANA_JOINED: "PANA join succeeded",
    EVENT_SESSION_END_REQUEST: "peer asked to end the session",
    EVENT_SESSION_ENDED: "session ended",
    EVENT_PANA_TIMEOUT: "PANA session end timed out",
    EVENT_SESSION_EXPIRED: "session lifetime expired",
    EVENT_ARIB_LIMIT: "ARIB transmit-time limit started",
    EVENT_ARIB_RELEASED: "ARIB transmit-time limit ended",
}

FAIL_CODES: dict[str, str] = {
    "ER04": "command not supported",
    "ER05": "wrong number of arguments",
    "ER06": "argument out of range or malformed",
    "ER09": "UART input error",
    "ER10": "command failed",
}


@dataclass(frozen=True, slots=True)
class Ok:
    value: str | None = None  # "01" for `OK 01` (ROPT)


@dataclass(frozen=True, slots=True)
class Fail:
    code: str  # "ER10"

    @property
    def meaning(self) -> str:
        return FAIL_CODES.get(self.code, "unknown error code")


@dataclass(frozen=True, slots=True)
class ModuleEvent:
    """An `EVENT nn SENDER [SIDE] [PARAM]` line: the module reports something that happened (scan done, PANA joined)."""

    code: int
    sender: str
    side: int | None = None
    param: str | None = None

    @property
    def meaning(self) -> str:
        return EVENT_NAMES.get(self.code, "unknown event")


@dataclass(frozen=True, slots=True)
class PanDescriptor:
    channel: int
    channel_page: int
    pan_id: int
    address: str  # the coordinator's 64-bit MAC address, 16 hex digits
    lqi: int
    pair_id: str | None = None
    side: int | None = None


@dataclass(frozen=True, slots=True)
class RxUdp:
    sender: str
    dest: str
    rport: int
    lport: int
    sender_lla: str
    secured: int
    data: bytes
    side: int | None = None
    rssi: int | None = None


@dataclass(frozen=True, slots=True)
class Version:
    text: str  # EVER / EAPPVER


@dataclass(frozen=True, slots=True)
class Info:
    """EINFO: the module's own addresses and, once joined, channel and PAN."""

    ip: str
    addr64: str
    channel: int
    pan_id: int
    addr16: str
    side: int | None = None


@dataclass(frozen=True, slots=True)
class RegisterValue:
    value: str  # ESREG


@dataclass(frozen=True, slots=True)
class Echo:
    """The module repeating our command back (echo is on unless SFE is 0)."""

    line: str


@dataclass(frozen=True, slots=True)
class Text:
    """Any other well-formed module output (SKLL64's address, EADDR, ENEIGHBOR...)."""

    line: str


@dataclass(frozen=True, slots=True)
class Garbage:
    """Bytes that are no module output we know: line noise, a cut line, a malformed record."""

    data: bytes
    reason: str


ModuleOutput = Ok | Fail | ModuleEvent | PanDescriptor | RxUdp | Version | Info | RegisterValue | Echo | Text | Garbage
