"""InfluxQL for the InfluxDB store: literals, identifiers, the gateway filter, and the results read back."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# Queries name gateways in one regex alternation (see ql_any_of). One statement per 1,000 gateways
# keeps a statement near 20 KB (sent as a POST body) and the server's regex small, while a fleet of
# 1,000 gateways is read in one statement: the server's cost is per series, plus a fixed cost per
# statement that chunks of 100 paid ten times.
IDS_PER_QUERY = 1000

# Escapes the characters that are special in a regex to Go's regexp (InfluxDB 1.x/2.x) and to Rust's
# regex crate (InfluxDB 3): escaping only these keeps the pattern valid in both. A slash ends an
# InfluxQL /regex/, which carries it as `\/`.
_REGEX_ESCAPES = str.maketrans({c: "\\" + c for c in "\\.+*?()|[]{}^$/"})


def ql_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def ql_ident(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def ql_time(epoch_s: int) -> str:
    return ql_string(datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))


def _ql_regex_literal(text: str) -> str:
    """`text` matched literally, as (part of) the body of an InfluxQL /regex/."""
    return text.translate(_REGEX_ESCAPES)


def ql_any_of(tag: str, values: Sequence[str]) -> str:
    """The tag is one of the values: one regex for several (an OR chain of equalities costs InfluxDB
    1.6 ~2x the time at 100 values and ~7x at 1,000), a plain equality for one (an index lookup)."""
    if len(values) == 1:
        return f"{ql_ident(tag)} = {ql_string(values[0])}"
    return f"{ql_ident(tag)} =~ /^(?:{'|'.join(_ql_regex_literal(v) for v in values)})$/"


def chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@dataclass(frozen=True)
class Series:
    """One series of a statement's result: its tags (those grouped by) and its rows by column."""

    tags: dict[str, str]
    rows: list[dict[str, Any]]


def series_of(result: Mapping[str, Any]) -> list[Series]:
    out = []
    for series in result.get("series") or []:
        columns: list[str] = list(series.get("columns") or [])
        rows = [dict(zip(columns, values, strict=False)) for values in series.get("values") or []]
        out.append(Series(tags=dict(series.get("tags") or {}), rows=rows))
    return out


def statement_id(result: Mapping[str, Any]) -> int:
    return int(result.get("statement_id", 0))


def float_or_none(value: Any) -> float | None:
    # JSON renders a float field that holds a whole number (1.0) as 1: read every number back as float.
    return None if value is None else float(value)
