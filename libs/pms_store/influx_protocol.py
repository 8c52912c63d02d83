"""Line protocol and InfluxQL for the InfluxDB store: escaping, point lines, query results."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pms_store.base import StoreError

# Queries name gateways in one regex alternation (see _ql_any_of). One statement per 1,000 gateways
# keeps a statement near 20 KB (sent as a POST body) and the server's regex small, while a fleet of
# 1,000 gateways is read in one statement: the server's cost is per series, plus a fixed cost per
# statement that chunks of 100 paid ten times.
_IDS_PER_QUERY = 1000

FieldValue = int | float | bool | str

# Escapes the characters that are special in a regex to Go's regexp (InfluxDB 1.x/2.x) and to Rust's
# regex crate (InfluxDB 3): escaping only these keeps the pattern valid in both. A slash ends an
# InfluxQL /regex/, which carries it as `\/`.
_REGEX_ESCAPES = str.maketrans({c: "\\" + c for c in "\\.+*?()|[]{}^$/"})


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


def _line(
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


def _ql_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _ql_ident(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ql_time(epoch_s: int) -> str:
    return _ql_string(datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))


def _ql_regex_literal(text: str) -> str:
    """`text` matched literally, as (part of) the body of an InfluxQL /regex/."""
    return text.translate(_REGEX_ESCAPES)


def _ql_any_of(tag: str, values: Sequence[str]) -> str:
    """The tag is one of the values: one regex for several (an OR chain of equalities costs InfluxDB
    1.6 ~2x the time at 100 values and ~7x at 1,000), a plain equality for one (an index lookup)."""
    if len(values) == 1:
        return f"{_ql_ident(tag)} = {_ql_string(values[0])}"
    return f"{_ql_ident(tag)} =~ /^(?:{'|'.join(_ql_regex_literal(v) for v in values)})$/"


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@dataclass(frozen=True)
class _Series:
    tags: dict[str, str]
    rows: list[dict[str, Any]]


def _series_of(result: Mapping[str, Any]) -> list[_Series]:
    out = []
    for series in result.get("series") or []:
        columns: list[str] = list(series.get("columns") or [])
        rows = [dict(zip(columns, values, strict=False)) for values in series.get("values") or []]
        out.append(_Series(tags=dict(series.get("tags") or {}), rows=rows))
    return out


def _statement_id(result: Mapping[str, Any]) -> int:
    return int(result.get("statement_id", 0))


def _float_or_none(value: Any) -> float | None:
    # JSON renders a float field that holds a whole number (1.0) as 1: read every number back as float.
    return None if value is None else float(value)
