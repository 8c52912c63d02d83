"""Registry v7's accounts: users' roles, API keys owned by users with a scope and an expiry, and the
upgrade from v6 that keeps what existing users and keys could do."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from pms_registry import schema as t
from pms_registry.migrations import upgrade
from pms_registry.registry import Registry, RegistryError
from tests.registry.v1_fixture import T0


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    found = Registry(f"sqlite:///{tmp_path}/registry.db")
    found.migrate()
    found.ensure_customer("c1", "One")
    return found


def test_roles_fit_their_customer(registry: Registry) -> None:
    assert registry.create_user(username="root", password="password-1", created_at=T0).role == "admin"
    assert registry.create_user(username="op1", password="password-1", created_at=T0, customer_id="c1").role == \
        "operator"
    fleet = registry.create_user(username="fleet", password="password-1", created_at=T0, role="operator")
    assert (fleet.role, fleet.customer_id, fleet.is_admin, fleet.can_write) == ("operator", None, False, True)
    viewer = registry.create_user(username="v1", password="password-1", created_at=T0, customer_id="c1",
                                  role="viewer")
    assert (viewer.is_admin, viewer.can_write) == (False, False)
    with pytest.raises(RegistryError, match="viewer reads one customer"):
        registry.create_user(username="v2", password="password-1", created_at=T0, role="viewer")
    with pytest.raises(RegistryError, match="admin belongs to no customer"):
        registry.create_user(username="a2", password="password-1", created_at=T0, customer_id="c1", role="admin")
    with pytest.raises(RegistryError, match="a role is one of"):
        registry.create_user(username="x", password="password-1", created_at=T0, role="root")  # type: ignore[arg-type]
    assert registry.get_user("v1") == viewer


def test_a_users_key_speaks_with_its_role_narrowed_by_scope_until_it_expires(registry: Registry) -> None:
    op = registry.create_user(username="op1", password="password-1", created_at=T0, customer_id="c1")
    viewer = registry.create_user(username="v1", password="password-1", created_at=T0, customer_id="c1",
                                  role="viewer")
    write = registry.create_api_key(label="op write", created_at=T0, user_id=op.user_id,
                                    expires_at=T0 + timedelta(days=90))
    read = registry.create_api_key(label="op read", created_at=T0, user_id=op.user_id, scope="read")
    viewers = registry.create_api_key(label="viewer", created_at=T0, user_id=viewer.user_id, scope="write")
    found = registry.authenticate(write, at=T0 + timedelta(days=1))
    assert found is not None and (found.role, found.customer_id, found.can_write) == ("operator", "c1", True)
    found = registry.authenticate(read, at=T0)
    assert found is not None and (found.role, found.can_write) == ("operator", False)
    found = registry.authenticate(viewers, at=T0)
    assert found is not None and (found.role, found.can_write) == ("viewer", False), "never more than its user"
    assert registry.authenticate(write, at=T0 + timedelta(days=90)) is None, "expired at its expiry"
    [record] = [k for k in registry.list_api_keys(user_id=op.user_id) if k.label == "op write"]
    assert (record.scope, record.expires_at, record.customer_id) == ("write", T0 + timedelta(days=90), "c1")
    registry.delete_user("op1")
    assert registry.authenticate(read, at=T0) is None, "a deleted user's keys authenticate nothing"
    with pytest.raises(RegistryError, match="scope is read or write"):
        registry.create_api_key(label="x", created_at=T0, scope="all")  # type: ignore[arg-type]
    with pytest.raises(RegistryError, match="cannot expire before"):
        registry.create_api_key(label="x", created_at=T0, expires_at=T0)


def test_keys_from_before_users_had_keys_keep_their_power(registry: Registry) -> None:
    admin = registry.create_api_key(label="admin", created_at=T0)
    customer = registry.create_api_key(label="c1", created_at=T0, customer_id="c1")
    assert registry.authenticate(admin) is not None and registry.authenticate(admin).role == "admin"  # type: ignore[union-attr]
    found = registry.authenticate(customer)
    assert found is not None and (found.role, found.customer_id, found.can_write) == ("operator", "c1", True)


def test_a_v6_registry_keeps_its_users_keys_and_prices(tmp_path: Path) -> None:
    registry = Registry(f"sqlite:///{tmp_path}/v6.db")
    registry.migrate()
    registry.ensure_customer("c1", "One")
    code = registry.create_plant(customer_id="c1", name="P", address="Tokyo", phone="03", created_at=T0,
                                 tariff_yen_per_kwh=17.0)
    registry.create_plant(customer_id="c1", name="Unpriced", address="Tokyo", phone="03", created_at=T0)
    with registry.engine.begin() as conn:
        t.plant_tariffs.drop(conn)
        conn.exec_driver_sql("DROP INDEX IF EXISTS ix_api_keys_user_id")
        for table, columns in (("plants", t.PLANT_COLUMNS_V7), ("api_keys", t.API_KEY_COLUMNS_V7),
                               ("notices", t.NOTICE_COLUMNS_V7), ("users", t.USER_COLUMNS_V7)):
            for column in columns:
                conn.exec_driver_sql(f"ALTER TABLE {table} DROP COLUMN {column}")
        for name, customer in (("root", None), ("c1-user", "c1")):  # rows as v6 wrote them, no v7 columns
            conn.exec_driver_sql("INSERT INTO users (username, password_hash, customer_id, language, created_at) "
                                 "VALUES (?, 'x', ?, 'ja', ?)", (name, customer, T0.isoformat()))
        conn.execute(update(t.schema_version).values(version=6))
    assert upgrade(registry.engine) == 6
    assert registry.schema_version() == t.SCHEMA_VERSION
    root, c1_user = registry.get_user("root"), registry.get_user("c1-user")
    assert root is not None and c1_user is not None
    assert (root.role, c1_user.role, c1_user.customer_id) == ("admin", "operator", "c1")
    with registry.engine.begin() as conn:
        tariffs = conn.execute(select(t.plant_tariffs.c.service_code, t.plant_tariffs.c.effective_from,
                                      t.plant_tariffs.c.yen_per_kwh)).all()
    assert [tuple(row) for row in tariffs] == [(code, None, 17.0)], "each price became its plant's first tariff"
    registry.close()
