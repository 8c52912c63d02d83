"""Fixtures of the store tests: both stores behind one `store` fixture, InfluxDB a real server.

The InfluxDB server is Debian's `influxd` (1.x) started once per session on free ports, or the
server `PMS_TEST_INFLUXDB_URL` names. Without either the InfluxDB tests fail: a skipped contract
would let the InfluxDB store drift from SQLite unnoticed.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

import httpx
import pytest

from pms_common import timeutil
from pms_store.base import TimeSeriesStore
from pms_store.influx import InfluxStore
from pms_store.sqlite import SqliteStore

_START_TIMEOUT_S = 30.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _log_tail(path: Path) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-20:])
    except OSError:
        return "(no log)"


@pytest.fixture(scope="session")
def influxdb_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a real InfluxDB with a database of its own for this session."""
    given = os.environ.get("PMS_TEST_INFLUXDB_URL")
    if given:
        yield given
        return
    influxd = shutil.which("influxd")
    if influxd is None:
        pytest.fail(
            "no InfluxDB to test against: install Debian's influxdb package or set PMS_TEST_INFLUXDB_URL",
            pytrace=False,
        )
    root = tmp_path_factory.mktemp("influxd")
    http_port, rpc_port = _free_port(), _free_port()
    config = root / "influxdb.conf"
    config.write_text(
        f"""reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{root / "meta"}"

[data]
  dir = "{root / "data"}"
  wal-dir = "{root / "wal"}"
  query-log-enabled = false

[monitor]
  store-enabled = false

[http]
  bind-address = "127.0.0.1:{http_port}"
  log-enabled = false
"""
    )
    log_path = root / "influxd.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([influxd, "-config", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"influxd exited with {proc.returncode} on start:\n{_log_tail(log_path)}", pytrace=False
                )
            try:
                if httpx.get(f"http://127.0.0.1:{http_port}/ping", timeout=1.0).status_code == 204:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"influxd did not answer /ping within {_START_TIMEOUT_S:.0f} s:\n{_log_tail(log_path)}"
                )
            time.sleep(0.1)
        yield f"influxdb://127.0.0.1:{http_port}/pms_test_{secrets.token_hex(4)}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@dataclass
class StoredSlot:
    backfilled: bool | None
    bought_kwh: float | None
    sold_kwh: float | None


class RawReader:
    """Reads what a store holds beneath its interface (flags, per-point counts) in its own terms."""

    def __init__(self, store: TimeSeriesStore) -> None:
        self.store = store

    def slot(self, gateway_id: str, slot_end_epoch: int) -> StoredSlot | None:
        if isinstance(self.store, SqliteStore):
            with sqlite3.connect(self.store.path) as conn:
                row = conn.execute(
                    "SELECT backfilled, bought_kwh, sold_kwh FROM energy_slot"
                    " WHERE gateway_id = ? AND slot_end = ?",
                    (gateway_id, slot_end_epoch),
                ).fetchone()
            return None if row is None else StoredSlot(bool(row[0]), row[1], row[2])
        assert isinstance(self.store, InfluxStore)
        moment = timeutil.from_epoch(slot_end_epoch).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        series = self.store._query(
            "SELECT backfilled, bought_kwh, sold_kwh FROM energy_slot"
            f" WHERE gateway_id = {_influx_string(gateway_id)} AND time = '{moment}'"
        )
        rows = [row for s in series for row in s.rows]
        if not rows:
            return None
        assert len(rows) == 1, rows
        row = rows[0]
        return StoredSlot(row["backfilled"], _float(row["bought_kwh"]), _float(row["sold_kwh"]))

    def power_points(self, gateway_id: str) -> int:
        if isinstance(self.store, SqliteStore):
            with sqlite3.connect(self.store.path) as conn:
                count: int = conn.execute(
                    "SELECT count(*) FROM power WHERE gateway_id = ?", (gateway_id,)
                ).fetchone()[0]
            return count
        assert isinstance(self.store, InfluxStore)
        series = self.store._query(
            f"SELECT count(power_w) FROM power WHERE gateway_id = {_influx_string(gateway_id)}"
        )
        return sum(int(row["count"]) for s in series for row in s.rows)


def _float(value: float | int | None) -> float | None:
    return None if value is None else float(value)


def _influx_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@pytest.fixture(params=["sqlite", pytest.param("influxdb", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TimeSeriesStore]:
    """A fresh store of each kind: SQLite in a new file, InfluxDB on the session's server.

    InfluxDB tests share the session database (a server named by PMS_TEST_INFLUXDB_URL may not let
    us create more), so every test uses fresh gateway ids and service codes from `new_id`.
    """
    opened: TimeSeriesStore
    if request.param == "sqlite":
        opened = SqliteStore(tmp_path / "ts.db")
    else:
        opened = InfluxStore.from_url(request.getfixturevalue("influxdb_url"))
    yield opened
    opened.close()


@pytest.fixture
def raw(store: TimeSeriesStore) -> RawReader:
    return RawReader(store)


@pytest.fixture
def new_id() -> Callable[[str], str]:
    """Gateway ids no other test has used: `new_id("gw")` -> "gw-3f9a1c2e"."""

    def make(prefix: str) -> str:
        return f"{prefix}-{secrets.token_hex(4)}"

    return make


@pytest.fixture
def new_service_code() -> Callable[[], str]:
    def make() -> str:
        return f"pss{secrets.randbelow(10**8):08d}"

    return make
