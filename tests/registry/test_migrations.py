"""Upgrading registries that older PMS versions created (SQLite here; PostgreSQL in tests/registry)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import update

from pms_registry import schema as t
from pms_registry.migrations import upgrade
from pms_registry.registry import Registry, RegistryError
from tests.registry.v1_fixture import T0, make_v1_registry


def check_upgraded_v1(registry: Registry) -> None:
    """What every upgraded v1 registry must show: old data intact, new features working."""
    assert registry.schema_version() == t.SCHEMA_VERSION
    plant = registry.get_plant("pss00000007")
    assert plant is not None and (plant.name, plant.gateway_ids) == ("Old Plant", ("gw-old",))
    assert [e.message for e in registry.list_events()] == ["old event"]
    notices, total = registry.list_notices(customer_id="c1")
    assert (total, notices[0].title, notices[0].customer_id) == (1, "old notice", None)
    # New in v2: users, notices addressed to one customer; codes continue after the old counter.
    registry.create_user(username="ops", password="ops-password", created_at=T0)
    assert registry.verify_user("ops", "ops-password") is not None
    registry.create_notice(kind="outage", title="c1 only", body="", created_at=T0, customer_id="c1")
    assert registry.list_notices(customer_id="c2")[1] == 1
    assert registry.create_plant(customer_id="c1", name="New", address="Osaka", phone="06", created_at=T0) == \
        "pss00000008"


def test_a_v1_registry_is_upgraded(tmp_path: Path) -> None:
    registry = Registry(f"sqlite:///{tmp_path}/v1.db")
    make_v1_registry(registry.engine)
    registry.migrate()
    registry.ensure_customer("c2", "Other")
    check_upgraded_v1(registry)
    registry.migrate()  # again: nothing to do
    assert registry.schema_version() == t.SCHEMA_VERSION
    registry.close()


def test_upgrade_reports_the_version_it_found(tmp_path: Path) -> None:
    registry = Registry(f"sqlite:///{tmp_path}/v1.db")
    make_v1_registry(registry.engine)
    assert upgrade(registry.engine) == 1
    assert upgrade(registry.engine) == t.SCHEMA_VERSION
    registry.close()


def test_a_new_registry_starts_at_the_current_version(tmp_path: Path) -> None:
    registry = Registry(f"sqlite:///{tmp_path}/new.db")
    assert upgrade(registry.engine) == 0
    assert registry.schema_version() == t.SCHEMA_VERSION
    registry.close()


def test_a_v1_registry_without_its_counter_continues_after_the_highest_code(tmp_path: Path) -> None:
    registry = Registry(f"sqlite:///{tmp_path}/v1.db")
    make_v1_registry(registry.engine)
    with registry.engine.begin() as conn:
        conn.execute(t.service_code_counter.delete())
    registry.migrate()
    assert registry.create_plant(customer_id="c1", name="N", address="A", phone="0", created_at=T0) == "pss00000008"
    registry.close()


def test_a_newer_registry_is_refused(tmp_path: Path) -> None:
    registry = Registry(f"sqlite:///{tmp_path}/future.db")
    registry.migrate()
    with registry.engine.begin() as conn:
        conn.execute(update(t.schema_version).values(version=t.SCHEMA_VERSION + 1))
    with pytest.raises(RegistryError, match="newer than this PMS"):
        registry.migrate()
    registry.close()


def test_a_registry_without_a_version_row_counts_as_v1(tmp_path: Path) -> None:
    registry = Registry(f"sqlite:///{tmp_path}/v1.db")
    make_v1_registry(registry.engine)
    with registry.engine.begin() as conn:
        conn.execute(t.schema_version.delete())
    registry.migrate()
    registry.ensure_customer("c2", "Other")
    check_upgraded_v1(registry)
    registry.close()
