"""Registry creation and the v1 upgrade on the real PostgreSQL (127.0.0.1:5432, trust auth), in a scratch
database made for the test and dropped after it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pms_common import timeutil
from pms_registry import schema as t
from pms_registry.registry import Registry
from tests.postgres import scratch_database
from tests.registry.test_migrations import check_upgraded_v1, check_upgraded_v2, make_v2_registry
from tests.registry.v1_fixture import make_v1_registry

pytestmark = pytest.mark.integration


@pytest.fixture
def scratch_url() -> Iterator[str]:
    with scratch_database() as url:
        yield url


def test_a_v1_registry_is_upgraded_on_postgresql(scratch_url: str) -> None:
    registry = Registry(scratch_url)
    make_v1_registry(registry.engine)
    registry.migrate()
    registry.ensure_customer("c2", "Other")
    check_upgraded_v1(registry)
    registry.migrate()
    assert registry.schema_version() == t.SCHEMA_VERSION
    registry.close()


def test_a_new_registry_on_postgresql(scratch_url: str) -> None:
    registry = Registry(scratch_url)
    registry.migrate()
    registry.migrate()
    now = timeutil.now_jst()
    registry.ensure_customer("c1", "One")
    code = registry.create_plant(customer_id="c1", name="P", address="A", phone="0", created_at=now)
    user = registry.create_user(username="ops", password="ops-password", created_at=now, customer_id="c1")
    assert registry.verify_user("ops", "ops-password") == user
    assert registry.decide_billing_start(code, now.date(), now) is not None
    assert registry.shared_secret("s") == registry.shared_secret("s")
    assert registry.schema_version() == t.SCHEMA_VERSION
    registry.close()


def test_a_v2_registry_is_upgraded_on_postgresql(scratch_url: str) -> None:
    registry = Registry(scratch_url)
    make_v2_registry(registry)
    registry.migrate()
    check_upgraded_v2(registry)
    registry.close()
