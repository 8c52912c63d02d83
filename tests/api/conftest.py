"""Shared fixture of the API tests: an app on real SQLite files with three plants of two customers."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from pms_api.app import create_app
from pms_api.settings import ApiSettings
from pms_common import timeutil
from pms_common.messages import PowerReading
from pms_registry import Registry
from pms_store import TimeSeriesStore

ADMIN = "admin-secret"
PROBLEM = "application/problem+json"


@dataclass
class Api:
    client: FlaskClient
    registry: Registry
    store: TimeSeriesStore
    keys: dict[str, str]
    codes: dict[str, str]

    def get(self, path: str, key: str | None = ADMIN) -> Any:
        headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
        return self.client.get(path, headers=headers)

    def send(self, method: str, path: str, body: Any = None, key: str | None = ADMIN) -> Any:
        headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
        return self.client.open(path, method=method, json=body, headers=headers)


@pytest.fixture(scope="session")
def migrated_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry made once, with the admin login already hashed: each test starts from a copy
    (password hashing is slow on purpose, and a hundred tests would pay for it twice each)."""
    path = tmp_path_factory.mktemp("registry-template") / "r.db"
    registry = Registry(f"sqlite:///{path}")
    registry.migrate()
    registry.ensure_user(username="admin", password=ADMIN, created_at=timeutil.now_jst())
    registry.close()
    return path


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, migrated_registry: Path,
        pinned_clock: datetime) -> Iterator[Api]:
    for name in ("PMS_CONFIG", "PMS_NOT_MEASURED_INTERVALS", "PMS_ADMIN_PASSWORD", "PMS_CONSOLE_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    shutil.copyfile(migrated_registry, tmp_path / "r.db")
    app = create_app(ApiSettings(registry_url=f"sqlite:///{tmp_path}/r.db", tsdb_url=f"sqlite:///{tmp_path}/ts.db",
                                 admin_api_key=ADMIN))
    registry: Registry = app.config["registry"]
    store: TimeSeriesStore = app.config["store"]
    now = timeutil.now_jst()
    registry.ensure_customer("c1", "Customer One")
    registry.ensure_customer("c2", "Customer Two")
    codes = {}
    for label, customer in (("a", "c1"), ("b", "c1"), ("c", "c2")):
        codes[label] = registry.create_plant(customer_id=customer, name=f"Plant {label}", address=f"Addr {label}",
                                             phone="03-1234-5678", created_at=now, capacity_kw=10.0,
                                             tariff_yen_per_kwh=16.0, latitude=35.0, longitude=139.0)
    registry.bind_gateway("gw-a", codes["a"])
    registry.bind_gateway("gw-c", codes["c"])
    keys = {
        "c1": registry.create_api_key(label="c1", created_at=now, customer_id="c1"),
        "c2": registry.create_api_key(label="c2", created_at=now, customer_id="c2"),
    }
    yield Api(app.test_client(), registry, store, keys, codes)
    store.close()
    registry.close()


@pytest.fixture
def make_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, migrated_registry: Path,
             pinned_clock: datetime) -> Iterator[Callable[..., Any]]:
    """Apps with settings of a test's own (`make_app(api_proxy_hops=1)`), each on fresh SQLite files
    with the admin login, closed after the test."""
    for name in ("PMS_CONFIG", "PMS_ADMIN_PASSWORD", "PMS_CONSOLE_SECRET_KEY", "PMS_CONSOLE_SECURE_COOKIE",
                 "PMS_API_PROXY_HOPS"):
        monkeypatch.delenv(name, raising=False)
    made: list[Any] = []

    def make(**settings: Any) -> Any:
        number = len(made)
        shutil.copyfile(migrated_registry, tmp_path / f"r{number}.db")
        app = create_app(ApiSettings(registry_url=f"sqlite:///{tmp_path}/r{number}.db",
                                     tsdb_url=f"sqlite:///{tmp_path}/ts{number}.db", admin_api_key=ADMIN,
                                     **settings))
        made.append(app)
        return app

    yield make
    for app in made:
        app.config["store"].close()
        app.config["registry"].close()


def write_power(api: Api, gateway_id: str, power_w: int, age: timedelta) -> None:
    api.store.write_readings(gateway_id, power=[PowerReading(measured_at=timeutil.now_jst() - age, power_w=power_w)],
                             energy=[])


def plant_json(api: Api, code: str, key: str = ADMIN) -> dict[str, Any]:
    response = api.get(f"/api/v1/plants/{code}", key)
    assert response.status_code == 200, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    return body




def form_post(client: FlaskClient, path: str, data: dict[str, str]) -> Any:
    """A console form post as a browser sends it: with the session's CSRF token, which any console
    page (here the login page) puts into its forms."""
    client.get("/login")
    with client.session_transaction() as session:
        token = session["csrf_token"]
    return client.post(path, data={**data, "csrf_token": token})
