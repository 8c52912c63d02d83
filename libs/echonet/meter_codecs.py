"""Codecs of the 0x0288 properties: value types, and EDT <-> value for each kind of property.

`smart_meter` puts them in its table, one per EPC; this module is the how, that one the what.
Each `Codec[T]` pairs a decoder EDT -> T with its encoder T -> EDT, so the table's entries are typed.
Decoders are on every reading's path, hence the few speed tricks, each with its reason beside it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Generic, NamedTuple, TypeVar, cast, overload
from zoneinfo import ZoneInfo

from echonet.errors import PropertyError

JST = ZoneInfo("Asia/Tokyo")
NO_DATA_POWER = 0x7FFFFFFE
NO_DATA_ENERGY = 0xFFFFFFFE
NO_PHASE = 0x7FFE
HISTORY_SLOTS = 48
HISTORY_MAX_DAY = 99
HISTORY2_MAX_SEGMENTS = 12

# E1: unit of the cumulative energy registers, as a multiplier of kWh.
UNIT_MULTIPLIERS: dict[int, float] = {
    0x00: 1.0, 0x01: 0.1, 0x02: 0.01, 0x03: 0.001, 0x04: 0.0001,
    0x0A: 10.0, 0x0B: 100.0, 0x0C: 1000.0, 0x0D: 10000.0,
}

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Codec(Generic[T]):
    """EDT -> value and value -> EDT for one shape of property.

    `checks_size`: the decoder's Struct.unpack rejects a wrongly sized EDT itself (struct.error), so
    the table's per-reading path can call it bare, without a size check in Python first.
    """

    decode: Callable[[bytes], T]
    encode: Callable[[T], bytes]
    checks_size: bool = False


class TimedRegister(NamedTuple):
    """EA/EB: a cumulative register stamped by the meter at a slot end; raw is None for no data.

    The decoded value types are NamedTuples, not frozen dataclasses: immutable and structural
    alike, but built several times faster, and a decoder builds one per property of every frame.
    """

    time: datetime
    raw: int | None


class DayHistory(NamedTuple):
    """E2/E4: the day (0 = today, up to 99 back) and its 48 half-hour registers (None = no data)."""

    day: int
    raw: tuple[int | None, ...]


class Currents(NamedTuple):
    """E8: R and T phase currents in A; None where the phase does not exist (single-phase 2-wire T)."""

    r_a: float | None
    t_a: float | None


class History2(NamedTuple):
    """EC: from `time` (a slot end) backwards, up to 12 (forward, reverse) register pairs."""

    time: datetime
    segments: tuple[tuple[int | None, int | None], ...]


class History2Request(NamedTuple):
    """ED: the slot end at which EC's history starts and how many 30-minute segments to return."""

    time: datetime
    segments: int


# ---- codecs -------------------------------------------------------------------------------------
_STRUCTS = {1: struct.Struct(">B"), 2: struct.Struct(">H"), 4: struct.Struct(">I")}
_SIGNED_STRUCTS = {2: struct.Struct(">h"), 4: struct.Struct(">i")}
_new = tuple.__new__  # NamedTuple construction without its Python-level __new__: values are per reading


@overload
def unsigned_codec(size: int) -> Codec[int]: ...
@overload
def unsigned_codec(size: int, sentinel: int) -> Codec[int | None]: ...
def unsigned_codec(size: int, sentinel: int | None = None) -> Codec[int] | Codec[int | None]:
    """A big-endian unsigned integer; with a sentinel, that value decodes to None (no data)."""
    # Struct.unpack is the cheapest way from bytes to int; the size is checked before decoding.
    unpack = _STRUCTS[size].unpack if size in _STRUCTS else None

    def decode(edt: bytes) -> int | None:
        value: int = unpack(edt)[0] if unpack is not None else int.from_bytes(edt, "big")
        return None if value == sentinel else value

    def encode(value: int | None) -> bytes:
        if value is None:
            if sentinel is None:
                raise PropertyError("this property has no no-data value")
            value = sentinel
        return value.to_bytes(size, "big")

    if sentinel is None:
        # Without a sentinel the decoder never returns None: typed as the plain int it is.
        return Codec(cast(Callable[[bytes], int], decode), encode, checks_size=unpack is not None)
    return Codec(decode, encode, checks_size=unpack is not None)


def signed_codec(size: int, sentinel: int) -> Codec[int | None]:
    """A big-endian signed integer whose `sentinel` value decodes to None (no data)."""
    unpack = _SIGNED_STRUCTS[size].unpack

    def decode(edt: bytes) -> int | None:
        value: int = unpack(edt)[0]
        return None if value == sentinel else value

    def encode(value: int | None) -> bytes:
        if value is None:
            if sentinel is None:
                raise PropertyError("this property has no no-data value")
            value = sentinel
        return value.to_bytes(size, "big", signed=True)

    return Codec(decode, encode, checks_size=True)


_PHASES = struct.Struct(">hh")


def decode_currents(edt: bytes) -> Currents:
    r, t = _PHASES.unpack(edt)
    return _new(Currents, (None if r == NO_PHASE else r / 10, None if t == NO_PHASE else t / 10))


def encode_currents(value: Currents) -> bytes:
    def phase(amps: float | None) -> bytes:
        return (NO_PHASE if amps is None else round(amps * 10)).to_bytes(2, "big", signed=True)

    return phase(value.r_a) + phase(value.t_a)


_DATETIMES: dict[bytes, datetime] = {}


def _datetime(edt: bytes, with_seconds: bool) -> datetime:
    # A meter stamps the same slot end on every EA/EB until the next slot: reuse the object.
    key = edt[:7] if with_seconds else edt[:6]
    cached = _DATETIMES.get(key)
    if cached is not None:
        return cached
    moment = _new_datetime(edt, with_seconds)
    if len(_DATETIMES) > 4096:
        _DATETIMES.clear()
    _DATETIMES[key] = moment
    return moment


def _new_datetime(edt: bytes, with_seconds: bool) -> datetime:
    try:
        return datetime(edt[0] << 8 | edt[1], edt[2], edt[3], edt[4], edt[5], edt[6] if with_seconds else 0,
                        tzinfo=JST)
    except ValueError as exc:
        raise PropertyError(f"date-time {edt[: 7 if with_seconds else 6].hex()} is not a valid date") from exc


def _encode_datetime(moment: datetime, with_seconds: bool) -> bytes:
    t = moment.astimezone(JST)
    head = t.year.to_bytes(2, "big") + bytes((t.month, t.day, t.hour, t.minute))
    return head + bytes((t.second,)) if with_seconds else head


_TIMED = struct.Struct(">7sI")


def decode_timed(edt: bytes) -> TimedRegister:
    stamp, raw = _TIMED.unpack(edt)
    moment = _DATETIMES.get(stamp)
    if moment is None:
        moment = _datetime(stamp, True)
    return _new(TimedRegister, (moment, None if raw == NO_DATA_ENERGY else raw))


def encode_timed(value: TimedRegister) -> bytes:
    raw = NO_DATA_ENERGY if value.raw is None else value.raw
    return _encode_datetime(value.time, True) + raw.to_bytes(4, "big")


def _register(raw: int) -> int | None:
    return None if raw == NO_DATA_ENERGY else raw


_HISTORY = struct.Struct(">H48I")
_NO_DATA_TO_NONE: dict[int | None, int | None] = {NO_DATA_ENERGY: None}
_NO_DATA_BYTES = NO_DATA_ENERGY.to_bytes(4, "big")
_NO_DATA_TAILS = tuple(_NO_DATA_BYTES * n for n in range(HISTORY_SLOTS + 1))
_NONE_RUNS: tuple[tuple[None, ...], ...] = tuple((None,) * n for n in range(HISTORY_SLOTS + 1))


def decode_history(edt: bytes) -> DayHistory:
    values = _HISTORY.unpack(edt)  # checks the size: 2 + 48 × 4 bytes
    # The sentinel is looked for in the bytes (memchr speed), not among 48 ints.
    first = edt.find(_NO_DATA_BYTES, 2)
    if first < 0:
        return _new(DayHistory, (values[0], values[1:]))
    slot, misaligned = divmod(first - 2, 4)
    if not misaligned and edt[first:] == _NO_DATA_TAILS[HISTORY_SLOTS - slot]:
        # The usual shape: today's slots yet to end are a run of no-data at the end.
        return _new(DayHistory, (values[0], values[1 : slot + 1] + _NONE_RUNS[HISTORY_SLOTS - slot]))
    raw = values[1:]
    # map(dict.get, raw, raw) swaps the sentinel for None at C speed and keeps every other value.
    return _new(DayHistory, (values[0], tuple(map(_NO_DATA_TO_NONE.get, raw, raw))))


def encode_history(value: DayHistory) -> bytes:
    if len(value.raw) != HISTORY_SLOTS:
        raise PropertyError(f"a day history holds 48 registers, not {len(value.raw)}")
    out = bytearray(value.day.to_bytes(2, "big"))
    for raw in value.raw:
        out += (NO_DATA_ENERGY if raw is None else raw).to_bytes(4, "big")
    return bytes(out)


def decode_history2(edt: bytes) -> History2:
    if len(edt) < 7:
        raise PropertyError(f"EC needs at least 7 bytes, got {len(edt)}")
    count = edt[6]
    if count > HISTORY2_MAX_SEGMENTS or len(edt) != 7 + 8 * count:
        raise PropertyError(f"EC says {count} segments but carries {len(edt) - 7} bytes of registers")
    segments = tuple(
        (_register(int.from_bytes(edt[o : o + 4], "big")), _register(int.from_bytes(edt[o + 4 : o + 8], "big")))
        for o in range(7, 7 + 8 * count, 8)
    )
    return History2(_datetime(edt, False), segments)


def encode_history2(value: History2) -> bytes:
    if len(value.segments) > HISTORY2_MAX_SEGMENTS:
        raise PropertyError("EC holds at most 12 segments")
    out = bytearray(_encode_datetime(value.time, False))
    out.append(len(value.segments))
    for forward, reverse in value.segments:
        out += (NO_DATA_ENERGY if forward is None else forward).to_bytes(4, "big")
        out += (NO_DATA_ENERGY if reverse is None else reverse).to_bytes(4, "big")
    return bytes(out)


def decode_history2_request(edt: bytes) -> History2Request:
    return History2Request(_datetime(edt, False), edt[6])


def encode_history2_request(value: History2Request) -> bytes:
    return _encode_datetime(value.time, False) + bytes((value.segments,))


def decode_unit(edt: bytes) -> float:
    try:
        return UNIT_MULTIPLIERS[edt[0]]
    except KeyError:
        raise PropertyError(f"unit code 0x{edt[0]:02X} is not defined for E1") from None


def encode_unit(multiplier: float) -> bytes:
    for code, value in UNIT_MULTIPLIERS.items():
        if value == multiplier:
            return bytes((code,))
    raise PropertyError(f"no E1 code for multiplier {multiplier}")


def decode_version(edt: bytes) -> str:
    """82: bytes 3-4 are the release letter of the appendix and its revision (e.g. 'J', rev 0)."""
    release = edt[2]
    if not 0x41 <= release <= 0x5A:
        raise PropertyError(f"standard version release 0x{release:02X} is not a letter A-Z")
    return chr(release) if edt[3] == 0 else f"{chr(release)}.{edt[3]}"


def encode_version(value: str) -> bytes:
    letter, _, revision = value.partition(".")
    return bytes((0, 0, ord(letter), int(revision or 0)))


def decode_ascii(edt: bytes) -> str:
    try:
        return edt.rstrip(b"\x00 ").decode("ascii")
    except UnicodeDecodeError:
        raise PropertyError(f"production number {edt.hex()} is not ASCII") from None


def encode_ascii(value: str) -> bytes:
    return value.encode("ascii").ljust(12, b"\x00")


def decode_clock(edt: bytes) -> time:
    try:
        return time(edt[0], edt[1])
    except ValueError:
        raise PropertyError(f"current time {edt.hex()} is not a valid time") from None


def encode_clock(value: time) -> bytes:
    return bytes((value.hour, value.minute))


def decode_date(edt: bytes) -> date:
    try:
        return date(edt[0] << 8 | edt[1], edt[2], edt[3])
    except ValueError:
        raise PropertyError(f"current date {edt.hex()} is not a valid date") from None


def encode_date(value: date) -> bytes:
    return value.year.to_bytes(2, "big") + bytes((value.month, value.day))


def hex_upper(edt: bytes) -> str:
    return edt.hex().upper()


# The codecs of the structured properties. Those built on one Struct.unpack of the whole EDT check
# its size themselves (checks_size); the others are given a size check by the table.
CURRENTS_CODEC = Codec(decode_currents, encode_currents, checks_size=True)
TIMED_REGISTER_CODEC = Codec(decode_timed, encode_timed, checks_size=True)
DAY_HISTORY_CODEC = Codec(decode_history, encode_history, checks_size=True)
HISTORY2_CODEC = Codec(decode_history2, encode_history2)
HISTORY2_REQUEST_CODEC = Codec(decode_history2_request, encode_history2_request)
UNIT_CODEC = Codec(decode_unit, encode_unit)
VERSION_CODEC = Codec(decode_version, encode_version)
ASCII_CODEC = Codec(decode_ascii, encode_ascii)
HEX_CODEC = Codec(hex_upper, bytes.fromhex)
CLOCK_CODEC = Codec(decode_clock, encode_clock)
DATE_CODEC = Codec(decode_date, encode_date)
