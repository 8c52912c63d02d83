"""The time-series store on InfluxDB, through the v1-compatible HTTP API (line protocol + InfluxQL).

Only `/write` and `/query` are used because they are the one API that InfluxDB 1.x, 2.x (DBRP) and
3.x all serve. Idempotency rests on InfluxDB's point identity: a point is named by (measurement, tag
set, time), so writing the same reading twice stores one point, and rewriting a point merges its
fields (new values win, fields left out keep their stored value).

The measurements are described in `schema`; what a write derives from the stored registers (slot
energy, rollups, peaks, anomalies) is in `derive`, and the queries are in `queries`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx

from pms_common import timeutil
from pms_common.messages import EnergyReading, ExpectedYield, PowerReading, Weather
from pms_store.base import (
    DailyPeak,
    EnergyInterval,
    EnergyPoint,
    GatewayReadings,
    LatestPower,
    PowerPoint,
    RegisterAnomaly,
    StoreError,
    StoreRefused,
    WriteOutcome,
)
from pms_store.influx.derive import (
    GatewayEnergy,
    batch_peaks,
    peak_line,
    peak_statements,
    peaks_of,
    power_lines,
)
from pms_store.influx.influxql import Series, ql_ident, series_of, statement_id
from pms_store.influx.line_protocol import point_line
from pms_store.influx.queries import InfluxQueries

log = logging.getLogger(__name__)

DEFAULT_PORT = 8086
# Longer queries are POSTed as a form (InfluxDB 1.x, 2.x and 3.x all take q in a POST body).
_MAX_GET_QUERY = 4000
# Points per /write request: ~1 MB of line protocol, far below the servers' body limits.
_LINES_PER_WRITE = 10_000
# Peaks this process knows are stored, per (gateway, JST day): a lower bound that saves a read.
_PEAK_CACHE_MAX = 200_000


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
        # v1 username/password as HTTP Basic (InfluxDB 1.x, and 2.x/3.x's v1 API, take it), not as the
        # u/p query parameters: those are in every request URL, which httpx logs at INFO level (the
        # production rehearsal found the password in ingest's, alerts' and the API's logs).
        self._basic_auth: tuple[str, str] | None = None
        if username is not None and token is None:
            self._basic_auth = (username, password or "")
        self._client = httpx.Client(
            base_url=self._base_url,
            headers=headers,
            auth=self._basic_auth,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )
        self._write_lock = threading.Lock()
        self._db_lock = threading.Lock()
        self._db_ready = False
        self._peak_floor: dict[tuple[str, int], tuple[int, int]] = {}
        self._multi_statement: bool | None = None  # does the server take `;`-separated statements?
        self._queries = InfluxQueries(self._query_many)

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
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str],
        content: str | None = None,
        form: dict[str, str] | None = None,
    ) -> httpx.Response:
        try:
            return self._client.request(
                method,
                path,
                params=params,
                content=content.encode() if content is not None else None,
                data=form,
            )
        except httpx.HTTPError as exc:
            raise StoreError(f"cannot reach InfluxDB at {self._base_url}{path}: {exc}") from exc

    def _refused(self, response: httpx.Response, what: str) -> StoreError:
        try:
            detail = str(response.json().get("error") or response.text)
        except ValueError:
            detail = response.text
        # The cause is built without the URL on purpose (it once carried the u/p query parameters).
        cause = httpx.HTTPStatusError(
            f"HTTP {response.status_code}: {detail.strip()}", request=response.request, response=response
        )
        # 400/413/422 refuse the data itself; anything else (auth, a missing database, a server
        # error) would refuse any data alike.
        kind = StoreRefused if response.status_code in (400, 413, 422) else StoreError
        error = kind(
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
                "POST", "/query", params={"q": f"CREATE DATABASE {ql_ident(self.database)}"}
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
        # Servers cap a request body (InfluxDB 1.x: 25 MB by default); large writes go in parts.
        # A write that fails part way is not acked by ingest and is rewritten whole: idempotent.
        for first in range(0, len(lines), _LINES_PER_WRITE):
            response = self._request(
                "POST", "/write", params={"db": self.database, "precision": "s"},
                content="\n".join(lines[first : first + _LINES_PER_WRITE]) + "\n",
            )
            if response.status_code != 204:
                raise self._refused(response, what)

    def _query(self, q: str) -> list[Series]:
        """Run one SELECT and return its series; any error becomes a StoreError."""
        return [series for result in self._query_many([q]) for series in result]

    def _query_many(self, statements: Sequence[str]) -> list[list[Series]]:
        """Run SELECTs in one request (one round trip); returns the series of each, in order.

        InfluxDB 1.x and 2.x answer `;`-separated statements with one result each. A server that
        does not (InfluxDB 3 has had an open issue about it) is then asked one statement at a
        time, and remembered as such.
        """
        if not statements:
            return []
        self._ensure_database()
        if len(statements) > 1 and self._multi_statement is not False:
            try:
                results = self._send_query(";\n".join(statements))
            except StoreError:
                if self._multi_statement:
                    raise
                results = []
            if len(results) == len(statements):
                self._multi_statement = True
                return [self._series_checked(r) for r in sorted(results, key=statement_id)]
            if self._multi_statement:
                raise StoreError(f"InfluxDB at {self._base_url} answered {len(results)} results"
                                 f" to {len(statements)} statements")
            log.info("InfluxDB at %s does not take several statements per query: sending one at a time",
                     self._base_url)
            self._multi_statement = False
        out = []
        for statement in statements:
            results = self._send_query(statement)
            out.append([series for r in results for series in self._series_checked(r)])
        return out

    def _send_query(self, q: str) -> list[dict[str, Any]]:
        params = {"db": self.database, "epoch": "s"}
        if len(q) <= _MAX_GET_QUERY:
            response = self._request("GET", "/query", params={**params, "q": q})
        else:
            # Long statement lists go in a form body: URLs have length limits, bodies do not.
            response = self._request("POST", "/query", params=params, form={"q": q})
        if response.status_code != 200:
            raise self._refused(response, "a query")
        try:
            results: list[dict[str, Any]] = response.json()["results"]
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"InfluxDB at {self._base_url} answered a query with no results: {exc}") from exc
        return results

    def _series_checked(self, result: Mapping[str, Any]) -> list[Series]:
        if result.get("error"):
            raise StoreError(
                f"InfluxDB at {self._base_url} refused a query on database {self.database!r}: {result['error']}"
            )
        return series_of(result)

    # --- writes --------------------------------------------------------------------------------

    def write_readings(
        self, gateway_id: str, power: Sequence[PowerReading], energy: Sequence[EnergyReading]
    ) -> WriteOutcome:
        return self.write_many([GatewayReadings(gateway_id, power, energy)])[0]

    def write_many(self, batches: Sequence[GatewayReadings]) -> list[WriteOutcome]:
        """All batches cost at most one query (the stored state derivation needs) and one write.

        The lock makes read-derive-write one step for this process, as SQLite's transaction does; a
        gateway's batches are written by one ingest process at a time, so no other writer races.
        """
        outcomes = [WriteOutcome() for _ in batches]
        if not batches:
            return outcomes
        lines: list[str] = []
        for batch, outcome in zip(batches, outcomes, strict=True):
            lines.extend(power_lines(batch.gateway_id, batch.power))
            outcome.power_written = len(batch.power)
            outcome.slots_written = len(batch.energy)
        with self._write_lock:
            detected_at = timeutil.now_jst()
            peaks = batch_peaks(batches)
            unsure = {key: peak for key, peak in peaks.items() if peak > self._peak_floor.get(key, (-1, 0))}
            energy_by_gw: dict[str, list[tuple[GatewayReadings, WriteOutcome]]] = {}
            for batch, outcome in zip(batches, outcomes, strict=True):
                if batch.energy:
                    energy_by_gw.setdefault(batch.gateway_id, []).append((batch, outcome))
            work = [GatewayEnergy(gw, items, detected_at) for gw, items in energy_by_gw.items()]
            statements = [st for w in work for st in w.statements()] + peak_statements(unsure)
            results = self._query_many(statements)
            for w in work:
                w.load(results[:GatewayEnergy.STATEMENTS])
                results = results[GatewayEnergy.STATEMENTS:]
                lines.extend(w.apply())
            stored_peaks = peaks_of(results)
            for key, peak in unsure.items():
                stored = stored_peaks.get(key)
                if stored is None or peak > stored:
                    lines.append(peak_line(key, peak))
                self._remember_peak(key, max(peak, stored) if stored is not None else peak)
            names = sorted({b.gateway_id for b in batches})
            what = (
                f"the readings of gateway {names[0]!r}" if len(names) == 1 else f"the readings of {len(names)} gateways"
            )
            try:
                self._write(lines, what)
            except StoreError:
                # What was remembered may not be stored: forget it rather than skip a needed write.
                for key in unsure:
                    self._peak_floor.pop(key, None)
                raise
        return outcomes

    def _remember_peak(self, key: tuple[str, int], peak: tuple[int, int]) -> None:
        if len(self._peak_floor) >= _PEAK_CACHE_MAX:
            self._peak_floor.clear()
        self._peak_floor[key] = peak

    def write_weather(self, weather: Sequence[Weather]) -> None:
        lines = []
        for w in weather:
            # Unlike SQLite's INSERT OR REPLACE, a rewrite without temperature (or another optional
            # field) keeps a stored one: line protocol cannot clear a field. A weather source resends
            # the same observation.
            line = point_line(
                "weather",
                {"service_code": w.service_code},
                {
                    "ghi_w_m2": float(w.ghi_w_m2),
                    "temperature_c": _float(w.temperature_c),
                    "source": w.source,
                    "dni_w_m2": _float(w.dni_w_m2),
                    "dhi_w_m2": _float(w.dhi_w_m2),
                    "gti_w_m2": _float(w.gti_w_m2),
                    "cloud_cover_pct": _float(w.cloud_cover_pct),
                    "weather_code": w.weather_code,
                    "model": w.model,
                    "stale": w.stale,
                },
                timeutil.to_epoch(w.observed_at),
            )
            if line is not None:
                lines.append(line)
        self._write(lines, "weather")

    def write_expected(self, expected: Sequence[ExpectedYield]) -> None:
        # Every field is always given, so a rewrite of the same (plant, slot) replaces the whole point.
        # Stamped at the slot's START (schema): GROUP BY time() buckets are [t, t + period), so the
        # two slots of an hour, or the 48 of a JST day, fall in the bucket the rollups name.
        lines = [
            point_line("expected", {"service_code": e.service_code},
                       {"expected_kwh": float(s.expected_kwh), "source": s.source,
                        "computed_at": timeutil.to_epoch(e.computed_at)},
                       timeutil.to_epoch(s.slot_end - timeutil.SLOT))
            for e in expected for s in e.slots
        ]
        self._write([line for line in lines if line is not None], "expected")

    # --- queries: InfluxQueries runs them through _query_many -------------------------------------

    def latest_power(self, gateway_ids: Iterable[str]) -> dict[str, LatestPower]:
        return self._queries.latest_power(gateway_ids)

    def sold_kwh_between(self, gateway_ids: Iterable[str], start: datetime, end: datetime) -> dict[str, float]:
        return self._queries.sold_kwh_between(gateway_ids, start, end)

    def power_series(self, gateway_ids: Iterable[str], start: datetime, end: datetime) -> list[PowerPoint]:
        return self._queries.power_series(gateway_ids, start, end)

    def energy_series(
        self, gateway_ids: Iterable[str], start: datetime, end: datetime, interval: EnergyInterval
    ) -> list[EnergyPoint]:
        return self._queries.energy_series(gateway_ids, start, end, interval)

    def daily_peaks(self, gateway_ids: Iterable[str], first_day: date, last_day: date) -> list[DailyPeak]:
        return self._queries.daily_peaks(gateway_ids, first_day, last_day)

    def total_sold_kwh(self, gateway_ids: Iterable[str]) -> dict[str, float]:
        return self._queries.total_sold_kwh(gateway_ids)

    def latest_weather(self, service_code: str) -> Weather | None:
        return self._queries.latest_weather(service_code)

    def weather_series(self, service_code: str, start: datetime, end: datetime) -> list[Weather]:
        return self._queries.weather_series(service_code, start, end)

    def register_anomalies(self, since: datetime, limit: int) -> list[RegisterAnomaly]:
        return self._queries.register_anomalies(since, limit)

    def close(self) -> None:
        self._client.close()


def _float(value: float | None) -> float | None:
    # InfluxDB types a field by its first value: a whole number must still go out as a float.
    return None if value is None else float(value)
