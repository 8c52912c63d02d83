"""The time-series store on InfluxDB, through the v1-compatible HTTP API (line protocol + InfluxQL).

Only `/write` and `/query` are used because they are the one API that InfluxDB 1.x, 2.x (DBRP) and
3.x all serve (DESIGN.md §3). Idempotency rests on InfluxDB's point identity: a point is named by
(measurement, tag set, time), so writing the same reading twice stores one point, and rewriting a
point merges its fields (new values win, fields left out keep their stored value).

Schema (precision: seconds):
- `power`, tag gateway_id: power_w (int), sold_power_w (int), current_r_a, current_t_a; time = measured_at
- `energy_slot`, tag gateway_id: forward_kwh, reverse_kwh, wrap_kwh, backfilled (bool), bought_kwh,
  sold_kwh; time = slot_end
- `weather`, tag service_code: ghi_w_m2, temperature_c, source (string); time = observed_at
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx

from pms_common import timeutil
from pms_common.messages import EnergyReading, PowerReading, Weather
from pms_store.base import LatestPower, StoreError, WriteOutcome
from pms_store.energy import slot_delta

log = logging.getLogger(__name__)

SLOT_S = int(timeutil.SLOT.total_seconds())
DEFAULT_PORT = 8086
# Queries name gateways in an OR list carried in the URL; chunks keep URLs far below server limits.
_IDS_PER_QUERY = 100

FieldValue = int | float | bool | str


@dataclass(frozen=True)
class _Slot:
    """One stored `energy_slot` point, as far as derivation needs it."""

    forward_kwh: float | None = None
    reverse_kwh: float | None = None
    wrap_kwh: float | None = None
    backfilled: bool | None = None
    bought_kwh: float | None = None
    sold_kwh: float | None = None


# --- line protocol -------------------------------------------------------------------------------


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


# --- InfluxQL ------------------------------------------------------------------------------------


def _ql_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _ql_ident(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ql_time(epoch_s: int) -> str:
    return _ql_string(datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))


def _ql_any_of(tag: str, values: Sequence[str]) -> str:
    return "(" + " OR ".join(f"{_ql_ident(tag)} = {_ql_string(v)}" for v in values) + ")"


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


def _float_or_none(value: Any) -> float | None:
    # JSON renders a float field that holds a whole number (1.0) as 1: read every number back as float.
    return None if value is None else float(value)


class InfluxStore:
    def __init__(
        self,
        base_url: str,
        database: str,
        *,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 10.0,
        max_connections: int = 10,
    ) -> None:
        if not database:
            raise StoreError("the InfluxDB URL must name a database: influxdb://host:8086/<db>")
        self.database = database
        self._base_url = base_url.rstrip("/")
        headers = {"User-Agent": "pms-store"}
        if token is not None:
            # InfluxDB 2.x and 3.x v1-compatible endpoints take the API token in this header.
            headers["Authorization"] = f"Token {token}"
        self._auth_params: dict[str, str] = {}
        if username is not None and token is None:
            self._auth_params = {"u": username, "p": password or ""}
        self._client = httpx.Client(
            base_url=self._base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )
        self._write_lock = threading.Lock()
        self._db_lock = threading.Lock()
        self._db_ready = False

    @classmethod
    def from_url(cls, url: str, *, timeout_s: float = 10.0) -> InfluxStore:
        """`influxdb://[user:pass@]host[:8086]/db[?token=...]`; `influxdbs://` for TLS.

        With user `token` the password is the API token (InfluxDB 2.x/3.x); any other user/password
        pair goes to the v1 API as `u`/`p`.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("influxdb", "influxdbs"):
            raise StoreError(f"InfluxDB URL {url!r} must start with influxdb:// or influxdbs://")
        if not parts.hostname:
            raise StoreError("the InfluxDB URL names no host: influxdb://host:8086/<db>")
        try:
            port = parts.port or DEFAULT_PORT
        except ValueError as exc:
            raise StoreError(f"the InfluxDB URL has an invalid port: {exc}") from exc
        database = unquote(parts.path.lstrip("/"))
        if not database or "/" in database:
            raise StoreError("the InfluxDB URL must name one database as its path: influxdb://host:8086/<db>")
        query = parse_qs(parts.query)
        token = query["token"][-1] if query.get("token") else None
        username = unquote(parts.username) if parts.username is not None else None
        password = unquote(parts.password) if parts.password is not None else None
        if token is None and username == "token" and password:
            token, username, password = password, None, None
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        http_scheme = "https" if parts.scheme == "influxdbs" else "http"
        return cls(
            f"{http_scheme}://{host}:{port}",
            database,
            token=token,
            username=username,
            password=password,
            timeout_s=timeout_s,
        )

    # --- HTTP ------------------------------------------------------------------------------------

    def _request(
        self, method: str, path: str, *, params: dict[str, str], content: str | None = None
    ) -> httpx.Response:
        try:
            return self._client.request(
                method,
                path,
                params={**params, **self._auth_params},
                content=content.encode() if content is not None else None,
            )
        except httpx.HTTPError as exc:
            raise StoreError(f"cannot reach InfluxDB at {self._base_url}{path}: {exc}") from exc

    def _refused(self, response: httpx.Response, what: str) -> StoreError:
        try:
            detail = str(response.json().get("error") or response.text)
        except ValueError:
            detail = response.text
        # The cause is built without the URL on purpose: it carries the u/p query parameters.
        cause = httpx.HTTPStatusError(
            f"HTTP {response.status_code}: {detail.strip()}", request=response.request, response=response
        )
        error = StoreError(
            f"InfluxDB at {self._base_url} refused {what} in database {self.database!r}"
            f" (HTTP {response.status_code}): {detail.strip()}"
        )
        error.__cause__ = cause
        return error

    def _ensure_database(self) -> None:
        if self._db_ready:
            return
        with self._db_lock:
            if self._db_ready:
                return
            response = self._request(
                "POST", "/query", params={"q": f"CREATE DATABASE {_ql_ident(self.database)}"}
            )
            if response.status_code >= 500:
                raise self._refused(response, "CREATE DATABASE")
            errors = []
            if response.status_code >= 300:
                errors.append(response.text.strip())
            else:
                errors = [r["error"] for r in response.json().get("results", []) if r.get("error")]
            if errors:
                # InfluxDB 2.x maps databases to buckets (DBRP) and 3.x creates them on first write;
                # neither lets a v1 client CREATE DATABASE, nor does 1.x for a non-admin user. The
                # database then has to exist already, and a write into a missing one fails clearly.
                log.warning(
                    "InfluxDB did not create database %r (%s); assuming it exists or is mapped",
                    self.database,
                    "; ".join(errors),
                )
            self._db_ready = True

    def _write(self, lines: Sequence[str], what: str) -> None:
        if not lines:
            return
        self._ensure_database()
        response = self._request(
            "POST", "/write", params={"db": self.database, "precision": "s"}, content="\n".join(lines) + "\n"
        )
        if response.status_code != 204:
            raise self._refused(response, what)

    def _query(self, q: str) -> list[_Series]:
        """Run one SELECT and return its series; any error becomes a StoreError."""
        self._ensure_database()
        response = self._request("GET", "/query", params={"db": self.database, "epoch": "s", "q": q})
        if response.status_code != 200:
            raise self._refused(response, "a query")
        try:
            results: list[dict[str, Any]] = response.json()["results"]
        except (ValueError, KeyError) as exc:
            raise StoreError(f"InfluxDB at {self._base_url} answered a query with no results: {exc}") from exc
        series: list[_Series] = []
        for result in results:
            if result.get("error"):
                raise StoreError(
                    f"InfluxDB at {self._base_url} refused a query on database {self.database!r}:"
                    f" {result['error']}"
                )
            series.extend(_series_of(result))
        return series

    # --- the store interface ---------------------------------------------------------------------

    def write_readings(
        self, gateway_id: str, power: Sequence[PowerReading], energy: Sequence[EnergyReading]
    ) -> WriteOutcome:
        outcome = WriteOutcome()
        tags = {"gateway_id": gateway_id}
        lines: list[str] = []
        for p in power:
            line = _line(
                "power",
                tags,
                {
                    "power_w": p.power_w,
                    "sold_power_w": p.sold_power_w,
                    "current_r_a": None if p.current_r_a is None else float(p.current_r_a),
                    "current_t_a": None if p.current_t_a is None else float(p.current_t_a),
                },
                timeutil.to_epoch(p.measured_at),
            )
            if line is not None:
                lines.append(line)
        # The lock makes read-derive-write one step for this process, as SQLite's transaction does;
        # a gateway's batches are written by one ingest consumer at a time, so no other writer races.
        with self._write_lock:
            if energy:
                lines.extend(self._energy_lines(gateway_id, energy, outcome))
            self._write(lines, f"the readings of gateway {gateway_id!r}")
        outcome.power_written = len(power)
        outcome.slots_written = len(energy)
        return outcome

    def _energy_lines(
        self, gateway_id: str, energy: Sequence[EnergyReading], outcome: WriteOutcome
    ) -> list[str]:
        incoming: dict[int, EnergyReading] = {}
        for reading in energy:
            slot_end = timeutil.to_epoch(reading.slot_end)
            earlier = incoming.get(slot_end)
            # Two copies of a slot in one batch merge as two consecutive writes would.
            incoming[slot_end] = (
                reading
                if earlier is None
                else reading.model_copy(
                    update={
                        "forward_kwh": _finite(reading.forward_kwh, earlier.forward_kwh),
                        "reverse_kwh": _finite(reading.reverse_kwh, earlier.reverse_kwh),
                        "register_wrap_kwh": _finite(reading.register_wrap_kwh, earlier.register_wrap_kwh),
                        "backfilled": reading.backfilled and earlier.backfilled,
                    }
                )
            )
        stored = self._read_slots(gateway_id, min(incoming) - SLOT_S, max(incoming) + SLOT_S)
        merged = dict(stored)
        for slot_end, reading in incoming.items():
            old = stored.get(slot_end, _Slot())
            merged[slot_end] = _Slot(
                # A copy that lacks a register keeps the stored one (as field merge does on the server).
                forward_kwh=_finite(reading.forward_kwh, old.forward_kwh),
                reverse_kwh=_finite(reading.reverse_kwh, old.reverse_kwh),
                wrap_kwh=_finite(reading.register_wrap_kwh, old.wrap_kwh),
                # A slot once received live stays live; a backfilled copy later does not demote it.
                backfilled=reading.backfilled and (old.backfilled is None or old.backfilled),
                bought_kwh=old.bought_kwh,
                sold_kwh=old.sold_kwh,
            )
        to_derive = sorted(set(incoming) | {slot_end + SLOT_S for slot_end in incoming})
        lines: list[str] = []
        tags = {"gateway_id": gateway_id}
        for slot_end in to_derive:
            current = merged.get(slot_end)
            if current is None:
                continue
            bought, sold = _derive(slot_end, current, merged.get(slot_end - SLOT_S), outcome)
            fields: dict[str, FieldValue | None] = {}
            if slot_end in incoming:
                fields.update(
                    forward_kwh=current.forward_kwh,
                    reverse_kwh=current.reverse_kwh,
                    wrap_kwh=current.wrap_kwh,
                    backfilled=current.backfilled,
                )
            derived = (("bought_kwh", bought, current.bought_kwh), ("sold_kwh", sold, current.sold_kwh))
            for name, new, before in derived:
                # Line protocol cannot clear a field: an underivable slot whose old figure no longer
                # holds gets 0.0, which is what a sum must count for it.
                value = new if new is not None else (0.0 if before is not None else None)
                if value is not None and (slot_end in incoming or value != before):
                    fields[name] = value
            line = _line("energy_slot", tags, fields, slot_end)
            if line is not None:
                lines.append(line)
        return lines

    def _read_slots(self, gateway_id: str, first: int, last: int) -> dict[int, _Slot]:
        """The stored slots of one gateway with slot_end in [first, last], in one query."""
        series = self._query(
            "SELECT forward_kwh, reverse_kwh, wrap_kwh, backfilled, bought_kwh, sold_kwh FROM energy_slot"  # noqa: S608
            f" WHERE gateway_id = {_ql_string(gateway_id)}"
            f" AND time >= {_ql_time(first)} AND time <= {_ql_time(last)}"
        )
        slots: dict[int, _Slot] = {}
        for s in series:
            for row in s.rows:
                backfilled = row.get("backfilled")
                slots[int(row["time"])] = _Slot(
                    forward_kwh=_float_or_none(row.get("forward_kwh")),
                    reverse_kwh=_float_or_none(row.get("reverse_kwh")),
                    wrap_kwh=_float_or_none(row.get("wrap_kwh")),
                    backfilled=None if backfilled is None else bool(backfilled),
                    bought_kwh=_float_or_none(row.get("bought_kwh")),
                    sold_kwh=_float_or_none(row.get("sold_kwh")),
                )
        return slots

    def write_weather(self, weather: Sequence[Weather]) -> None:
        lines = []
        for w in weather:
            # Unlike SQLite's INSERT OR REPLACE, a rewrite without temperature keeps a stored one:
            # line protocol cannot clear a field. A weather source resends the same observation.
            line = _line(
                "weather",
                {"service_code": w.service_code},
                {
                    "ghi_w_m2": float(w.ghi_w_m2),
                    "temperature_c": None if w.temperature_c is None else float(w.temperature_c),
                    "source": w.source,
                },
                timeutil.to_epoch(w.observed_at),
            )
            if line is not None:
                lines.append(line)
        self._write(lines, "weather")

    def latest_power(self, gateway_ids: Iterable[str]) -> dict[str, LatestPower]:
        ids = list(dict.fromkeys(gateway_ids))
        latest: dict[str, LatestPower] = {}
        for chunk in _chunks(ids, _IDS_PER_QUERY):
            # last() picks the point with the newest time, whatever order the points were written in.
            series = self._query(
                f"SELECT last(power_w) FROM power WHERE {_ql_any_of('gateway_id', chunk)} GROUP BY gateway_id"  # noqa: S608
            )
            for s in series:
                gw = s.tags.get("gateway_id")
                if gw is None or not s.rows or s.rows[0].get("last") is None:
                    continue
                row = s.rows[0]
                latest[gw] = LatestPower(gw, timeutil.from_epoch(int(row["time"])), int(row["last"]))
        return latest

    def sold_kwh_between(
        self, gateway_ids: Iterable[str], start: datetime, end: datetime
    ) -> dict[str, float]:
        ids = list(dict.fromkeys(gateway_ids))
        totals = dict.fromkeys(ids, 0.0)
        first, last = timeutil.to_epoch(start), timeutil.to_epoch(end)
        if first >= last:
            return totals
        for chunk in _chunks(ids, _IDS_PER_QUERY):
            series = self._query(
                f"SELECT sum(sold_kwh) FROM energy_slot WHERE {_ql_any_of('gateway_id', chunk)}"  # noqa: S608
                f" AND time > {_ql_time(first)} AND time <= {_ql_time(last)} GROUP BY gateway_id"
            )
            for s in series:
                gw = s.tags.get("gateway_id")
                if gw in totals and s.rows and s.rows[0].get("sum") is not None:
                    totals[gw] = round(float(s.rows[0]["sum"]), 6)
        return totals

    def latest_weather(self, service_code: str) -> Weather | None:
        series = self._query(
            "SELECT ghi_w_m2, temperature_c, source FROM weather"  # noqa: S608
            f" WHERE service_code = {_ql_string(service_code)} ORDER BY time DESC LIMIT 1"
        )
        for s in series:
            for row in s.rows:
                if row.get("ghi_w_m2") is None or row.get("source") is None:
                    continue
                return Weather(
                    service_code=service_code,
                    observed_at=timeutil.from_epoch(int(row["time"])),
                    ghi_w_m2=float(row["ghi_w_m2"]),
                    temperature_c=_float_or_none(row.get("temperature_c")),
                    source=str(row["source"]),
                )
        return None

    def close(self) -> None:
        self._client.close()


def _finite(new: float | None, old: float | None) -> float | None:
    """The new register if it is a usable number, else the stored one."""
    if new is not None and math.isfinite(new):
        return new
    return old


def _derive(
    slot_end: int, current: _Slot, previous: _Slot | None, outcome: WriteOutcome
) -> tuple[float | None, float | None]:
    """A slot's (bought, sold) energy from its registers and the previous slot's, as SqliteStore does."""
    if previous is None:
        return None, None
    wrap = current.wrap_kwh or previous.wrap_kwh
    bought = sold = None
    if previous.forward_kwh is not None and current.forward_kwh is not None:
        delta = slot_delta(previous.forward_kwh, current.forward_kwh, wrap)
        bought = delta.kwh
        if delta.anomaly:
            outcome.register_anomalies.append(f"forward register at slot {slot_end}: {delta.anomaly}")
    if previous.reverse_kwh is not None and current.reverse_kwh is not None:
        delta = slot_delta(previous.reverse_kwh, current.reverse_kwh, wrap)
        sold = delta.kwh
        if delta.anomaly:
            outcome.register_anomalies.append(f"reverse register at slot {slot_end}: {delta.anomaly}")
    return bought, sold
