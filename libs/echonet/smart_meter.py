"""The low-voltage smart electric energy meter class (0x0288) as one declarative table.

One typed `PropertySpec[T]` per EPC: its code (`Epc`), kind, access rules, size, signedness, unit,
no-data sentinel and codec. The codec, the simulator (its property maps and the Sets it accepts),
the decoder tool and the docs all read this table (ECHONET Lite Appendix, "Low-voltage smart electric
energy meter class", release J and later; superclass properties 80-9F from the "device object super
class" section, as B-route meters implement them).

Each entry is also a module constant named as its `Epc` member (`INSTANTANEOUS_POWER` is the spec of
`Epc.INSTANTANEOUS_POWER`), so a caller that knows the property gets its value type statically:
`INSTANTANEOUS_POWER.decode_edt(edt)` is an `int | None`. `decode_value` serves callers that only
know the EPC at run time.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Flag, IntEnum, StrEnum, auto
from typing import Any, Final, Generic, TypeVar

from echonet.errors import PropertyError
from echonet.frame import Frame, decode_frame_values
from echonet.meter_codecs import (
    ASCII_CODEC,
    CLOCK_CODEC,
    CURRENTS_CODEC,
    DATE_CODEC,
    DAY_HISTORY_CODEC,
    HEX_CODEC,
    HISTORY2_CODEC,
    HISTORY2_MAX_SEGMENTS,
    HISTORY2_REQUEST_CODEC,
    HISTORY_MAX_DAY,
    HISTORY_SLOTS,
    JST,
    NO_DATA_ENERGY,
    NO_DATA_POWER,
    NO_PHASE,
    TIMED_REGISTER_CODEC,
    UNIT_CODEC,
    UNIT_MULTIPLIERS,
    VERSION_CODEC,
    Codec,
    Currents,
    DayHistory,
    History2,
    History2Request,
    TimedRegister,
    signed_codec,
    unsigned_codec,
)
from echonet.property_map import decode_property_map, encode_property_map

__all__ = [
    "HISTORY2_MAX_SEGMENTS", "HISTORY_MAX_DAY", "HISTORY_SLOTS", "JST", "NO_DATA_ENERGY", "NO_DATA_POWER", "NO_PHASE",
    "PROPERTIES", "UNIT_MULTIPLIERS", "Access", "Currents", "DayHistory", "Epc", "History2", "History2Request",
    "Kind", "PropertySpec", "TimedRegister", "decode_frame_with_values", "decode_properties", "decode_value",
    "encode_value", "epcs_with", "register_kwh", "register_wrap_kwh",
]

CLASS_ID = 0x0288
T = TypeVar("T")


class Epc(IntEnum):
    """The property codes of the class; each member's name, lower-cased, is its table entry's name."""

    OPERATION_STATUS = 0x80
    INSTALLATION_LOCATION = 0x81
    STANDARD_VERSION = 0x82
    FAULT_STATUS = 0x88
    MANUFACTURER_CODE = 0x8A
    PRODUCTION_NUMBER = 0x8D
    CURRENT_TIME = 0x97
    CURRENT_DATE = 0x98
    STATUS_CHANGE_ANNOUNCEMENT_MAP = 0x9D
    SET_PROPERTY_MAP = 0x9E
    GET_PROPERTY_MAP = 0x9F
    COEFFICIENT = 0xD3
    EFFECTIVE_DIGITS = 0xD7
    CUMULATIVE_ENERGY_FORWARD = 0xE0
    ENERGY_UNIT = 0xE1
    HISTORY_FORWARD = 0xE2
    CUMULATIVE_ENERGY_REVERSE = 0xE3
    HISTORY_REVERSE = 0xE4
    HISTORY_DAY = 0xE5
    INSTANTANEOUS_POWER = 0xE7
    INSTANTANEOUS_CURRENT = 0xE8
    FIXED_TIME_ENERGY_FORWARD = 0xEA
    FIXED_TIME_ENERGY_REVERSE = 0xEB
    HISTORY_2 = 0xEC
    HISTORY_2_REQUEST = 0xED


class Kind(StrEnum):
    """What a property's value is, for readers that treat alike the properties of one kind."""

    STATUS = "status"  # operation and fault status
    IDENTIFICATION = "identification"  # what and where the meter is
    CLOCK = "clock"  # the meter's own date and time
    PROPERTY_MAP = "property map"  # which EPCs the meter announces, accepts for Set, serves for Get
    SCALE = "scale"  # coefficient, unit and digits that turn a raw register into kWh
    REGISTER = "register"  # one cumulative energy register (raw, scaled by D3 × E1)
    HISTORY = "history"  # a series of past registers
    HISTORY_SELECTION = "history selection"  # which history E2/E4 and EC serve, set before reading them
    INSTANTANEOUS = "instantaneous"  # power and currents now


class Access(Flag):
    """The access rules of a property: Get, Set, and when the meter announces it by INF."""

    GET = auto()
    SET = auto()
    ANNOUNCE_ON_CHANGE = auto()  # INF whenever the value changes (status change announcement)
    ANNOUNCE_AT_SLOT_END = auto()  # INF at every 30-minute slot end
    ANNOUNCED = ANNOUNCE_ON_CHANGE | ANNOUNCE_AT_SLOT_END  # either: listed in the announcement map (9D)


@dataclass(frozen=True, slots=True)
class PropertySpec(Generic[T]):
    epc: Epc
    kind: Kind
    access: Access
    size: int | None  # None: variable length, checked by the decoder
    codec: Codec[T]
    description: str
    signed: bool = False
    unit: str | None = None
    no_data: int | None = None

    @property
    def name(self) -> str:
        return self.epc.name.lower()

    @property
    def decode(self) -> Callable[[bytes], T]:
        """The bare decoder: no size check of its own (see `decode_edt`)."""
        return self.codec.decode

    def decode_edt(self, edt: bytes) -> T:
        """The value of an EDT; PropertyError when its size or content is wrong."""
        if self.size is not None and len(edt) != self.size:
            raise PropertyError(f"EPC 0x{self.epc:02X} ({self.name}) needs {self.size} bytes, got {len(edt)}")
        return self.codec.decode(edt)

    def encode(self, value: T) -> bytes:
        return self.codec.encode(value)


_GET = Access.GET  # every property of the class serves Get
_MAP = Codec(decode_property_map, encode_property_map)
_ENERGY = unsigned_codec(4, NO_DATA_ENERGY)
_REGISTER_UNIT = "raw × D3 × E1 kWh"

OPERATION_STATUS: Final = PropertySpec(
    Epc.OPERATION_STATUS, Kind.STATUS, _GET | Access.ANNOUNCE_ON_CHANGE, 1, unsigned_codec(1), "0x30 on, 0x31 off")
INSTALLATION_LOCATION: Final = PropertySpec(
    Epc.INSTALLATION_LOCATION, Kind.IDENTIFICATION, _GET, 1, unsigned_codec(1), "location code (superclass)")
STANDARD_VERSION: Final = PropertySpec(
    Epc.STANDARD_VERSION, Kind.IDENTIFICATION, _GET, 4, VERSION_CODEC, "appendix release letter, e.g. 'J'")
FAULT_STATUS: Final = PropertySpec(
    Epc.FAULT_STATUS, Kind.STATUS, _GET | Access.ANNOUNCE_ON_CHANGE, 1, unsigned_codec(1),
    "0x41 fault, 0x42 no fault")
MANUFACTURER_CODE: Final = PropertySpec(
    Epc.MANUFACTURER_CODE, Kind.IDENTIFICATION, _GET, 3, HEX_CODEC, "3-byte maker code as hex")
PRODUCTION_NUMBER: Final = PropertySpec(
    Epc.PRODUCTION_NUMBER, Kind.IDENTIFICATION, _GET, 12, ASCII_CODEC, "12 ASCII characters")
CURRENT_TIME: Final = PropertySpec(Epc.CURRENT_TIME, Kind.CLOCK, _GET, 2, CLOCK_CODEC, "hh:mm")
CURRENT_DATE: Final = PropertySpec(Epc.CURRENT_DATE, Kind.CLOCK, _GET, 4, DATE_CODEC, "YYYY-MM-DD")
STATUS_CHANGE_ANNOUNCEMENT_MAP: Final = PropertySpec(
    Epc.STATUS_CHANGE_ANNOUNCEMENT_MAP, Kind.PROPERTY_MAP, _GET, None, _MAP, "EPCs announced by INF")
SET_PROPERTY_MAP: Final = PropertySpec(Epc.SET_PROPERTY_MAP, Kind.PROPERTY_MAP, _GET, None, _MAP, "EPCs accepting Set")
GET_PROPERTY_MAP: Final = PropertySpec(Epc.GET_PROPERTY_MAP, Kind.PROPERTY_MAP, _GET, None, _MAP, "EPCs serving Get")
COEFFICIENT: Final = PropertySpec(
    Epc.COEFFICIENT, Kind.SCALE, _GET, 4, unsigned_codec(4), "multiplier of the energy registers (1-999999)")
EFFECTIVE_DIGITS: Final = PropertySpec(
    Epc.EFFECTIVE_DIGITS, Kind.SCALE, _GET, 1, unsigned_codec(1), "digits before the registers wrap (1-8)")
CUMULATIVE_ENERGY_FORWARD: Final = PropertySpec(
    Epc.CUMULATIVE_ENERGY_FORWARD, Kind.REGISTER, _GET, 4, _ENERGY, "bought energy register",
    unit=_REGISTER_UNIT, no_data=NO_DATA_ENERGY)
ENERGY_UNIT: Final = PropertySpec(
    Epc.ENERGY_UNIT, Kind.SCALE, _GET, 1, UNIT_CODEC, "kWh per register step (code -> multiplier)", unit="kWh")
HISTORY_FORWARD: Final = PropertySpec(
    Epc.HISTORY_FORWARD, Kind.HISTORY, _GET, 194, DAY_HISTORY_CODEC,
    "day (2 bytes) + 48 half-hour bought registers of the day set in E5", unit=_REGISTER_UNIT,
    no_data=NO_DATA_ENERGY)
CUMULATIVE_ENERGY_REVERSE: Final = PropertySpec(
    Epc.CUMULATIVE_ENERGY_REVERSE, Kind.REGISTER, _GET, 4, _ENERGY, "sold energy register",
    unit=_REGISTER_UNIT, no_data=NO_DATA_ENERGY)
HISTORY_REVERSE: Final = PropertySpec(
    Epc.HISTORY_REVERSE, Kind.HISTORY, _GET, 194, DAY_HISTORY_CODEC,
    "day (2 bytes) + 48 half-hour sold registers of the day set in E5", unit=_REGISTER_UNIT,
    no_data=NO_DATA_ENERGY)
HISTORY_DAY: Final = PropertySpec(
    Epc.HISTORY_DAY, Kind.HISTORY_SELECTION, _GET | Access.SET, 1, unsigned_codec(1),
    "day for E2/E4: 0 = today, up to 99 days back")
INSTANTANEOUS_POWER: Final = PropertySpec(
    Epc.INSTANTANEOUS_POWER, Kind.INSTANTANEOUS, _GET, 4, signed_codec(4, NO_DATA_POWER),
    "net power, negative = selling", signed=True, unit="W", no_data=NO_DATA_POWER)
INSTANTANEOUS_CURRENT: Final = PropertySpec(
    Epc.INSTANTANEOUS_CURRENT, Kind.INSTANTANEOUS, _GET, 4, CURRENTS_CODEC, "R and T phase in 0.1 A, signed",
    signed=True, unit="A", no_data=NO_PHASE)
FIXED_TIME_ENERGY_FORWARD: Final = PropertySpec(
    Epc.FIXED_TIME_ENERGY_FORWARD, Kind.REGISTER, _GET | Access.ANNOUNCE_AT_SLOT_END, 11, TIMED_REGISTER_CODEC,
    "date-time (7 bytes) + bought register at the last slot end; pushed as INF", unit=_REGISTER_UNIT,
    no_data=NO_DATA_ENERGY)
FIXED_TIME_ENERGY_REVERSE: Final = PropertySpec(
    Epc.FIXED_TIME_ENERGY_REVERSE, Kind.REGISTER, _GET | Access.ANNOUNCE_AT_SLOT_END, 11, TIMED_REGISTER_CODEC,
    "date-time (7 bytes) + sold register at the last slot end; pushed as INF", unit=_REGISTER_UNIT,
    no_data=NO_DATA_ENERGY)
HISTORY_2: Final = PropertySpec(
    Epc.HISTORY_2, Kind.HISTORY, _GET, None, HISTORY2_CODEC,
    "date-time (6 bytes) + count + up to 12 (bought, sold) register pairs", unit=_REGISTER_UNIT,
    no_data=NO_DATA_ENERGY)
HISTORY_2_REQUEST: Final = PropertySpec(
    Epc.HISTORY_2_REQUEST, Kind.HISTORY_SELECTION, _GET | Access.SET, 7, HISTORY2_REQUEST_CODEC,
    "date-time (6 bytes) + number of segments for EC")

# The table by EPC. Plain int keys: frames carry plain ints, and a dict finds an identical key fastest.
PROPERTIES: dict[int, PropertySpec[Any]] = {
    int(spec.epc): spec
    for spec in (
        OPERATION_STATUS, INSTALLATION_LOCATION, STANDARD_VERSION, FAULT_STATUS, MANUFACTURER_CODE,
        PRODUCTION_NUMBER, CURRENT_TIME, CURRENT_DATE, STATUS_CHANGE_ANNOUNCEMENT_MAP, SET_PROPERTY_MAP,
        GET_PROPERTY_MAP, COEFFICIENT, EFFECTIVE_DIGITS, CUMULATIVE_ENERGY_FORWARD, ENERGY_UNIT, HISTORY_FORWARD,
        CUMULATIVE_ENERGY_REVERSE, HISTORY_REVERSE, HISTORY_DAY, INSTANTANEOUS_POWER, INSTANTANEOUS_CURRENT,
        FIXED_TIME_ENERGY_FORWARD, FIXED_TIME_ENERGY_REVERSE, HISTORY_2, HISTORY_2_REQUEST,
    )
}


def epcs_with(access: Access) -> tuple[int, ...]:
    """The EPCs, sorted, whose access rules include any of `access`: the contents of a property map."""
    return tuple(epc for epc, spec in sorted(PROPERTIES.items()) if spec.access & access)


# One decoder per EPC that checks the size too: the bare decoder where Struct.unpack checks it in C
# (struct.error), else the spec's checking decode_edt. decode_value/decode_properties run per reading.
_CHECKED: dict[int, Callable[[bytes], Any]] = {
    epc: spec.decode if spec.size is None or spec.codec.checks_size else spec.decode_edt
    for epc, spec in PROPERTIES.items()
}


def decode_value(epc: int, edt: bytes) -> Any:
    """The value of `epc`'s EDT, whatever the EPC; a typed spec's `decode_edt` says its type."""
    decode = _CHECKED.get(epc)
    if decode is None:
        raise PropertyError(f"EPC 0x{epc:02X} is not a property of class 0x0288")
    try:
        return decode(edt)
    except struct.error:
        return PROPERTIES[epc].decode_edt(edt)  # raises the size error with the property's name


def encode_value(epc: int, value: Any) -> bytes:
    return PROPERTIES[epc].encode(value)


def register_kwh(raw: int, coefficient: int, unit: float) -> float:
    """kWh of a cumulative register: raw × D3 coefficient × E1 unit, rounded to the unit's precision."""
    return round(raw * coefficient * unit, 6)


def register_wrap_kwh(digits: int, coefficient: int, unit: float) -> float:
    """The kWh at which a register of `digits` effective digits (D7) wraps back to zero."""
    return register_kwh(10**digits, coefficient, unit)


def decode_properties(properties: Sequence[tuple[int, bytes]]) -> list[Any]:
    """Typed values of a frame's properties, in order; None for an empty EDT (Get request, *_SNA
    entries) and for EPCs outside the table. One comprehension: it runs on every reading."""
    get = _CHECKED.get
    try:
        return [decode(edt) if edt and (decode := get(epc)) is not None else None for epc, edt in properties]
    except struct.error:
        for epc, edt in properties:
            if edt and epc in PROPERTIES:
                PROPERTIES[epc].decode_edt(edt)  # raises the size error with the property's name
        raise


def decode_frame_with_values(data: bytes) -> tuple[Frame, list[Any]]:
    """A 0x0288 frame and the typed values of its properties (as `decode_properties`), in one pass."""
    try:
        return decode_frame_values(data, _CHECKED)
    except struct.error:
        decode_properties(decode_frame_values(data, {})[0].properties)  # raises the named size error
        raise
