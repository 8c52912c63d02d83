"""The low-voltage smart electric energy meter class (0x0288) as one declarative table.

One `PropertySpec` per EPC: name, size, signedness, unit, no-data sentinel and codec. The codec,
the simulator, the decoder tool and the docs all read this table (ECHONET Lite Appendix,
"Low-voltage smart electric energy meter class", release J and later; superclass properties
80-9F from the "device object super class" section).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from echonet.errors import PropertyError
from echonet.property_map import decode_property_map, encode_property_map

JST = ZoneInfo("Asia/Tokyo")
CLASS_ID = 0x0288
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

Decoder = Callable[[bytes], Any]
Encoder = Callable[[Any], bytes]


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


# ---- codecs: each pair is (decode: EDT -> value, encode: value -> EDT) ------------------------
_STRUCTS = {1: struct.Struct(">B"), 2: struct.Struct(">H"), 4: struct.Struct(">I")}
_SIGNED_STRUCTS = {2: struct.Struct(">h"), 4: struct.Struct(">i")}


def _unsigned(size: int, sentinel: int | None = None) -> tuple[Decoder, Encoder]:
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

    return decode, encode


def _signed(size: int, sentinel: int | None = None) -> tuple[Decoder, Encoder]:
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

    return decode, encode


_PHASES = struct.Struct(">hh")


def _decode_currents(edt: bytes) -> Currents:
    r, t = _PHASES.unpack(edt)
    return Currents(None if r == NO_PHASE else r / 10, None if t == NO_PHASE else t / 10)


def _encode_currents(value: Currents) -> bytes:
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


def _decode_timed(edt: bytes) -> TimedRegister:
    stamp, raw = _TIMED.unpack(edt)
    moment = _DATETIMES.get(stamp)
    if moment is None:
        moment = _datetime(stamp, True)
    return TimedRegister(moment, None if raw == NO_DATA_ENERGY else raw)


def _encode_timed(value: TimedRegister) -> bytes:
    raw = NO_DATA_ENERGY if value.raw is None else value.raw
    return _encode_datetime(value.time, True) + raw.to_bytes(4, "big")


def _register(raw: int) -> int | None:
    return None if raw == NO_DATA_ENERGY else raw


_HISTORY = struct.Struct(">48I")
_NO_DATA_TO_NONE: dict[int | None, int | None] = {NO_DATA_ENERGY: None}


def _decode_history(edt: bytes) -> DayHistory:
    raw: tuple[int | None, ...] = _HISTORY.unpack_from(edt, 2)
    if NO_DATA_ENERGY in raw:
        # map(dict.get, raw, raw) swaps the sentinel for None at C speed and keeps every other value.
        raw = tuple(map(_NO_DATA_TO_NONE.get, raw, raw))
    return DayHistory(edt[0] << 8 | edt[1], raw)


def _encode_history(value: DayHistory) -> bytes:
    if len(value.raw) != HISTORY_SLOTS:
        raise PropertyError(f"a day history holds 48 registers, not {len(value.raw)}")
    out = bytearray(value.day.to_bytes(2, "big"))
    for raw in value.raw:
        out += (NO_DATA_ENERGY if raw is None else raw).to_bytes(4, "big")
    return bytes(out)


def _decode_history2(edt: bytes) -> History2:
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


def _encode_history2(value: History2) -> bytes:
    if len(value.segments) > HISTORY2_MAX_SEGMENTS:
        raise PropertyError("EC holds at most 12 segments")
    out = bytearray(_encode_datetime(value.time, False))
    out.append(len(value.segments))
    for forward, reverse in value.segments:
        out += (NO_DATA_ENERGY if forward is None else forward).to_bytes(4, "big")
        out += (NO_DATA_ENERGY if reverse is None else reverse).to_bytes(4, "big")
    return bytes(out)


def _decode_history2_request(edt: bytes) -> History2Request:
    return History2Request(_datetime(edt, False), edt[6])


def _encode_history2_request(value: History2Request) -> bytes:
    return _encode_datetime(value.time, False) + bytes((value.segments,))


def _decode_unit(edt: bytes) -> float:
    try:
        return UNIT_MULTIPLIERS[edt[0]]
    except KeyError:
        raise PropertyError(f"unit code 0x{edt[0]:02X} is not defined for E1") from None


def _encode_unit(multiplier: float) -> bytes:
    for code, value in UNIT_MULTIPLIERS.items():
        if value == multiplier:
            return bytes((code,))
    raise PropertyError(f"no E1 code for multiplier {multiplier}")


def _decode_version(edt: bytes) -> str:
    """82: bytes 3-4 are the release letter of the appendix and its revision (e.g. 'J', rev 0)."""
    release = edt[2]
    if not 0x41 <= release <= 0x5A:
        raise PropertyError(f"standard version release 0x{release:02X} is not a letter A-Z")
    return chr(release) if edt[3] == 0 else f"{chr(release)}.{edt[3]}"


def _encode_version(value: str) -> bytes:
    letter, _, revision = value.partition(".")
    return bytes((0, 0, ord(letter), int(revision or 0)))


def _decode_ascii(edt: bytes) -> str:
    try:
        return edt.rstrip(b"\x00 ").decode("ascii")
    except UnicodeDecodeError:
        raise PropertyError(f"production number {edt.hex()} is not ASCII") from None


def _encode_ascii(value: str) -> bytes:
    return value.encode("ascii").ljust(12, b"\x00")


def _decode_clock(edt: bytes) -> time:
    try:
        return time(edt[0], edt[1])
    except ValueError:
        raise PropertyError(f"current time {edt.hex()} is not a valid time") from None


def _decode_date(edt: bytes) -> date:
    try:
        return date(edt[0] << 8 | edt[1], edt[2], edt[3])
    except ValueError:
        raise PropertyError(f"current date {edt.hex()} is not a valid date") from None


def _hex(edt: bytes) -> str:
    return edt.hex().upper()


@dataclass(frozen=True, slots=True)
class PropertySpec:
    epc: int
    name: str
    size: int | None  # None: variable length, checked by the decoder
    decode: Decoder
    encode: Encoder
    signed: bool = False
    unit: str | None = None
    no_data: int | None = None
    description: str = ""

    def decode_edt(self, edt: bytes) -> Any:
        if self.size is not None and len(edt) != self.size:
            raise PropertyError(f"EPC 0x{self.epc:02X} ({self.name}) needs {self.size} bytes, got {len(edt)}")
        return self.decode(edt)


def _spec(epc: int, name: str, size: int | None, codec: tuple[Decoder, Encoder], description: str,
          **kwargs: Any) -> PropertySpec:
    return PropertySpec(epc, name, size, codec[0], codec[1], description=description, **kwargs)


_MAP = (decode_property_map, encode_property_map)
_ENERGY = _unsigned(4, NO_DATA_ENERGY)
_REGISTER_UNIT = "raw × D3 × E1 kWh"

PROPERTIES: dict[int, PropertySpec] = {
    spec.epc: spec
    for spec in (
        _spec(0x80, "operation_status", 1, _unsigned(1), "0x30 on, 0x31 off"),
        _spec(0x81, "installation_location", 1, _unsigned(1), "location code (superclass)"),
        _spec(0x82, "standard_version", 4, (_decode_version, _encode_version),
              "appendix release letter, e.g. 'J'"),
        _spec(0x88, "fault_status", 1, _unsigned(1), "0x41 fault, 0x42 no fault"),
        _spec(0x8A, "manufacturer_code", 3, (_hex, bytes.fromhex), "3-byte maker code as hex"),
        _spec(0x8D, "production_number", 12, (_decode_ascii, _encode_ascii), "12 ASCII characters"),
        _spec(0x97, "current_time", 2, (_decode_clock, lambda t: bytes((t.hour, t.minute))), "hh:mm"),
        _spec(0x98, "current_date", 4,
              (_decode_date, lambda d: d.year.to_bytes(2, "big") + bytes((d.month, d.day))), "YYYY-MM-DD"),
        _spec(0x9D, "status_change_announcement_map", None, _MAP, "EPCs announced by INF"),
        _spec(0x9E, "set_property_map", None, _MAP, "EPCs accepting Set"),
        _spec(0x9F, "get_property_map", None, _MAP, "EPCs serving Get"),
        _spec(0xD3, "coefficient", 4, _unsigned(4), "multiplier of the energy registers (1-999999)"),
        _spec(0xD7, "effective_digits", 1, _unsigned(1), "digits before the registers wrap (1-8)"),
        _spec(0xE0, "cumulative_energy_forward", 4, _ENERGY, "bought energy register",
              unit=_REGISTER_UNIT, no_data=NO_DATA_ENERGY),
        _spec(0xE1, "energy_unit", 1, (_decode_unit, _encode_unit), "kWh per register step (code -> multiplier)",
              unit="kWh"),
        _spec(0xE2, "history_forward", 194, (_decode_history, _encode_history),
              "day (2 bytes) + 48 half-hour bought registers of the day set in E5", unit=_REGISTER_UNIT,
              no_data=NO_DATA_ENERGY),
        _spec(0xE3, "cumulative_energy_reverse", 4, _ENERGY, "sold energy register",
              unit=_REGISTER_UNIT, no_data=NO_DATA_ENERGY),
        _spec(0xE4, "history_reverse", 194, (_decode_history, _encode_history),
              "day (2 bytes) + 48 half-hour sold registers of the day set in E5", unit=_REGISTER_UNIT,
              no_data=NO_DATA_ENERGY),
        _spec(0xE5, "history_day", 1, _unsigned(1), "day for E2/E4: 0 = today, up to 99 days back"),
        _spec(0xE7, "instantaneous_power", 4, _signed(4, NO_DATA_POWER), "net power, negative = selling",
              signed=True, unit="W", no_data=NO_DATA_POWER),
        _spec(0xE8, "instantaneous_current", 4, (_decode_currents, _encode_currents),
              "R and T phase in 0.1 A, signed", signed=True, unit="A", no_data=NO_PHASE),
        _spec(0xEA, "fixed_time_energy_forward", 11, (_decode_timed, _encode_timed),
              "date-time (7 bytes) + bought register at the last slot end; pushed as INF",
              unit=_REGISTER_UNIT, no_data=NO_DATA_ENERGY),
        _spec(0xEB, "fixed_time_energy_reverse", 11, (_decode_timed, _encode_timed),
              "date-time (7 bytes) + sold register at the last slot end; pushed as INF",
              unit=_REGISTER_UNIT, no_data=NO_DATA_ENERGY),
        _spec(0xEC, "history_2", None, (_decode_history2, _encode_history2),
              "date-time (6 bytes) + count + up to 12 (bought, sold) register pairs",
              unit=_REGISTER_UNIT, no_data=NO_DATA_ENERGY),
        _spec(0xED, "history_2_request", 7, (_decode_history2_request, _encode_history2_request),
              "date-time (6 bytes) + number of segments for EC"),
    )
}


# (size, decoder) per EPC, read straight from the table: decode_value is on every reading's path.
_FAST: dict[int, tuple[int | None, Decoder]] = {epc: (spec.size, spec.decode) for epc, spec in PROPERTIES.items()}


def decode_value(epc: int, edt: bytes) -> Any:
    entry = _FAST.get(epc)
    if entry is None:
        raise PropertyError(f"EPC 0x{epc:02X} is not a property of class 0x0288")
    size, decode = entry
    if size is not None and len(edt) != size:
        return PROPERTIES[epc].decode_edt(edt)  # raises the size error with the property's name
    return decode(edt)


def encode_value(epc: int, value: Any) -> bytes:
    return PROPERTIES[epc].encode(value)


def register_kwh(raw: int, coefficient: int, unit: float) -> float:
    """kWh of a cumulative register: raw × D3 coefficient × E1 unit, rounded to the unit's precision."""
    return round(raw * coefficient * unit, 6)


def register_wrap_kwh(digits: int, coefficient: int, unit: float) -> float:
    """The kWh at which a register of `digits` effective digits (D7) wraps back to zero."""
    return register_kwh(10**digits, coefficient, unit)


def decode_properties(properties: Iterable[tuple[int, bytes]]) -> list[Any]:
    """Typed values of a frame's properties, in order; None for an empty EDT (Get request, *_SNA
    entries) and for EPCs outside the table. The loop is fused because it runs on every reading."""
    fast = _FAST
    out: list[Any] = []
    append = out.append
    for epc, edt in properties:
        entry = fast.get(epc)
        if entry is None or not edt:
            append(None)
            continue
        size, decode = entry
        if size is not None and len(edt) != size:
            PROPERTIES[epc].decode_edt(edt)  # raises the size error with the property's name
        append(decode(edt))
    return out
