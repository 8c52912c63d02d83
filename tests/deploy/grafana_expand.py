"""Grafana's expansion of a panel query, as Grafana 11 does it, so the tests run what Grafana would send.

- Time range: the dashboard's `time` (date math in the dashboard's time zone), or the panel's
  relative time `timeFrom` ("5m" = now-5m, "now/d" = today so far, "now-30d/d") with `to` = now.
- $__interval: (to - from) / maxDataPoints rounded by Grafana's table (rangeutil roundInterval), at
  least the datasource's minimum interval (its `timeInterval`), written as Go's FormatInterval does.
- Template variables (frontend, before the query leaves): `${name:regex}` is Grafana's regex format
  ((a|b), each value regex-escaped); a plain `$name` of a single-value variable is its bare text in
  InfluxQL, and in SQL its text with quotes doubled (multi-value: each quoted, comma-separated).
- InfluxQL macros (the InfluxDB datasource's backend): $timeFilter = `time >= {from}ms and time <= {to}ms`,
  then $interval, $__interval_ms, $__interval.
- SQL macros (the PostgreSQL datasource's backend): $__timeFilter(col) = `col BETWEEN '{from}' AND '{to}'`,
  $__timeFrom(), $__timeTo() (RFC 3339, UTC).
- PromQL built-ins: $__rate_interval = max($__interval + scrape interval, 4 × scrape interval),
  $__interval, $__range (seconds, "86400s").
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime

    @property
    def span_ms(self) -> int:
        return int((self.end - self.start).total_seconds() * 1000)


_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _shift(moment: datetime, amount: int, unit: str) -> datetime:
    """Calendar arithmetic as moment.js does it: days in local time, months clamped to the month's end."""
    if unit in ("M", "y"):
        months = moment.year * 12 + moment.month - 1 + (amount * 12 if unit == "y" else amount)
        year, month = divmod(months, 12)
        for day in range(moment.day, 27, -1):
            try:
                return moment.replace(year=year, month=month + 1, day=day)
            except ValueError:
                continue
        return moment.replace(year=year, month=month + 1)
    if unit in ("d", "w"):
        days = amount * (7 if unit == "w" else 1)
        return (moment.replace(tzinfo=None) + timedelta(days=days)).replace(tzinfo=moment.tzinfo)
    return moment + timedelta(seconds=amount * _SECONDS[unit])


def _start_of(moment: datetime, unit: str) -> datetime:
    if unit == "s":
        return moment.replace(microsecond=0)
    if unit == "m":
        return moment.replace(second=0, microsecond=0)
    if unit == "h":
        return moment.replace(minute=0, second=0, microsecond=0)
    if unit == "d":
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "M":
        return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if unit == "y":
        return moment.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    raise ValueError(f"unit {unit!r}")


def date_math(text: str, now: datetime, zone: str) -> datetime:
    """Grafana's date math for a range's `from` (rounding down): now[±N unit]...[/unit]."""
    if not text.startswith("now"):
        raise ValueError(f"only relative times are used in PMS's dashboards: {text!r}")
    moment = now.astimezone(ZoneInfo(zone))
    for sign, amount, unit, rounding in re.findall(r"([+-])(\d+)([smhdwMy])|/([smhdwMy])", text[3:]):
        if rounding:
            moment = _start_of(moment, rounding)
        else:
            moment = _shift(moment, -int(amount) if sign == "-" else int(amount), unit)
    consumed = re.sub(r"[+-]\d+[smhdwMy]|/[smhdwMy]", "", text[3:])
    if consumed:
        raise ValueError(f"date math {text!r} not understood")
    return moment


def panel_range(dashboard: Mapping[str, object], panel: Mapping[str, object], now: datetime) -> TimeRange:
    zone = str(dashboard.get("timezone") or "browser")
    time = dashboard["time"]
    assert isinstance(time, Mapping)
    start_text, end_text = str(time["from"]), str(time["to"])
    time_from = panel.get("timeFrom")
    if time_from:
        # A panel's relative time replaces the range; "5m" is short for now-5m.
        start_text = str(time_from) if str(time_from).startswith("now") else f"now-{time_from}"
        end_text = "now"
    if end_text != "now":
        raise ValueError(f"dashboards end at now: {end_text!r}")
    return TimeRange(date_math(start_text, now, zone), now.astimezone(UTC))


# Grafana's rangeutil roundInterval: (upper bound ms, interval ms).
_ROUNDING = (
    (10, 1), (15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500), (1500, 1000), (3500, 2000),
    (7500, 5000), (12500, 10000), (17500, 15000), (25000, 20000), (45000, 30000), (90000, 60000),
    (210000, 120000), (450000, 300000), (750000, 600000), (1050000, 900000), (1500000, 1200000),
    (2700000, 1800000), (5400000, 3600000), (9000000, 7200000), (16200000, 10800000),
    (32400000, 21600000), (86400000, 43200000), (604800000, 86400000), (1814400000, 604800000),
    (3628800000, 2592000000),
)


def round_interval(ms: float) -> int:
    for upper, interval in _ROUNDING:
        if ms < upper:
            return interval
    return 31536000000


def interval_ms(rng: TimeRange, max_data_points: int, min_interval_s: float) -> int:
    return max(round_interval(rng.span_ms / max_data_points), int(min_interval_s * 1000))


def format_interval(ms: int) -> str:
    """Go's gtime.FormatInterval: the largest whole unit."""
    for unit_ms, suffix in ((31536000000, "y"), (86400000, "d"), (3600000, "h"), (60000, "m"), (1000, "s")):
        if ms >= unit_ms:
            return f"{ms // unit_ms}{suffix}"
    return f"{max(ms, 1)}ms"


# --------------------------------------------------------------------------- template variables


@dataclass(frozen=True)
class Variable:
    """A variable's current value(s) and how it was declared (multi / include all)."""

    name: str
    values: tuple[str, ...]
    multi: bool = False


def _regex_escape(value: str) -> str:
    # Grafana's regex format escapes these (including "/", which ends an InfluxQL regex literal).
    return re.sub(r"[\\^$*+?.()|\[\]{}/]", lambda m: "\\" + m.group(0), value)


def _format(variable: Variable, fmt: str | None, dialect: str) -> str:
    values = variable.values
    if fmt == "regex":
        escaped = [_regex_escape(v) for v in values]
        return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"
    if fmt == "raw":
        return ",".join(values)
    if fmt is not None:
        raise ValueError(f"variable format {fmt!r} is not emulated here")
    if dialect == "sql":
        if variable.multi:
            return ",".join("'" + v.replace("'", "''") + "'" for v in values)
        return values[0].replace("'", "''")
    if dialect == "influxql":
        # The InfluxDB datasource's interpolateQueryExpr: a multi-value variable is escaped and
        # parenthesized; a single value as it is (PMS never puts one inside a regex).
        if variable.multi:
            return "(" + "|".join(_regex_escape(v) for v in values) + ")"
        return values[0]
    raise ValueError(f"template variables in {dialect} are not used by PMS's dashboards")


_VARIABLE = re.compile(r"\$(?:\{(\w+)(?::(\w+))?\}|(?!__)(\w+))")


def interpolate(text: str, variables: Mapping[str, Variable], dialect: str) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        if name not in variables:
            return match.group(0)  # a macro ($timeFilter, $interval): the backend's
        return _format(variables[name], match.group(2), dialect)

    return _VARIABLE.sub(replace, text)


# --------------------------------------------------------------------------- datasource macros


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def expand_influxql(query: str, rng: TimeRange, interval: int) -> str:
    interval_text = format_interval(interval)
    query = query.replace("$timeFilter", f"time >= {_ms(rng.start)}ms and time <= {_ms(rng.end)}ms")
    query = query.replace("$interval", interval_text)
    query = query.replace("$__interval_ms", str(interval))
    return query.replace("$__interval", interval_text)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def expand_sql(query: str, rng: TimeRange) -> str:
    query = re.sub(
        r"\$__timeFilter\(([^)]*)\)",
        lambda m: f"{m.group(1).strip()} BETWEEN '{_rfc3339(rng.start)}' AND '{_rfc3339(rng.end)}'", query,
    )
    query = query.replace("$__timeFrom()", f"'{_rfc3339(rng.start)}'")
    return query.replace("$__timeTo()", f"'{_rfc3339(rng.end)}'")


def expand_promql(expr: str, *, interval_s: int, range_s: int, scrape_interval_s: int = 15) -> str:
    """Grafana's built-ins in PromQL: the only ones PMS's dashboards use (the rehearsal expands the same)."""
    rate_interval_s = max(interval_s + scrape_interval_s, 4 * scrape_interval_s)
    for name, value in (  # longest names first
        ("$__rate_interval_ms", str(rate_interval_s * 1000)), ("$__rate_interval", f"{rate_interval_s}s"),
        ("$__interval_ms", str(interval_s * 1000)), ("$__interval", f"{interval_s}s"),
        ("$__range_ms", str(range_s * 1000)), ("$__range_s", str(range_s)), ("$__range", f"{range_s}s"),
    ):
        expr = expr.replace(name, value)
    return expr


def unexpanded(text: str) -> Sequence[str]:
    """What is left of `$...` after expansion: nothing, or Grafana would send it as it is."""
    return re.findall(r"\$\{?\w+", text)
