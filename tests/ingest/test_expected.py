"""Ingest stores the expected yield the weather service publishes: real Mosquitto, both stores, one
value per (plant, slot) however often it comes."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pms_common import timeutil, topics
from pms_common.health import Health
from pms_common.messages import ExpectedSlot, ExpectedYield
from pms_common.mqtt import BrokerAddress
from pms_ingest.service import Ingest
from pms_ingest.settings import IngestSettings
from pms_store.base import TimeSeriesStore
from pms_store.influx import InfluxStore
from pms_store.sqlite import SqliteStore
from tests.store.conftest import influxdb_url  # noqa: F401  (the session's real influxd)

pytestmark = pytest.mark.integration

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=timeutil.JST)


@pytest.fixture(params=["sqlite", "influxdb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TimeSeriesStore]:
    opened: TimeSeriesStore
    if request.param == "sqlite":
        opened = SqliteStore(tmp_path / "ts.db")
    else:
        opened = InfluxStore.from_url(request.getfixturevalue("influxdb_url"))
    yield opened
    opened.close()


def stored(store: TimeSeriesStore, code: str) -> list[tuple[datetime, float, str]]:
    """(slot end, expected kWh, source) as the store holds them, oldest first."""
    if isinstance(store, SqliteStore):
        with sqlite3.connect(store.path) as conn:
            rows = conn.execute("SELECT slot_end, expected_kwh, source FROM expected_energy WHERE service_code = ?"
                                " ORDER BY slot_end", (code,)).fetchall()
        return [(timeutil.from_epoch(end), kwh, source) for end, kwh, source in rows]
    assert isinstance(store, InfluxStore)
    series = store._query(f"SELECT expected_kwh, source FROM expected WHERE service_code = '{code}'")
    # InfluxDB stamps a slot at its start (schema): its end is 30 minutes later.
    return [(timeutil.from_epoch(row["time"]) + timeutil.SLOT,
             float(row["expected_kwh"]), row["source"]) for s in series for row in s.rows]


def message(code: str, kwh: list[float], first: datetime = T0) -> ExpectedYield:
    return ExpectedYield(service_code=code, computed_at=datetime.now(UTC), calibration=1.0, slots=[
        ExpectedSlot(slot_end=first + timedelta(minutes=30 * n), expected_kwh=value, source="clear_sky")
        for n, value in enumerate(kwh)])


def test_ingest_stores_each_slot_once_and_a_revision_replaces_it(mosquitto: str, store: TimeSeriesStore) -> None:
    code = f"pss{secrets.randbelow(10**8):08d}"
    run = uuid.uuid4().hex[:8]
    settings = IngestSettings(mqtt_url=mosquitto, mqtt_client_id=f"ingest-expected-{run}", persistent_session=False)
    service = Ingest(settings, store, Health())
    want = [(T0, 1.5, "clear_sky"), (T0 + timedelta(minutes=30), 2.25, "clear_sky"),
            (T0 + timedelta(minutes=60), 3.0, "clear_sky")]

    async def main() -> None:
        stop = asyncio.Event()
        running = asyncio.create_task(service.run(stop))
        for _ in range(600):  # subscribed within 30 s
            if service.health.snapshot().get("mqtt"):
                break
            await asyncio.sleep(0.05)
        async with BrokerAddress.parse(mosquitto).client(identifier=f"weather-{run}") as weather:
            # The first round, the same again (a resend), then a revision of the last two slots.
            for payload in (message(code, [1.5, 2.0]), message(code, [1.5, 2.0]),
                            message(code, [2.25, 3.0], T0 + timedelta(minutes=30))):
                await weather.publish(topics.expected(code), payload.to_json(), qos=1)
            # A payload for another plant's topic is dead-lettered, not stored.
            await weather.publish(topics.expected("pss00000000"), message(code, [9.0]).to_json(), qos=1)
        for _ in range(300):  # stored within 30 s
            if await asyncio.to_thread(stored, store, code) == want:
                break
            await asyncio.sleep(0.1)
        stop.set()
        await running

    asyncio.run(main())
    assert stored(store, code) == want
