"""Issue 15's people in the registry: the persisted login lockout, user and customer changes, keys
per user with their last use, and notices with ja/en texts and a schedule across JST midnight."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from pms_common import timeutil
from pms_registry.accounts import LockoutPolicy
from pms_registry.registry import Registry, RegistryError
from tests.postgres import registry_url as scratch_registry_url

T0 = datetime(2026, 12, 3, 23, 30, tzinfo=timeutil.JST)  # half an hour before a JST midnight
POLICY = LockoutPolicy(max_failures=3, window=timedelta(minutes=5), lock_for=timedelta(minutes=15))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test on a SQLite file and on a scratch PostgreSQL database (the production registry)."""
    with scratch_registry_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def registry(registry_url: str) -> Iterator[Registry]:
    reg = Registry(registry_url)
    reg.migrate()
    reg.ensure_customer("c1", "One")
    reg.ensure_customer("c2", "Two")
    reg.create_user(username="ops", password="right password", created_at=T0, customer_id="c1")
    yield reg
    reg.close()


def test_failures_within_the_window_lock_the_user_until_a_time_even_with_the_right_password(
        registry: Registry) -> None:
    for minute in (0, 1):
        outcome = registry.sign_in("ops", "wrong", T0 + timedelta(minutes=minute), POLICY)
        assert outcome.user is None and outcome.locked_until is None
    third = registry.sign_in("ops", "wrong", T0 + timedelta(minutes=2), POLICY)
    assert third.locked_until == T0 + timedelta(minutes=17)
    locked = registry.sign_in("ops", "right password", T0 + timedelta(minutes=16), POLICY)
    assert locked.user is None and locked.locked_until == T0 + timedelta(minutes=17)
    user = registry.get_user("ops")
    assert user is not None and user.locked_until == T0 + timedelta(minutes=17)
    # The lock runs out by itself; the right password then signs in and clears the count.
    after = registry.sign_in("ops", "right password", T0 + timedelta(minutes=17), POLICY)
    assert after.user is not None and after.user.username == "ops" and after.locked_until is None
    assert registry.get_user("ops").locked_until is None  # type: ignore[union-attr]


def test_failures_spread_wider_than_the_window_never_lock(registry: Registry) -> None:
    for minute in (0, 4, 9, 14, 19):
        assert registry.sign_in("ops", "wrong", T0 + timedelta(minutes=minute), POLICY).locked_until is None


def test_a_success_clears_the_count(registry: Registry) -> None:
    for minute in (0, 1):
        registry.sign_in("ops", "wrong", T0 + timedelta(minutes=minute), POLICY)
    assert registry.sign_in("ops", "right password", T0 + timedelta(minutes=2), POLICY).user is not None
    assert registry.sign_in("ops", "wrong", T0 + timedelta(minutes=3), POLICY).locked_until is None


def test_an_admin_unlocks_a_locked_user_and_every_process_sees_it(registry: Registry, registry_url: str) -> None:
    for minute in (0, 1, 2):
        registry.sign_in("ops", "wrong", T0 + timedelta(minutes=minute), POLICY)
    other_worker = Registry(registry_url)
    try:
        assert other_worker.sign_in("ops", "right password", T0 + timedelta(minutes=3), POLICY).user is None
        assert registry.unlock_user("ops")
        assert other_worker.sign_in("ops", "right password", T0 + timedelta(minutes=3), POLICY).user is not None
    finally:
        other_worker.close()
    assert not registry.unlock_user("nobody")


def test_an_unknown_user_is_never_locked(registry: Registry) -> None:
    for minute in range(5):
        assert registry.sign_in("nobody", "x", T0 + timedelta(minutes=minute), POLICY) == \
            registry.sign_in("nobody", "y", T0, POLICY)


def test_update_user_changes_role_customer_language_and_password_within_the_role_rules(registry: Registry) -> None:
    viewer = registry.update_user("ops", role="viewer", customer_id="c2", language="en")
    assert (viewer.role, viewer.customer_id, viewer.language) == ("viewer", "c2", "en")
    assert registry.get_user("ops") == viewer
    with pytest.raises(RegistryError, match="viewer reads one customer"):
        registry.update_user("ops", customer_id=None)
    with pytest.raises(RegistryError, match="admin belongs to no customer"):
        registry.update_user("ops", role="admin")
    admin = registry.update_user("ops", role="admin", customer_id=None, password="another password")
    assert admin.is_admin and registry.verify_user("ops", "another password") == admin
    with pytest.raises(RegistryError, match="no customer"):
        registry.update_user("ops", role="operator", customer_id="c9")
    with pytest.raises(RegistryError, match="at least 8"):
        registry.update_user("ops", password="short")
    with pytest.raises(RegistryError, match="no user"):
        registry.update_user("nobody", language="ja")


def test_customers_are_renamed_never_re_identified(registry: Registry) -> None:
    assert registry.update_customer("c1", name="  株式会社ワン ")
    assert registry.get_customer("c1") is not None and registry.get_customer("c1").name == "株式会社ワン"  # type: ignore[union-attr]
    assert not registry.update_customer("c9", name="x")
    with pytest.raises(RegistryError, match="name"):
        registry.update_customer("c1", name=" ")


def test_a_users_keys_are_listed_with_their_last_use_written_at_most_once_a_minute(registry: Registry) -> None:
    ops = registry.get_user("ops")
    assert ops is not None
    secret = registry.create_api_key(label="mine", created_at=T0, user_id=ops.user_id, scope="read",
                                     expires_at=T0 + timedelta(days=90))
    registry.create_api_key(label="someone else's", created_at=T0, customer_id="c2")
    mine = registry.list_api_keys(user_id=ops.user_id)
    assert [(k.label, k.scope, k.customer_id, k.last_used_at) for k in mine] == [("mine", "read", "c1", None)]
    seen = registry.authenticate(secret, at=T0 + timedelta(seconds=1))
    assert seen is not None and not seen.can_write and seen.customer_id == "c1"
    registry.authenticate(secret, at=T0 + timedelta(seconds=30))
    assert registry.get_api_key(mine[0].key_id).last_used_at == T0 + timedelta(seconds=1)  # type: ignore[union-attr]
    registry.authenticate(secret, at=T0 + timedelta(seconds=61))
    assert registry.get_api_key(mine[0].key_id).last_used_at == T0 + timedelta(seconds=61)  # type: ignore[union-attr]
    assert registry.authenticate(secret, at=T0 + timedelta(days=90)) is None  # expired


def test_notices_carry_both_languages_and_who_posted_them(registry: Registry) -> None:
    notice = registry.create_notice(kind="firmware", title="更新", body="本文", title_en="Update", body_en="Text",
                                    created_at=T0, created_by="user:admin")
    assert (notice.title, notice.title_en, notice.body_en, notice.created_by) == ("更新", "Update", "Text",
                                                                                  "user:admin")
    changed = registry.update_notice(notice.notice_id, title_en="", kind="maintenance")
    assert changed is not None and changed.title_en is None and changed.kind == "maintenance"
    assert changed.created_by == "user:admin" and changed.title == "更新"
    assert registry.update_notice(9999, title="x") is None
    with pytest.raises(RegistryError, match="end before"):
        registry.update_notice(notice.notice_id, starts_at=T0, ends_at=T0)
    with pytest.raises(RegistryError, match="no field"):
        registry.update_notice(notice.notice_id, created_at=T0)


def test_a_notice_scheduled_across_jst_midnight_is_scheduled_then_current_then_past(registry: Registry) -> None:
    midnight = datetime(2026, 12, 4, tzinfo=timeutil.JST)
    registry.create_notice(kind="maintenance", title="夜間保守", body="", created_at=T0,
                           starts_at=midnight - timedelta(minutes=10), ends_at=midnight + timedelta(hours=2))
    registry.create_notice(kind="info", title="常時", body="", created_at=T0 - timedelta(days=1))
    registry.create_notice(kind="outage", title="c2 only", body="", created_at=T0, customer_id="c2",
                           starts_at=T0, ends_at=T0 + timedelta(minutes=5))

    def titles(at: datetime, state: str | None = None, customer_id: str | None = "c1") -> list[str]:
        if state is None:
            return [n.title for n in registry.list_notices(customer_id=customer_id, current_at=at)[0]]
        return [n.title for n in registry.list_notices(customer_id=customer_id, state=state, at=at)[0]]  # type: ignore[arg-type]

    before = midnight - timedelta(minutes=11)
    assert titles(before) == ["常時"]  # the home screen: not shown before its start
    assert titles(before, "scheduled") == ["夜間保守"]
    assert titles(midnight - timedelta(minutes=10)) == ["夜間保守", "常時"]  # from its start, inclusive
    assert titles(midnight + timedelta(hours=1), "current") == ["夜間保守", "常時"]  # past midnight, still on
    assert titles(midnight + timedelta(hours=2)) == ["常時"]  # its end is exclusive
    assert titles(midnight + timedelta(hours=2), "past") == ["夜間保守"]
    assert titles(T0 + timedelta(minutes=1), "current", customer_id=None) == ["c2 only", "常時"]
    with pytest.raises(RegistryError, match="moment"):
        registry.list_notices(state="past")
