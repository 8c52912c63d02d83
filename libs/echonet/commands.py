"""SKSTACK IP command builders: the right argument count for each module family.

Wrong argument counts are the commonest field failure (FAIL ER05), so every family-dependent
command takes the family explicitly: dual-stack modules take a side (0: B-route) after SKSCAN's
duration and SKSENDTO's security flag, single-hop ones do not. Builders validate our own arguments
and raise `ArgumentError` (a `ValueError`: the caller misused the API); they never guess.
"""

from __future__ import annotations

import re

from echonet.errors import ArgumentError
from echonet.skstack_events import Family

ECHONET_PORT = 0x0E1A
B_ROUTE_SIDE = 0
ALL_CHANNELS = 0xFFFFFFFF
_IPV6 = re.compile(r"^[0-9A-F]{4}(:[0-9A-F]{4}){7}$")
_MAC = re.compile(r"^[0-9A-F]{16}$")


def _line(*fields: str) -> bytes:
    return (" ".join(fields) + "\r\n").encode("ascii")


def _ip(address: str) -> str:
    address = address.upper()
    if not _IPV6.match(address):
        raise ArgumentError(f"{address!r} is not a full-form IPv6 address as SKSTACK prints it")
    return address


def skver() -> bytes:
    return _line("SKVER")


def skinfo() -> bytes:
    return _line("SKINFO")


def ropt() -> bytes:
    """Read the ERXUDP payload mode (OK 00 binary, OK 01 hex; FAIL ER04 where unsupported)."""
    return _line("ROPT")


def wopt(hex_output: bool) -> bytes:
    """Write the payload mode. It goes to flash, which has limited write cycles: issue it only
    when ROPT shows the mode differs from the wanted one, never on every start."""
    return _line("WOPT", "01" if hex_output else "00")


def sksreg(register: str, value: str | None = None) -> bytes:
    if not re.fullmatch(r"S[0-9A-F]{1,3}", register):
        raise ArgumentError(f"{register!r} is not a virtual register name such as S2 or SFE")
    return _line("SKSREG", register) if value is None else _line("SKSREG", register, value)


def sksetpwd(password: str) -> bytes:
    if not 1 <= len(password) <= 32 or not password.isascii() or " " in password:
        raise ArgumentError("a B-route password is 1-32 printable ASCII characters without spaces")
    return _line("SKSETPWD", f"{len(password):X}", password)


def sksetrbid(rbid: str) -> bytes:
    if len(rbid) != 32 or not rbid.isascii() or " " in rbid:
        raise ArgumentError("a B-route ID is 32 ASCII characters")
    return _line("SKSETRBID", rbid)


def skscan(family: Family, duration: int, channel_mask: int = ALL_CHANNELS, mode: int = 2) -> bytes:
    """Active scan (mode 2) with information element: EPANDESC per coordinator, then EVENT 22."""
    if not 0 <= duration <= 14:
        raise ArgumentError(f"scan duration {duration} is outside 0-14")
    fields = ["SKSCAN", str(mode), f"{channel_mask:08X}", f"{duration:X}"]
    if family is Family.DUAL_STACK:
        fields.append(str(B_ROUTE_SIDE))
    return _line(*fields)


def skll64(mac: str) -> bytes:
    if not _MAC.match(mac.upper()):
        raise ArgumentError(f"{mac!r} is not a 64-bit MAC address in 16 hex digits")
    return _line("SKLL64", mac.upper())


def skjoin(address: str) -> bytes:
    return _line("SKJOIN", _ip(address))


def skterm() -> bytes:
    return _line("SKTERM")


def sksendto(family: Family, address: str, data: bytes, *, handle: int = 1, port: int = ECHONET_PORT,
             secured: int = 1) -> bytes:
    """UDP send: the data follows the length as raw bytes, with no line break after it."""
    if not 1 <= handle <= 6:
        raise ArgumentError("UDP handle is 1-6")
    if not 1 <= len(data) <= 1232:
        raise ArgumentError(f"a UDP payload is 1-1232 bytes, not {len(data)}")
    fields = [str(handle), _ip(address), f"{port:04X}", str(secured)]
    if family is Family.DUAL_STACK:
        fields.append(str(B_ROUTE_SIDE))
    fields.append(f"{len(data):04X}")
    return ("SKSENDTO " + " ".join(fields) + " ").encode("ascii") + data


def link_local_address(mac: str) -> str:
    """The IPv6 link-local address SKLL64 derives from a MAC (EUI-64, universal/local bit flipped)."""
    value = int(mac, 16) ^ (1 << 57)
    groups = [f"{value >> shift & 0xFFFF:04X}" for shift in (48, 32, 16, 0)]
    return "FE80:0000:0000:0000:" + ":".join(groups)
