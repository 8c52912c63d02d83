"""Console users, API key revocation and the shared secrets."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from pms_registry.registry import Registry, RegistryError
from tests.registry.v1_fixture import T0


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry(f"sqlite:///{tmp_path}/pms.db")
    reg.migrate()
    reg.ensure_customer("c1", "One")
    yield reg
    reg.close()


def test_users_log_in_with_their_password(registry: Registry) -> None:
    admin = registry.create_user(username="admin", password="correct horse", created_at=T0)
    customer = registry.create_user(username="c1-ops", password="battery staple", created_at=T0, customer_id="c1",
                                    language="en")
    assert admin.is_admin and not customer.is_admin
    assert registry.verify_user("admin", "correct horse") == admin
    assert registry.verify_user("c1-ops", "battery staple") == customer
    assert registry.verify_user("admin", "battery staple") is None
    assert registry.verify_user("nobody", "correct horse") is None
    assert registry.get_user_by_id(customer.user_id) == customer
    assert [u.username for u in registry.list_users()] == ["admin", "c1-ops"]


def test_passwords_are_stored_as_salted_hashes(registry: Registry, tmp_path: Path) -> None:
    registry.create_user(username="a", password="same password", created_at=T0)
    registry.create_user(username="b", password="same password", created_at=T0)
    with sqlite3.connect(tmp_path / "pms.db") as db:
        hashes = [row[0] for row in db.execute("SELECT password_hash FROM users")]
    assert all(h.startswith("scrypt:") and "same password" not in h for h in hashes)
    assert hashes[0] != hashes[1]


@pytest.mark.parametrize(("username", "password", "customer_id", "language", "error"), [
    ("admin", "short", None, "ja", "at least 8"),
    ("bad name", "long enough", None, "ja", "username"),
    ("x", "long enough", None, "fr", "language"),
    ("x", "long enough", "nobody", "ja", "unknown"),
])
def test_bad_users_are_refused(registry: Registry, username: str, password: str, customer_id: str | None,
                               language: str, error: str) -> None:
    with pytest.raises(RegistryError, match=error):
        registry.create_user(username=username, password=password, created_at=T0, customer_id=customer_id,
                             language=language)


def test_a_taken_username_is_refused(registry: Registry) -> None:
    registry.create_user(username="ops", password="password-1", created_at=T0)
    with pytest.raises(RegistryError, match="exists already"):
        registry.create_user(username="ops", password="password-2", created_at=T0)


def test_ensure_user_creates_then_resets_the_password(registry: Registry) -> None:
    first = registry.ensure_user(username="admin", password="password-1", created_at=T0)
    assert registry.ensure_user(username="admin", password="password-1", created_at=T0) == first
    registry.ensure_user(username="admin", password="password-2", created_at=T0)
    assert registry.verify_user("admin", "password-1") is None
    assert registry.verify_user("admin", "password-2") == first
    with pytest.raises(RegistryError, match="no user"):
        registry.set_password("ghost", "password-3")


def test_revoke_api_key(registry: Registry) -> None:
    secret = registry.create_api_key(label="k", created_at=T0, customer_id="c1")
    assert registry.authenticate(secret) is not None
    assert registry.revoke_api_key(secret)
    assert registry.authenticate(secret) is None
    assert not registry.revoke_api_key("never issued")


def test_shared_secret_is_made_once(registry: Registry, tmp_path: Path) -> None:
    first = registry.shared_secret("console-session")
    other = Registry(f"sqlite:///{tmp_path}/pms.db")
    assert other.shared_secret("console-session") == first
    assert other.shared_secret("another") != first
    other.close()


def test_key_records_and_revocation_by_id(registry: Registry) -> None:
    secret = registry.create_api_key(label="billing", created_at=T0, customer_id="c1")
    key_id = registry.key_id_of(secret)
    assert key_id is not None and registry.key_id_of("unknown") is None
    [record] = registry.list_api_keys()
    assert (record.key_id, record.label, record.customer_id, record.created_at, record.revoked) == (
        key_id, "billing", "c1", T0, False)
    assert registry.revoke_api_key_by_id(key_id)
    assert registry.list_api_keys()[0].revoked
    assert registry.authenticate(secret) is None
    assert not registry.revoke_api_key_by_id("0000000000000000")


def test_delete_user(registry: Registry) -> None:
    registry.create_user(username="gone", password="password-1", created_at=T0)
    assert registry.delete_user("gone")
    assert not registry.delete_user("gone")
    assert registry.get_user("gone") is None
