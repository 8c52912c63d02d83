"""ECHONET Lite frames (format 1, EHD 0x1081): bytes <-> `Frame`.

Layout (ECHONET Lite spec part II, 3.2): EHD1 EHD2 TID(2) SEOJ(3) DEOJ(3) ESV OPC {EPC PDC EDT}*.
SetGet ESVs (0x6E, 0x7E, 0x5E) carry a second block (OPCGet) after the set properties.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from echonet.errors import ArgumentError, FrameError

EHD_FORMAT1 = b"\x10\x81"
EHD_FORMAT2 = b"\x10\x82"
HEADER_SIZE = 12


class ESV(enum.IntEnum):
    SETI_SNA = 0x50
    SETC_SNA = 0x51
    GET_SNA = 0x52
    INF_SNA = 0x53
    SETGET_SNA = 0x5E
    SETI = 0x60
    SETC = 0x61
    GET = 0x62
    INF_REQ = 0x63
    SETGET = 0x6E
    SET_RES = 0x71
    GET_RES = 0x72
    INF = 0x73
    INFC = 0x74
    INFC_RES = 0x7A
    SETGET_RES = 0x7E


_SETGET = frozenset({ESV.SETGET, ESV.SETGET_RES, ESV.SETGET_SNA})
_KNOWN_ESV = frozenset(int(e) for e in ESV)


@dataclass(frozen=True, slots=True)
class EOJ:
    """An ECHONET object: class group, class, instance (e.g. 0x02 0x88 0x01 = low-voltage smart meter 1)."""

    class_group: int
    class_code: int
    instance: int

    @classmethod
    def from_bytes(cls, data: bytes) -> EOJ:
        return cls(data[0], data[1], data[2])

    @classmethod
    def parse(cls, text: str) -> EOJ:
        return cls.from_bytes(bytes.fromhex(text))

    def to_bytes(self) -> bytes:
        return bytes((self.class_group, self.class_code, self.instance))

    @property
    def class_id(self) -> int:
        return self.class_group << 8 | self.class_code

    def __str__(self) -> str:
        return self.to_bytes().hex().upper()


SMART_METER = EOJ(0x02, 0x88, 0x01)
CONTROLLER = EOJ(0x05, 0xFF, 0x01)
NODE_PROFILE = EOJ(0x0E, 0xF0, 0x01)


class Property(NamedTuple):
    """One EPC and its EDT (empty in Get requests and in the failed entries of *_SNA answers).

    A NamedTuple rather than a dataclass: a frame decoder builds one per property, and tuple
    construction is several times cheaper than a frozen dataclass's __init__.
    """

    epc: int
    edt: bytes = b""


class Frame(NamedTuple):
    """One format-1 frame. A NamedTuple for the same reason as Property: decoding builds one per frame."""

    tid: int
    seoj: EOJ
    deoj: EOJ
    esv: int
    properties: tuple[Property, ...] = ()
    # Only SetGet frames have a second block: the properties to read after the set.
    get_properties: tuple[Property, ...] = ()

    def property(self, epc: int) -> Property | None:
        for prop in self.properties:
            if prop.epc == epc:
                return prop
        return None


def encode_frame(frame: Frame) -> bytes:
    if not 0 <= frame.tid <= 0xFFFF:
        raise ArgumentError(f"TID {frame.tid} does not fit two bytes")
    out = bytearray(EHD_FORMAT1)
    out += frame.tid.to_bytes(2, "big")
    out += frame.seoj.to_bytes()
    out += frame.deoj.to_bytes()
    out.append(frame.esv)
    _encode_block(out, frame.properties)
    if frame.esv in _SETGET:
        _encode_block(out, frame.get_properties)
    return bytes(out)


def _encode_block(out: bytearray, properties: tuple[Property, ...]) -> None:
    if len(properties) > 0xFF:
        raise ArgumentError("a frame carries at most 255 properties per block")
    out.append(len(properties))
    for prop in properties:
        if len(prop.edt) > 0xFF:
            raise ArgumentError(f"EDT of EPC 0x{prop.epc:02X} is longer than 255 bytes")
        out.append(prop.epc)
        out.append(len(prop.edt))
        out += prop.edt


def decode_frame(data: bytes) -> Frame:
    """Decode one frame; raises FrameError with a sentence saying what is wrong."""
    size = len(data)
    if size < HEADER_SIZE or data[0] != 0x10 or data[1] != 0x81:
        _reject_header(data)
    esv = data[10]
    if esv not in _KNOWN_ESV:
        raise FrameError(f"unknown ESV 0x{esv:02X}")
    # The single-block loop is inlined: this function is the hot path of every reading.
    count = data[11]
    offset = 12
    props: list[Property] = []
    append = props.append
    for index in range(count):
        start = offset + 2
        if start > size:
            raise FrameError(f"frame ends inside property {index + 1} of {count}")
        end = start + data[offset + 1]
        if end > size:
            raise FrameError(f"EPC 0x{data[offset]:02X} claims {data[offset + 1]} bytes but only "
                             f"{size - start} remain")
        append(_tuple_new(Property, (data[offset], data[start:end])))
        offset = end
    get_properties: tuple[Property, ...] = ()
    if esv in _SETGET:
        get_properties, offset = _decode_block(data, offset)
    if offset != size:
        raise FrameError(f"{size - offset} trailing bytes after the last property")
    pair = _EOJ_PAIRS.get(data[4:10])
    if pair is None:
        pair = _eoj_pair(data[4:10])
    return _tuple_new(Frame, (data[2] << 8 | data[3], pair[0], pair[1], esv, tuple(props), get_properties))


def decode_frame_values(data: bytes, decoders: Mapping[int, Callable[[bytes], Any]]) -> tuple[Frame, list[Any]]:
    """`decode_frame` plus each property's value from `decoders` (by EPC) in the same pass: None for
    an empty EDT or an EPC without a decoder. The loop is decode_frame's, repeated rather than shared
    because a call per property would cost more than the values themselves (test_fuzz keeps the two
    equal on every input). A decoder's first error is raised unchanged, after any FrameError."""
    size = len(data)
    if size < HEADER_SIZE or data[0] != 0x10 or data[1] != 0x81:
        _reject_header(data)
    esv = data[10]
    if esv not in _KNOWN_ESV:
        raise FrameError(f"unknown ESV 0x{esv:02X}")
    count = data[11]
    offset = 12
    props: list[Property] = []
    values: list[Any] = []
    append = props.append
    append_value = values.append
    decoder = decoders.get
    failure: Exception | None = None
    for index in range(count):
        start = offset + 2
        if start > size:
            raise FrameError(f"frame ends inside property {index + 1} of {count}")
        end = start + data[offset + 1]
        if end > size:
            raise FrameError(f"EPC 0x{data[offset]:02X} claims {data[offset + 1]} bytes but only "
                             f"{size - start} remain")
        epc = data[offset]
        edt = data[start:end]
        append(_tuple_new(Property, (epc, edt)))
        decode = decoder(epc)
        if decode is not None and edt:
            try:
                append_value(decode(edt))
            except Exception as exc:
                # Held until the framing is checked: a broken frame is reported as such first.
                failure = failure or exc
                append_value(None)
        else:
            append_value(None)
        offset = end
    get_properties: tuple[Property, ...] = ()
    if esv in _SETGET:
        get_properties, offset = _decode_block(data, offset)
    if offset != size:
        raise FrameError(f"{size - offset} trailing bytes after the last property")
    if failure is not None:
        raise failure
    pair = _EOJ_PAIRS.get(data[4:10])
    if pair is None:
        pair = _eoj_pair(data[4:10])
    frame = _tuple_new(Frame, (data[2] << 8 | data[3], pair[0], pair[1], esv, tuple(props), get_properties))
    return frame, values


def _reject_header(data: bytes) -> None:
    ehd = data[:2]
    if ehd != EHD_FORMAT1 and len(data) >= 2:
        if ehd == EHD_FORMAT2:
            raise FrameError("format 2 (arbitrary message) frames are not supported, only format 1 (EHD 1081)")
        raise FrameError(f"not an ECHONET Lite frame: header {ehd.hex()} is not 1081")
    raise FrameError(f"frame of {len(data)} bytes is shorter than the 12-byte header")


_EOJ_CACHE: dict[bytes, EOJ] = {}


def _eoj(raw: bytes) -> EOJ:
    # A link sees a handful of distinct objects; interning them saves building a frozen
    # dataclass per frame, which is the larger part of decoding a short Get_Res.
    eoj = _EOJ_CACHE.get(raw)
    if eoj is None:
        eoj = EOJ(raw[0], raw[1], raw[2])
        if len(_EOJ_CACHE) < 4096:
            _EOJ_CACHE[raw] = eoj
    return eoj


_tuple_new = tuple.__new__
_EOJ_PAIRS: dict[bytes, tuple[EOJ, EOJ]] = {}


def _eoj_pair(raw: bytes) -> tuple[EOJ, EOJ]:
    pair = (_eoj(raw[0:3]), _eoj(raw[3:6]))
    if len(_EOJ_PAIRS) < 4096:
        _EOJ_PAIRS[raw] = pair
    return pair


def _decode_block(data: bytes, offset: int) -> tuple[tuple[Property, ...], int]:
    if offset >= len(data):
        raise FrameError("frame ends before its property count (OPC)")
    count = data[offset]
    offset += 1
    props: list[Property] = []
    size = len(data)
    for index in range(count):
        if offset + 2 > size:
            raise FrameError(f"frame ends inside property {index + 1} of {count}")
        epc = data[offset]
        pdc = data[offset + 1]
        end = offset + 2 + pdc
        if end > size:
            raise FrameError(f"EPC 0x{epc:02X} claims {pdc} bytes but only {size - offset - 2} remain")
        props.append(_tuple_new(Property, (epc, data[offset + 2 : end])))
        offset = end
    return tuple(props), offset
