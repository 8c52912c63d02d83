"""The node profile object (class 0x0EF0): what a node is and which objects it hosts.

ECHONET Lite spec part II, 6.11: D3 (number of self-node instances, 3 bytes), D4 (number of
self-node classes, 2 bytes), D5 (instance list notification, pushed as INF when a node joins),
D6 (self-node instance list S), D7 (self-node class list S). D5/D6 carry a 1-byte count then
3-byte EOJs, at most 84 of them (the rest of an EDT of 253 bytes); D7 carries 2-byte class codes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from echonet.errors import PropertyError
from echonet.frame import EOJ
from echonet.property_map import decode_property_map, encode_property_map

CLASS_ID = 0x0EF0
MAX_INSTANCES = 84


def decode_instance_list(edt: bytes) -> tuple[EOJ, ...]:
    if not edt:
        raise PropertyError("empty instance list: at least the count is needed")
    count = edt[0]
    if len(edt) != 1 + 3 * count:
        raise PropertyError(f"instance list says {count} objects but carries {len(edt) - 1} bytes")
    return tuple(EOJ(edt[i], edt[i + 1], edt[i + 2]) for i in range(1, 1 + 3 * count, 3))


def encode_instance_list(eojs: tuple[EOJ, ...]) -> bytes:
    if len(eojs) > MAX_INSTANCES:
        raise PropertyError(f"an instance list holds at most {MAX_INSTANCES} objects")
    return bytes((len(eojs),)) + b"".join(eoj.to_bytes() for eoj in eojs)


def decode_class_list(edt: bytes) -> tuple[int, ...]:
    if not edt:
        raise PropertyError("empty class list: at least the count is needed")
    count = edt[0]
    if len(edt) != 1 + 2 * count:
        raise PropertyError(f"class list says {count} classes but carries {len(edt) - 1} bytes")
    return tuple(edt[i] << 8 | edt[i + 1] for i in range(1, 1 + 2 * count, 2))


def encode_class_list(classes: tuple[int, ...]) -> bytes:
    return bytes((len(classes),)) + b"".join(c.to_bytes(2, "big") for c in classes)


def _uint(size: int) -> tuple[Callable[[bytes], Any], Callable[[Any], bytes]]:
    return (lambda edt: int.from_bytes(edt, "big")), (lambda value: int(value).to_bytes(size, "big"))


@dataclass(frozen=True, slots=True)
class NodeProfileSpec:
    epc: int
    name: str
    size: int | None
    decode: Callable[[bytes], Any]
    encode: Callable[[Any], bytes]

    def decode_edt(self, edt: bytes) -> Any:
        if self.size is not None and len(edt) != self.size:
            raise PropertyError(f"EPC 0x{self.epc:02X} ({self.name}) needs {self.size} bytes, got {len(edt)}")
        return self.decode(edt)


_MAPS = (decode_property_map, encode_property_map)

PROPERTIES: dict[int, NodeProfileSpec] = {
    spec.epc: spec
    for spec in (
        NodeProfileSpec(0x80, "operation_status", 1, *_uint(1)),
        NodeProfileSpec(0x82, "version_information", 4, bytes.hex, bytes.fromhex),
        NodeProfileSpec(0x83, "identification_number", 17, bytes.hex, bytes.fromhex),
        NodeProfileSpec(0x8A, "manufacturer_code", 3, lambda e: e.hex().upper(), bytes.fromhex),
        NodeProfileSpec(0x9D, "status_change_announcement_map", None, *_MAPS),
        NodeProfileSpec(0x9E, "set_property_map", None, *_MAPS),
        NodeProfileSpec(0x9F, "get_property_map", None, *_MAPS),
        NodeProfileSpec(0xD3, "self_node_instances", 3, *_uint(3)),
        NodeProfileSpec(0xD4, "self_node_classes", 2, *_uint(2)),
        NodeProfileSpec(0xD5, "instance_list_notification", None, decode_instance_list, encode_instance_list),
        NodeProfileSpec(0xD6, "self_node_instance_list", None, decode_instance_list, encode_instance_list),
        NodeProfileSpec(0xD7, "self_node_class_list", None, decode_class_list, encode_class_list),
    )
}


def decode_value(epc: int, edt: bytes) -> Any:
    spec = PROPERTIES.get(epc)
    if spec is None:
        raise PropertyError(f"EPC 0x{epc:02X} is not a node profile property")
    return spec.decode_edt(edt)


def encode_value(epc: int, value: Any) -> bytes:
    return PROPERTIES[epc].encode(value)
