"""The event log's filters (pms_registry.eventlog.EventFilter) on SQLite and on the real PostgreSQL:
plant, kind, acknowledged or not, a half-open time window, with the customer scope and stored state."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from pms_registry.eventlog import EventFilter
from pms_registry.registry import Registry
from tests.event_seeding import fire_no_generation
from tests.registry.test_migrations_postgres import scratch_url  # noqa: F401 - a fixture
from tests.registry.v1_fixture import T0

HOUR = timedelta(hours=1)


def _seed(registry: Registry) -> dict[str, str]:
    registry.migrate()
    registry.ensure_customer("c1", "One")
    registry.ensure_customer("c2", "Two")
    codes = {label: registry.create_plant(customer_id=customer, name=label, address="x", phone="0", created_at=T0)
             for label, customer in (("a", "c1"), ("b", "c2"))}
    registry.open_event(kind="gateway_offline", at=T0, message="a down", gateway_id="gw-a", service_code=codes["a"])
    registry.recover_event(kind="gateway_offline", gateway_id="gw-a", at=T0 + HOUR)
    registry.open_event(kind="gateway_offline", at=T0 + 2 * HOUR, message="b down", gateway_id="gw-b",
                        service_code=codes["b"])
    seen = fire_no_generation(registry, codes["a"], "gw-a", T0 + 3 * HOUR)
    assert seen.alert_id is not None
    registry.acknowledge_alert(seen.alert_id, by="ops", comment="", at=T0 + 4 * HOUR)
    fire_no_generation(registry, codes["b"], "gw-b", T0 + 5 * HOUR)
    return codes


def _check(registry: Registry, codes: dict[str, str]) -> None:
    def found(**kwargs: object) -> list[tuple[str, str | None]]:
        events = registry.list_events(**kwargs)  # type: ignore[arg-type]
        assert registry.count_events(**{k: v for k, v in kwargs.items() if k != "limit"}) == len(events)  # type: ignore[arg-type]
        return [(e.kind, e.service_code) for e in events]

    a, b = codes["a"], codes["b"]
    assert found(where=EventFilter(service_code=a)) == [("alert_acknowledged", a), ("no_generation", a),
                                                        ("gateway_offline", a)]
    assert found(where=EventFilter(kind="gateway_offline")) == [("gateway_offline", b), ("gateway_offline", a)]
    assert found(state="open", where=EventFilter(acknowledged=False)) == [("no_generation", b),
                                                                           ("gateway_offline", b)]
    assert found(state="open", where=EventFilter(acknowledged=True)) == [("no_generation", a)]
    # [from, until): an event opened exactly at `until` is left out, one at `from` is in
    assert found(where=EventFilter(opened_from=T0 + 2 * HOUR, opened_until=T0 + 4 * HOUR)) == [
        ("no_generation", a), ("gateway_offline", b)]
    assert found(customer_id="c2", where=EventFilter(service_code=a)) == []
    assert found(customer_id="c1", where=EventFilter(kind="no_generation", acknowledged=True)) == [
        ("no_generation", a)]


def test_event_filters_on_sqlite(tmp_path: Path) -> None:
    registry = Registry(f"sqlite:///{tmp_path}/r.db")
    try:
        _check(registry, _seed(registry))
    finally:
        registry.close()


@pytest.mark.integration
def test_event_filters_on_postgresql(scratch_url: str) -> None:  # noqa: F811 - the fixture
    registry = Registry(scratch_url)
    try:
        _check(registry, _seed(registry))
    finally:
        registry.close()

