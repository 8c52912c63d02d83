"""InfluxDB line protocol: one point as one line, its keys and values escaped."""

from __future__ import annotations

import math
from collections.abc import Mapping

from pms_store.base import StoreError

FieldValue = int | float | bool | str


def _escape_key(text: str) -> str:
    """Tag keys, tag values and field keys: commas, equals signs and spaces are escaped."""
    if not text:
        raise StoreError("line protocol cannot carry an empty tag value or key")
    if "\n" in text or "\r" in text:
        raise StoreError(f"line protocol cannot carry a line break in a tag value or key: {text!r}")
    if text.endswith("\\"):
        # A trailing backslash would escape the separator that follows it and corrupt the line.
        raise StoreError(f"line protocol cannot carry a tag value or key ending in a backslash: {text!r}")
    return text.replace(",", r"\,").replace("=", r"\=").replace(" ", r"\ ")


def _escape_measurement(text: str) -> str:
    return text.replace(",", r"\,").replace(" ", r"\ ")


def _field_value(value: FieldValue) -> str | None:
    # bool before int: bool is an int subclass, and InfluxDB types a field by its first value,
    # so a bool written as 1i would make the field an integer for good.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        # Line protocol has no NaN or infinity; a register that is not a number is no reading.
        return repr(value) if math.isfinite(value) else None
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def point_line(
    measurement: str, tags: Mapping[str, str], fields: Mapping[str, FieldValue | None], epoch_s: int
) -> str | None:
    """One point, or None when it has no field to carry (InfluxDB refuses a point without fields)."""
    rendered = []
    for key, value in fields.items():
        if value is None:
            continue
        text = _field_value(value)
        if text is not None:
            rendered.append(f"{_escape_key(key)}={text}")
    if not rendered:
        return None
    tag_text = "".join(f",{_escape_key(k)}={_escape_key(v)}" for k, v in sorted(tags.items()))
    return f"{_escape_measurement(measurement)}{tag_text} {','.join(rendered)} {epoch_s}"
