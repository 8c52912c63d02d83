"""Binding intervals: bind, move, replace, unbind, decommission, and where a plant's series read from;
on a SQLite file and on the real PostgreSQL (a scratch database per test)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from pms_common.timeutil import JST
from pms_registry.registry import Registry, RegistryError

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=JST)
H = timedelta(hours=1)


@pytest.fixture
def registry(registry: Registry) -> Registry:
    """tests/registry/conftest.py's registry (SQLite, PostgreSQL) with two customers."""
    registry.ensure_customer("c1", "One")
    registry.ensure_customer("c2", "Two")
    return registry


def _plant(registry: Registry, customer_id: str = "c1") -> str:
    return registry.create_plant(customer_id=customer_id, name="P", address="A", phone="0", created_at=T0)


def _spans(registry: Registry, gateway_id: str) -> list[tuple[str, datetime, datetime | None]]:
    return [(b.service_code, b.bound_from, b.bound_until) for b in registry.binding_history(gateway_id)]


def test_moving_a_gateway_closes_the_old_binding_and_opens_a_new_one(registry: Registry) -> None:
    old, new = _plant(registry), _plant(registry)
    assert registry.bind_gateway("gw-1", old, at=T0) == []
    assert registry.bind_gateway("gw-1", new, at=T0 + 5 * H) == []  # moved, not left bound to nothing
    assert _spans(registry, "gw-1") == [(old, T0, T0 + 5 * H), (new, T0 + 5 * H, None)]
    first, second = registry.binding_history("gw-1")
    assert (first.reads_from, second.reads_from) == (None, T0 + 5 * H)
    assert registry.plant_of_gateway("gw-1") == new
    assert registry.plant_of_gateway("gw-1", at=T0 + 4 * H) == old
    assert registry.plant_of_gateway("gw-1", at=T0 - 24 * H) == old  # stored before its first binding
    assert registry.plant_of_gateway("gw-1", at=T0 + 5 * H) == new
    assert (registry.get_plant(old).gateway_ids, registry.get_plant(new).gateway_ids) == ((), ("gw-1",))  # type: ignore[union-attr]


def test_binding_to_the_same_plant_again_changes_nothing(registry: Registry) -> None:
    code = _plant(registry)
    registry.bind_gateway("gw-1", code, at=T0)
    registry.bind_gateway("gw-1", code, at=T0 + H)
    assert _spans(registry, "gw-1") == [(code, T0, None)]


def test_replacing_returns_the_replaced_gateways_and_the_newcomer_reads_from_the_handover(
        registry: Registry) -> None:
    code = _plant(registry)
    registry.bind_gateway("gw-old", code, at=T0)
    assert registry.bind_gateway("gw-new", code, at=T0 + 2 * H, replace=True) == ["gw-old"]
    assert registry.get_plant(code).gateway_ids == ("gw-new",)  # type: ignore[union-attr]
    old, new = registry.bindings_of_plant(code)
    assert (old.gateway_id, old.bound_until, old.reads_from) == ("gw-old", T0 + 2 * H, None)
    # Its first binding, but the plant was served until then: the meter history it backfills from
    # before the handover is gw-old's to count, not counted twice.
    assert (new.gateway_id, new.bound_until, new.reads_from) == ("gw-new", None, T0 + 2 * H)
    assert registry.plant_of_gateway("gw-old") is None


def test_without_replace_a_plant_keeps_its_other_gateways(registry: Registry) -> None:
    code = _plant(registry)
    registry.bind_gateway("gw-a", code, at=T0)
    assert registry.bind_gateway("gw-b", code, at=T0 + H) == []
    assert registry.get_plant(code).gateway_ids == ("gw-a", "gw-b")  # type: ignore[union-attr]
    assert [b.reads_from for b in registry.bindings_of_plant(code)] == [None, None]


def test_unbinding_returns_the_gateway_and_readings_after_it_belong_to_no_plant(registry: Registry) -> None:
    code = _plant(registry)
    registry.bind_gateway("gw-1", code, at=T0)
    assert registry.bind_gateway("gw-1", None, at=T0 + H) == ["gw-1"]
    assert registry.bind_gateway("gw-1", None, at=T0 + 2 * H) == []  # nothing left to unbind
    assert registry.plant_of_gateway("gw-1", at=T0 + 90 * timedelta(minutes=1)) is None
    assert registry.list_gateways()[0].condition == "unbound"


def test_a_change_before_the_current_binding_started_is_refused(registry: Registry) -> None:
    code, other = _plant(registry), _plant(registry)
    registry.bind_gateway("gw-1", code, at=T0)
    with pytest.raises(RegistryError, match="cannot take effect before"):
        registry.bind_gateway("gw-1", other, at=T0 - H)
    with pytest.raises(RegistryError, match="no plant pss99999999"):
        registry.bind_gateway("gw-1", "pss99999999", at=T0 + H)
    assert _spans(registry, "gw-1") == [(code, T0, None)]  # nothing half done


def test_decommissioning_closes_the_binding_keeps_history_and_blocks_binding(registry: Registry) -> None:
    code = _plant(registry)
    registry.bind_gateway("gw-1", code, at=T0)
    registry.record_gateway_status("gw-1", "offline", T0 + H)
    gone = registry.decommission_gateway("gw-1", at=T0 + 2 * H)
    assert (gone.condition, gone.service_code, gone.decommissioned_at) == ("decommissioned", None, T0 + 2 * H)
    assert registry.decommission_gateway("gw-1", at=T0 + 3 * H).decommissioned_at == T0 + 2 * H
    assert _spans(registry, "gw-1") == [(code, T0, T0 + 2 * H)]
    assert registry.bindings_of_plant(code)[0].gateway_id == "gw-1"  # the plant keeps what it read
    assert registry.gateway_status_counts() == {"online": 0, "offline": 0, "never_seen": 0, "unbound": 0}
    with pytest.raises(RegistryError, match="decommissioned"):
        registry.bind_gateway("gw-1", code)
    with pytest.raises(RegistryError, match="no gateway gw-none"):
        registry.decommission_gateway("gw-none")


def test_counts_say_online_offline_never_seen_and_unbound(registry: Registry) -> None:
    mine, theirs = _plant(registry, "c1"), _plant(registry, "c2")
    registry.bind_gateway("gw-on", mine, at=T0)
    registry.bind_gateway("gw-off", mine, at=T0)
    registry.bind_gateway("gw-new", mine, at=T0)  # installed, never heard from
    registry.bind_gateway("gw-theirs", theirs, at=T0)
    registry.record_gateway_status("gw-on", "online", T0)
    registry.record_gateway_status("gw-off", "offline", T0)
    registry.record_gateway_status("gw-free", "offline", T0)  # discovered, never bound
    assert registry.gateway_status_counts() == {"online": 1, "offline": 1, "never_seen": 2, "unbound": 1}
    assert registry.gateway_status_counts("c1") == {"online": 1, "offline": 1, "never_seen": 1, "unbound": 0}


def test_retiring_a_plant_closes_its_bindings(registry: Registry) -> None:
    code = _plant(registry)
    registry.bind_gateway("gw-1", code, at=T0)
    registry.retire_plant(code, T0 + timedelta(days=1), "user:admin")  # a plant a gateway served is never deleted
    [binding] = registry.binding_history("gw-1")
    assert binding.bound_until is not None and registry.plant_of_gateway("gw-1") is None


def test_a_customer_sees_only_the_gateways_bound_to_its_plants(registry: Registry) -> None:
    mine, theirs = _plant(registry, "c1"), _plant(registry, "c2")
    registry.bind_gateway("gw-mine", mine, at=T0)
    registry.bind_gateway("gw-theirs", theirs, at=T0)
    assert [g.gateway_id for g in registry.list_gateways("c1")] == ["gw-mine"]
    assert registry.get_gateway("gw-theirs", "c1") is None
    assert registry.get_gateway("gw-theirs") is not None


def test_the_counts_grouped_in_the_database_agree_with_each_gateways_condition(registry: Registry) -> None:
    """Every condition at once, for everyone and for one customer: the counts device-manager exports
    every 15 s and the home screen shows, against `Gateway.condition` of the listed gateways."""
    ours, theirs = _plant(registry, "c1"), _plant(registry, "c2")
    for gateway_id, plant in (("gw-on", ours), ("gw-off", ours), ("gw-new", ours), ("gw-gone", ours),
                              ("gw-theirs", theirs)):
        registry.bind_gateway(gateway_id, plant, at=T0)
    registry.record_gateway_status("gw-on", "online", T0 + H)
    registry.record_gateway_status("gw-theirs", "online", T0 + H)
    registry.record_gateway_status("gw-off", "offline", T0 + H)
    registry.record_gateway_status("gw-free", "online", T0 + H)  # heard from, bound to nothing
    registry.decommission_gateway("gw-gone", at=T0 + 2 * H)

    def by_condition(customer_id: str | None) -> dict[str, int]:
        counts = dict.fromkeys(("online", "offline", "never_seen", "unbound"), 0)
        for gateway in registry.list_gateways(customer_id):
            if gateway.condition in counts:
                counts[gateway.condition] += 1
        return counts

    assert registry.gateway_status_counts() == by_condition(None) == {
        "online": 2, "offline": 1, "never_seen": 1, "unbound": 1}
    assert registry.gateway_status_counts("c1") == by_condition("c1") == {
        "online": 1, "offline": 1, "never_seen": 1, "unbound": 0}
