"""What only the InfluxDB store has: its URL, its request budget per write, and its errors."""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import datetime

import httpx
import pytest

from pms_common import timeutil
from pms_common.messages import EnergyReading, PowerReading
from pms_store import GatewayReadings, StoreError, StoreRefused, open_store
from pms_store.influx import InfluxStore

T0 = datetime(2024, 6, 1, 9, tzinfo=timeutil.JST)


def test_the_url_names_host_database_and_v1_credentials() -> None:
    store = InfluxStore.from_url("influxdb://ingest:s%3Acret@influx.example:9999/pms")
    try:
        assert (store._base_url, store.database) == ("http://influx.example:9999", "pms")
        assert store._basic_auth == ("ingest", "s:cret")
        assert "Authorization" not in store._client.headers  # Basic auth is added per request
    finally:
        store.close()


@pytest.mark.parametrize(
    "url",
    ["influxdbs://token:tok%2Fen@influx.example/pms", "influxdbs://influx.example/pms?token=tok/en"],
)
def test_a_token_goes_in_the_authorization_header_and_tls_is_https(url: str) -> None:
    store = open_store(url)
    assert isinstance(store, InfluxStore)
    try:
        assert (store._base_url, store.database) == ("https://influx.example:8086", "pms")
        assert store._client.headers["Authorization"] == "Token tok/en"
        assert store._basic_auth is None
    finally:
        store.close()


@pytest.mark.parametrize(
    "url", ["influxdb://influx.example:8086", "influxdb://influx.example:8086/", "http://x/db"]
)
def test_a_url_without_a_database_or_with_another_scheme_is_refused(url: str) -> None:
    with pytest.raises(StoreError, match=r"influxdb://"):
        InfluxStore.from_url(url)


def test_an_unreachable_server_raises_store_error_with_the_cause() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens once the socket closes
    store = InfluxStore.from_url(f"influxdb://127.0.0.1:{port}/pms", timeout_s=2.0)
    try:
        with pytest.raises(StoreError, match=r"cannot reach InfluxDB at http://127.0.0.1") as caught:
            store.write_readings("gw-1", [PowerReading(measured_at=T0, power_w=1)], [])
        assert isinstance(caught.value.__cause__, httpx.ConnectError)
    finally:
        store.close()


@pytest.mark.integration
def test_a_batch_costs_one_write_and_one_query(influxdb_url: str, new_id: Callable[[str], str]) -> None:
    store = InfluxStore.from_url(influxdb_url)
    gw = new_id("gw")
    requests: list[str] = []
    try:
        store.write_readings(gw, [PowerReading(measured_at=T0, power_w=-1)], [])  # creates the database
        store._client.event_hooks["request"].append(lambda r: requests.append(f"{r.method} {r.url.path}"))
        slots = [
            EnergyReading(slot_end=timeutil.from_epoch(timeutil.to_epoch(T0) + i * 1800), reverse_kwh=i * 0.5)
            for i in range(48)
        ]
        power = [
            PowerReading(measured_at=timeutil.from_epoch(timeutil.to_epoch(T0) + i * 10), power_w=-i)
            for i in range(100)
        ]
        outcome = store.write_readings(gw, power, slots)
        assert (outcome.power_written, outcome.slots_written) == (100, 48)
        assert sorted(requests) == ["GET /query", "POST /write"]
        # The peak of the day was read once and is remembered: the next batch costs only its write.
        requests.clear()
        store.write_readings(gw, [PowerReading(measured_at=T0.replace(minute=59), power_w=-1)], [])
        assert requests == ["POST /write"]
        assert store.sold_kwh_between([gw], T0, timeutil.from_epoch(timeutil.to_epoch(T0) + 47 * 1800)) == {
            gw: pytest.approx(23.5, abs=1e-9)
        }
    finally:
        store.close()


@pytest.mark.integration
def test_a_refused_write_raises_store_error_with_the_server_reason(
    influxdb_url: str, new_id: Callable[[str], str]
) -> None:
    store = InfluxStore.from_url(influxdb_url)
    # InfluxDB types a field per shard (one week here) by its first value: another writer has made
    # power_w a float in a week no other test writes, so our integer is refused there.
    elsewhere = datetime(2031, 1, 8, 12, tzinfo=timeutil.JST)
    try:
        store._write(
            [f"power,gateway_id=other power_w=1.5 {timeutil.to_epoch(elsewhere)}"], "a float power_w"
        )
        gw = new_id("gw")
        with pytest.raises(
            StoreRefused, match=r"refused the readings of gateway .* field type conflict"
        ) as caught:
            store.write_readings(gw, [PowerReading(measured_at=elsewhere, power_w=-1)], [])
        assert isinstance(caught.value.__cause__, httpx.HTTPStatusError)
        assert caught.value.__cause__.response.status_code == 400
        assert store.latest_power([gw]) == {}
    finally:
        store.close()


@pytest.mark.integration
def test_a_flush_of_many_gateways_costs_one_query_and_one_write(
    influxdb_url: str, new_id: Callable[[str], str]
) -> None:
    store = InfluxStore.from_url(influxdb_url)
    gateways = [new_id("gw") for _ in range(150)]  # more than one chunk of ids per statement
    requests: list[str] = []
    try:
        store.write_readings(new_id("warm-up"), [PowerReading(measured_at=T0, power_w=0)], [])  # creates the database
        store._client.event_hooks["request"].append(lambda r: requests.append(f"{r.method} {r.url.path}"))
        batches = [
            GatewayReadings(
                gw,
                [PowerReading(measured_at=T0, power_w=-n)],
                [EnergyReading(slot_end=T0, reverse_kwh=1.0), EnergyReading(slot_end=T0.replace(minute=30), reverse_kwh=1.5)],
            )
            for n, gw in enumerate(gateways)
        ]
        outcomes = store.write_many(batches)
        assert [o.slots_written for o in outcomes] == [2] * len(gateways)
        assert sorted(requests) == ["POST /query", "POST /write"]  # the statements outgrow a URL: POSTed
        assert store.total_sold_kwh(gateways) == dict.fromkeys(gateways, pytest.approx(0.5))
        assert [p.peak_sold_w for p in store.daily_peaks(gateways, T0.date(), T0.date())] == [
            n for _, n in sorted((gw, n) for n, gw in enumerate(gateways))
        ]
    finally:
        store.close()


def test_a_server_that_answers_one_statement_per_query_is_asked_one_at_a_time() -> None:
    """InfluxDB 3 has had an open issue on `;`-separated statements: the store must not rely on them."""
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        q = request.url.params.get("q") or dict(httpx.QueryParams(request.content.decode())).get("q", "")
        asked.append(q)
        if q.startswith("CREATE"):
            return httpx.Response(200, json={"results": [{"statement_id": 0}]})
        # Like a server that runs only the first statement of the text.
        rows = {"statement_id": 0, "series": [{"name": "m", "columns": ["time", "v"], "values": [[1, len(asked)]]}]}
        return httpx.Response(200, json={"results": [rows]})

    store = InfluxStore("http://influx.example:8086", "pms")
    store._client = httpx.Client(base_url="http://influx.example:8086", transport=httpx.MockTransport(handler))
    try:
        first = store._query_many(["SELECT v FROM a", "SELECT v FROM b"])
        assert [[row["v"] for s in result for row in s.rows] for result in first] == [[3], [4]]
        assert store._multi_statement is False
        asked.clear()
        store._query_many(["SELECT v FROM a", "SELECT v FROM b"])
        assert asked == ["SELECT v FROM a", "SELECT v FROM b"]
    finally:
        store.close()
