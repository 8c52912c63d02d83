"""Notices and the event log of the registry."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from pms_registry.registry import Registry, RegistryError
from tests.registry.v1_fixture import T0


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry(f"sqlite:///{tmp_path}/pms.db")
    reg.migrate()
    reg.ensure_customer("c1", "One")
    reg.ensure_customer("c2", "Two")
    yield reg
    reg.close()


def test_notices_newest_first_scoped_and_current(registry: Registry) -> None:
    registry.create_notice(kind="maintenance", title="all", body="", created_at=T0)
    registry.create_notice(kind="outage", title="c2", body="", created_at=T0 + timedelta(minutes=1), customer_id="c2")
    registry.create_notice(kind="info", title="ended", body="", created_at=T0 + timedelta(minutes=2),
                           ends_at=T0 + timedelta(hours=1))
    titles = lambda **kw: [n.title for n in registry.list_notices(**kw)[0]]  # noqa: E731
    assert titles() == ["ended", "c2", "all"]
    assert titles(customer_id="c1") == ["ended", "all"]
    assert titles(customer_id="c2", current_at=T0 + timedelta(hours=2)) == ["c2", "all"]
    assert registry.list_notices(limit=1, offset=1) == (registry.list_notices()[0][1:2], 3)


def test_bad_notices_are_refused(registry: Registry) -> None:
    with pytest.raises(RegistryError, match="kind"):
        registry.create_notice(kind="party", title="x", body="", created_at=T0)
    with pytest.raises(RegistryError, match="end before"):
        registry.create_notice(kind="info", title="x", body="", created_at=T0, starts_at=T0,
                               ends_at=T0 - timedelta(minutes=1))
    with pytest.raises(RegistryError, match="no customer"):
        registry.create_notice(kind="info", title="x", body="", created_at=T0, customer_id="nobody")


def test_delete_notice(registry: Registry) -> None:
    notice = registry.create_notice(kind="info", title="x", body="", created_at=T0)
    assert registry.delete_notice(notice.notice_id)
    assert not registry.delete_notice(notice.notice_id)


def test_latest_events_of_one_kind_within_a_window_of_the_newest(registry: Registry) -> None:
    assert registry.latest_events_of_kind("register_anomaly", timedelta(minutes=10)) == []
    for minutes, kind in ((0, "register_anomaly"), (20, "register_anomaly"), (25, "billing_start_decided"),
                          (28, "register_anomaly")):
        registry.record_info_event(kind=kind, at=T0 + timedelta(minutes=minutes), message=f"m{minutes}")
    recent = registry.latest_events_of_kind("register_anomaly", timedelta(minutes=10))
    assert [e.message for e in recent] == ["m20", "m28"]  # from 10 min before the newest (m28) on, one kind
    assert all(e.opened_at.utcoffset() is not None for e in recent)
