"""Upgrading registries that older PMS versions created (SQLite here; PostgreSQL in tests/registry)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, update

from pms_registry import schema as t
from pms_registry.migrations import STEPS, upgrade
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
    # New in v4: PV parameters of an old plant.
    assert registry.set_plant_pv("pss00000007", tilt_deg=30.0).tilt_deg == 30.0


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


def make_v2_registry(registry: Registry) -> None:
    """A registry as PMS v2 left it: the v1 one upgraded by step 2 alone (no bindings, no presence)."""
    make_v1_registry(registry.engine)
    with registry.engine.begin() as conn:
        STEPS[2](conn)
        conn.execute(update(t.schema_version).values(version=2))
        # The earliest trace of gw-old: an event three days before its plant's registration.
        conn.execute(insert(t.events).values(kind="gateway_recovered", state="info", gateway_id="gw-old",
                                             service_code="pss00000007", opened_at=T0 - timedelta(days=3),
                                             message="older event"))


def test_a_v2_registry_is_upgraded_with_bindings_and_presence(tmp_path: Path) -> None:
    registry = Registry(f"sqlite:///{tmp_path}/v2.db")
    make_v2_registry(registry)
    assert registry.schema_version() == 2
    registry.migrate()
    check_upgraded_v2(registry)
    registry.migrate()  # again: no second binding
    assert len(registry.binding_history("gw-old")) == 1
    registry.close()


def check_upgraded_v2(registry: Registry) -> None:
    """What every upgraded v2 registry must show: the bound gateway has an open binding from its
    first known time, presence history and decommissioning work."""
    assert registry.schema_version() == t.SCHEMA_VERSION
    [binding] = registry.binding_history("gw-old")
    assert (binding.service_code, binding.bound_from, binding.bound_until) == (
        "pss00000007", T0 - timedelta(days=3), None)
    assert binding.reads_from is None  # its first binding: every reading it stored stays with the plant
    plant = registry.get_plant("pss00000007")
    assert plant is not None and plant.gateway_ids == ("gw-old",) and plant.bindings == (binding,)
    registry.record_presence("gw-old", "offline", T0, "no heartbeat for 90 s")
    assert [(p.state, p.reason) for p in registry.presence_history("gw-old")] == [("offline", "no heartbeat for 90 s")]
    gone = registry.decommission_gateway("gw-old", at=T0 + timedelta(days=1))
    assert gone.decommissioned_at == T0 + timedelta(days=1) and gone.service_code is None
    assert registry.gateway_status_counts() == {"online": 0, "offline": 0, "never_seen": 0, "unbound": 0}


def test_a_v3_registry_gains_the_pv_table(tmp_path: Path) -> None:
    registry = Registry(f"sqlite:///{tmp_path}/v3.db")
    registry.migrate()
    registry.ensure_customer("c1", "One")
    code = registry.create_plant(customer_id="c1", name="P", address="Tokyo", phone="03", created_at=T0)
    with registry.engine.begin() as conn:
        t.plant_pv.drop(conn)
        conn.execute(update(t.schema_version).values(version=3))
    assert upgrade(registry.engine) == 3
    assert registry.schema_version() == t.SCHEMA_VERSION
    assert registry.set_plant_pv(code, dc_kw=12.0).dc_kw == 12.0
    registry.close()


def test_a_v4_registry_gains_the_software_update_tables(tmp_path: Path) -> None:
    registry = Registry(f"sqlite:///{tmp_path}/v4.db")
    registry.migrate()
    with registry.engine.begin() as conn:
        t.firmware_images.drop(conn)
        t.gateway_login_secrets.drop(conn)
        conn.execute(update(t.schema_version).values(version=4))
    assert upgrade(registry.engine) == 4
    assert registry.schema_version() == t.SCHEMA_VERSION
    registry.set_gateway_password("gw-1", "s3cret-password", T0)
    assert not registry.gateway_password_matches("gw-1", "s3cret-password"), "no active broker login yet"
    with registry.engine.begin() as conn:
        conn.execute(insert(t.broker_logins).values(gateway_id="gw-1", state="active", created_at=T0, rotated_at=T0))
    assert registry.gateway_password_matches("gw-1", "s3cret-password")
    assert not registry.gateway_password_matches("gw-1", "s3cret-passwore")
    assert not registry.gateway_password_matches("gw-2", "s3cret-password")
    manifest = {"version": "1.0.0", "sha256": "ab" * 32, "size": 10, "key_id": "0" * 16, "signature": "x"}
    assert registry.add_firmware_image(manifest, T0, "admin") is True
    assert registry.add_firmware_image(manifest, T0, "admin") is False
    image = registry.firmware_image("ab" * 32)
    assert image is not None and (image.version, image.size, image.uploaded_by) == ("1.0.0", 10, "admin")
    registry.close()
