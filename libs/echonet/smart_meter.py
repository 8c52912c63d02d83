"""The low-voltage smart electric energy meter class (0x0288) as one declarative table.

One `PropertySpec` per EPC: name, size, signedness, unit, no-data sentinel and codec. The codec,
the simulator, the decoder tool and the docs all read this table (ECHONET Lite Appendix,
"Low-voltage smart electric energy meter class", release J and later; superclass properties
80-9F from the "device object super class" section).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from echonet.errors import PropertyError
from echonet.frame import Frame, decode_frame_values
from echonet.meter_codecs import (
    HISTORY2_MAX_SEGMENTS,
    HISTORY_MAX_DAY,
    HISTORY_SLOTS,
    JST,
    NO_DATA_ENERGY,
    NO_DATA_POWER,
    NO_PHASE,
    SIZE_EXACT,
    UNIT_MULTIPLIERS,
    Currents,
    DayHistory,
    Decoder,
    Encoder,
    History2,
    History2Request,
    TimedRegister,
    decode_ascii,
    decode_clock,
    decode_currents,
    decode_date,
    decode_history,
    decode_history2,
    decode_history2_request,
    decode_timed,
    decode_unit,
    decode_version,
    encode_ascii,
    encode_currents,
    encode_history,
    encode_history2,
    encode_history2_request,
    encode_timed,
    encode_unit,
    encode_version,
    hex_upper,
    signed_codec,
    unsigned_codec,
)
from echonet.property_map import decode_property_map, encode_property_map

__all__ = [
    "HISTORY2_MAX_SEGMENTS", "HISTORY_MAX_DAY", "HISTORY_SLOTS", "JST", "NO_DATA_ENERGY", "NO_DATA_POWER", "NO_PHASE",
    "PROPERTIES", "UNIT_MULTIPLIERS", "Currents", "DayHistory", "History2", "History2Request", "PropertySpec",
    "TimedRegister", "decode_frame_with_values", "decode_properties", "decode_value", "encode_value",
    "register_kwh", "register_wrap_kwh",
]

CLASS_ID = 0x0288


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
_ENERGY = unsigned_codec(4, NO_DATA_ENERGY)
_REGISTER_UNIT = "raw × D3 × E1 kWh"

PROPERTIES: dict[int, PropertySpec] = {
    spec.epc: spec
    for spec in (
        _spec(0x80, "operation_status", 1, unsigned_codec(1), "0x30 on, 0x31 off"),
        _spec(0x81, "installation_location", 1, unsigned_codec(1), "location code (superclass)"),
        _spec(0x82, "standard_version", 4, (decode_version, encode_version),
              "appendix release letter, e.g. 'J'"),
        _spec(0x88, "fault_status", 1, unsigned_codec(1), "0x41 fault, 0x42 no fault"),
        _spec(0x8A, "manufacturer_code", 3, (hex_upper, bytes.fromhex), "3-byte maker code as hex"),
        _spec(0x8D, "production_number", 12, (decode_ascii, encode_ascii), "12 ASCII characters"),
        _spec(0x97, "current_time", 2, (decode_clock, lambda t: bytes((t.hour, t.minute))), "hh:mm"),
        _spec(0x98, "current_date", 4,
              (decode_date, lambda d: d.year.to_bytes(2, "big") + bytes((d.month, d.day))), "YYYY-MM-DD"),
        _spec(0x9D, "status_change_announcement_map", None, _MAP, "EPCs announced by INF"),
        _spec(0x9E, "set_property_map", None, _MAP, "EPCs accepting Set"),
        _spec(0x9F, "get_property_map", None, _MAP, "EPCs serving Get"),
        _spec(0xD3, "coefficient", 4, unsigned_codec(4), "multiplier of the energy registers (1-999999)"),
        _spec(0xD7, "effective_digits", 1, unsigned_codec(1), "digits before the registers wrap (1-8)"),
        _spec(0xE0, "cumulative_energy_forward", 4, _ENERGY, "bought energy register",
              unit=_REGISTER_UNIT, no_data=NO_DATA_ENERGY),
        _spec(0xE1, "energy_unit", 1, (decode_unit, encode_unit), "kWh per register step (code -> multiplier)",
              unit="kWh"),
        _spec(0xE2, "history_forward", 194, (decode_history, encode_history),
              "day (2 bytes) + 48 half-hour bought registers of the day set in E5", unit=_REGISTER_UNIT,
              no_data=NO_DATA_ENERGY),
        _spec(0xE3, "cumulative_energy_reverse", 4, _ENERGY, "sold energy register",
              unit=_REGISTER_UNIT, no_data=NO_DATA_ENERGY),
        _spec(0xE4, "history_reverse", 194, (decode_history, encode_history),
              "day (2 bytes) + 48 half-hour sold registers of the day set in E5", unit=_REGISTER_UNIT,
              no_data=NO_DATA_ENERGY),
        _spec(0xE5, "history_day", 1, unsigned_codec(1), "day for E2/E4: 0 = today, up to 99 days back"),
        _spec(0xE7, "instantaneous_power", 4, signed_codec(4, NO_DATA_POWER), "net power, negative = selling",
              signed=True, unit="W", no_data=NO_DATA_POWER),
        _spec(0xE8, "instantaneous_current", 4, (decode_currents, encode_currents),
              "R and T phase in 0.1 A, signed", signed=True, unit="A", no_data=NO_PHASE),
        _spec(0xEA, "fixed_time_energy_forward", 11, (decode_timed, encode_timed),
              "date-time (7 bytes) + bought register at the last slot end; pushed as INF",
              unit=_REGISTER_UNIT, no_data=NO_DATA_ENERGY),
        _spec(0xEB, "fixed_time_energy_reverse", 11, (decode_timed, encode_timed),
              "date-time (7 bytes) + sold register at the last slot end; pushed as INF",
              unit=_REGISTER_UNIT, no_data=NO_DATA_ENERGY),
        _spec(0xEC, "history_2", None, (decode_history2, encode_history2),
              "date-time (6 bytes) + count + up to 12 (bought, sold) register pairs",
              unit=_REGISTER_UNIT, no_data=NO_DATA_ENERGY),
        _spec(0xED, "history_2_request", 7, (decode_history2_request, encode_history2_request),
              "date-time (6 bytes) + number of segments for EC"),
    )
}


# One decoder per EPC that checks the size too: the bare decoder where Struct.unpack checks it in C
# (struct.error), else the spec's checking decode_edt. decode_value/decode_properties run per reading.
_CHECKED: dict[int, Decoder] = {
    epc: spec.decode if spec.size is None or spec.decode in SIZE_EXACT else spec.decode_edt
    for epc, spec in PROPERTIES.items()
}


def decode_value(epc: int, edt: bytes) -> Any:
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
