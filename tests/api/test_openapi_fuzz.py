"""Schemathesis against /openapi.json, in-process on the WSGI app: at least 1,000 generated requests,
no server error, and every answer (status, content type, body) as the document says."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from pms_api.app import create_app
from pms_api.settings import ApiSettings
from pms_common import timeutil
from pms_common.messages import EnergyReading, PowerReading, Weather
from tests.postgres import scratch_database

ADMIN = "fuzz-admin-key"
# A developer's make test: 20 generated requests per operation (1,660 over the 83 operations, in about
# 20 s); CI (CI=true, as the Makefile's slow runs) 70 per operation (5,810, a minute and more).
EXAMPLES_PER_OPERATION = 70 if os.environ.get("CI") else 20
MIN_REQUESTS = 1000


@pytest.fixture
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """SQLite, or a scratch database on the real PostgreSQL (127.0.0.1:5432, trust auth) dropped after."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/r.db"
        return
    with scratch_database("pms_fuzz") as url:
        yield url


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registry_url: str) -> Iterator[Any]:
    for name in ("PMS_CONFIG", "PMS_ADMIN_PASSWORD", "PMS_CONSOLE_SECRET_KEY", "PMS_NOT_MEASURED_INTERVALS"):
        monkeypatch.delenv(name, raising=False)
    app = create_app(ApiSettings(registry_url=registry_url, tsdb_url=f"sqlite:///{tmp_path}/ts.db",
                                 admin_api_key=ADMIN))
    registry, store = app.config["registry"], app.config["store"]
    now = timeutil.now_jst()
    start, _ = timeutil.today_bounds(now)
    registry.ensure_customer("c1", "One")
    for index in range(3):
        code = registry.create_plant(customer_id="c1", name=f"P{index}", address="東京都", phone="03",
                                     created_at=now, tariff_yen_per_kwh=16.0)
        registry.bind_gateway(f"gw-{index}", code)
        store.write_readings(f"gw-{index}", power=[PowerReading(measured_at=now, power_w=-1500)], energy=[
            EnergyReading(slot_end=start + timedelta(minutes=30 * i), forward_kwh=1.0, reverse_kwh=10.0 + i)
            for i in range(3)])
        store.write_weather([Weather(service_code=code, observed_at=now, ghi_w_m2=300.0, source="fuzz")])
    yield app
    store.close()
    registry.close()


# The same requests against PostgreSQL take 90 s: CI runs them (slow), a developer's make test the SQLite run.
@pytest.mark.parametrize("registry_url", ["sqlite", pytest.param("postgresql", marks=[pytest.mark.integration, pytest.mark.slow])],
                         indirect=True)
def test_generated_requests_find_no_server_error_nor_schema_break(app: Any) -> None:
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    headers = {"Authorization": f"Bearer {ADMIN}"}
    sent = 0
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:
            nonlocal sent
            sent += 1
            # Schema-valid bodies may name a customer or plant that does not exist: we answer those
            # 422 (a semantic error, RFC 9110 §15.5.21), which this one check counts as rejecting valid data.
            case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

        check()
    print(f"schemathesis sent {sent} requests to {len(operations)} operations")
    assert sent >= MIN_REQUESTS


@pytest.mark.parametrize("registry_url", ["sqlite"], indirect=True)
def test_the_document_names_problem_json_and_csv(app: Any) -> None:
    document = app.test_client().get("/openapi.json").get_json()
    energy = document["paths"]["/api/v1/plants/{service_code}/energy"]["get"]["responses"]
    assert set(energy["200"]["content"]) == {"application/json", "text/csv"}
    assert "application/problem+json" in energy["404"]["content"]
