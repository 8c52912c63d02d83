"""Property maps (EPC 0x9D/0x9E/0x9F): which EPCs an object announces, accepts for Set, serves for Get.

ECHONET Lite spec part II, appendix "property map description format": the first byte counts the
EPCs. Under 16 EPCs the EPCs follow as a list; from 16 on a 16-byte bitmap follows, where bit b of
byte i stands for EPC 0x80 + 0x10 * b + i. Both forms occur on real meters (most list 9F as bitmap).
"""

from __future__ import annotations

from echonet.errors import PropertyError

_BITMAP_THRESHOLD = 16
_BITMAP_SIZE = 16

# Bitmap byte index and bit for every EPC 0x80..0xFF, and the reverse, precomputed once.
_BITMAP_EPCS: tuple[tuple[int, ...], ...] = tuple(
    tuple(0x80 + 0x10 * bit + index for bit in range(8) if value >> bit & 1)
    for index in range(_BITMAP_SIZE)
    for value in range(256)
)


def _bitmap_epcs(index: int, value: int) -> tuple[int, ...]:
    return _BITMAP_EPCS[index * 256 + value]


def decode_property_map(edt: bytes) -> tuple[int, ...]:
    """EDT -> sorted EPCs; raises PropertyError when the count and the form disagree."""
    if not edt:
        raise PropertyError("empty property map: at least the EPC count is needed")
    count = edt[0]
    if count < _BITMAP_THRESHOLD:
        if len(edt) != 1 + count:
            raise PropertyError(f"property map says {count} EPCs but lists {len(edt) - 1}")
        return tuple(sorted(edt[1:]))
    if len(edt) != 1 + _BITMAP_SIZE:
        raise PropertyError(f"property map of {count} EPCs must be a 16-byte bitmap, got {len(edt) - 1} bytes")
    epcs: list[int] = []
    for index in range(_BITMAP_SIZE):
        value = edt[1 + index]
        if value:
            epcs.extend(_bitmap_epcs(index, value))
    if len(epcs) != count:
        raise PropertyError(f"property map says {count} EPCs but its bitmap holds {len(epcs)}")
    return tuple(sorted(epcs))


def encode_property_map(epcs: tuple[int, ...] | list[int] | frozenset[int]) -> bytes:
    """Sorted EPCs -> EDT, as a list under 16 EPCs and as a bitmap from 16 on (the spec's rule)."""
    unique = sorted(set(epcs))
    for epc in unique:
        if not 0x80 <= epc <= 0xFF:
            raise PropertyError(f"EPC 0x{epc:02X} cannot be in a property map (0x80-0xFF only)")
    if len(unique) < _BITMAP_THRESHOLD:
        return bytes((len(unique), *unique))
    bitmap = bytearray(_BITMAP_SIZE)
    for epc in unique:
        bitmap[epc & 0x0F] |= 1 << ((epc >> 4) - 8)
    return bytes((len(unique),)) + bytes(bitmap)
