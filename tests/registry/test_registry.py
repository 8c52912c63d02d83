from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from pms_common.timeutil import JST
from pms_registry.registry import Registry, RegistryError, hash_api_key

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=JST)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "pms.db"


@pytest.fixture
def registry(db_path: Path) -> Iterator[Registry]:
    reg = Registry(f"sqlite:///{db_path}")
    reg.migrate()
    reg.ensure_customer("c1", "Customer One")
    reg.ensure_customer("c2", "Customer Two")
    yield reg
    reg.close()


def _plant(registry: Registry, customer_id: str = "c1", name: str = "Plant") -> str:
    return registry.create_plant(customer_id=customer_id, name=name, address="Tokyo", phone="03-0000-0000",
                                 created_at=T0, latitude=35.68, longitude=139.77, capacity_kw=49.5,
                                 tariff_yen_per_kwh=16.0)


def test_migrate_is_idempotent(registry: Registry) -> None:
    registry.migrate()
    registry.migrate()
    assert registry.count_plants() == 0


def test_bad_url() -> None:
    with pytest.raises(RegistryError, match="must start with"):
        Registry("mysql://h/db")


def test_service_codes_are_issued_in_sequence(registry: Registry) -> None:
    codes = [_plant(registry) for _ in range(3)]
    assert codes == ["pss00000001", "pss00000002", "pss00000003"]
    assert registry.count_plants() == 3


def test_service_codes_are_never_reused(registry: Registry, db_path: Path) -> None:
    _plant(registry)
    second = _plant(registry)
    with sqlite3.connect(db_path) as conn:
        conn.execute("DELETE FROM plants WHERE service_code = ?", (second,))
    assert registry.count_plants() == 1
    assert _plant(registry) == "pss00000003"


def test_service_code_counter_survives_reopen(registry: Registry, db_path: Path) -> None:
    _plant(registry)
    registry.close()
    reopened = Registry(f"sqlite:///{db_path}")
    reopened.migrate()
    assert _plant(reopened) == "pss00000002"
    reopened.close()


def test_plant_of_an_unknown_customer_is_refused(registry: Registry) -> None:
    with pytest.raises(RegistryError):
        _plant(registry, customer_id="nobody")
    # The failed registration consumed no code.
    assert _plant(registry) == "pss00000001"


def test_plant_fields(registry: Registry) -> None:
    code = _plant(registry, name="Solar A")
    plant = registry.get_plant(code)
    assert plant is not None
    assert (plant.service_code, plant.customer_id, plant.name, plant.address) == (code, "c1", "Solar A", "Tokyo")
    assert (plant.latitude, plant.longitude, plant.capacity_kw, plant.tariff_yen_per_kwh) == (35.68, 139.77, 49.5, 16.0)
    assert plant.billing_start_date is None
    assert plant.gateway_ids == ()


def test_list_plants_filtered_by_customer(registry: Registry) -> None:
    a = _plant(registry, "c1")
    b = _plant(registry, "c2")
    c = _plant(registry, "c1")
    assert [p.service_code for p in registry.list_plants()] == [a, b, c]
    assert [p.service_code for p in registry.list_plants("c1")] == [a, c]
    assert [p.service_code for p in registry.list_plants("c2")] == [b]
    assert registry.list_plants("c3") == []


def test_get_plant_of_another_customer_is_none(registry: Registry) -> None:
    code = _plant(registry, "c1")
    assert registry.get_plant(code, "c2") is None
    assert registry.get_plant(code, "c1") is not None
    assert registry.get_plant("pss99999999") is None


def test_ensure_customer_is_idempotent(registry: Registry) -> None:
    registry.ensure_customer("c1", "Renamed")
    _plant(registry, "c1")
    assert len(registry.list_plants("c1")) == 1


def test_bind_gateway(registry: Registry) -> None:
    code = _plant(registry)
    registry.bind_gateway("gw-b", code)
    registry.bind_gateway("gw-a", code)
    plant = registry.get_plant(code)
    assert plant is not None
    assert plant.gateway_ids == ("gw-a", "gw-b")
    assert registry.plant_of_gateway("gw-a") == code
    [gw_a, gw_b] = registry.list_gateways()
    assert (gw_a.gateway_id, gw_a.status, gw_a.power_interval_s, gw_a.heartbeat) == ("gw-a", "unknown", 60.0, None)
    assert gw_b.service_code == code


def test_rebind_and_unbind_gateway(registry: Registry) -> None:
    first = _plant(registry)
    second = _plant(registry)
    registry.bind_gateway("gw-1", first)
    registry.bind_gateway("gw-1", second)
    assert registry.plant_of_gateway("gw-1") == second
    assert registry.get_plant(first).gateway_ids == ()  # type: ignore[union-attr]
    registry.bind_gateway("gw-1", None)
    assert registry.plant_of_gateway("gw-1") is None
    assert len(registry.list_gateways()) == 1


def test_bind_to_unknown_plant_is_refused(registry: Registry) -> None:
    with pytest.raises(RegistryError):
        registry.bind_gateway("gw-1", "pss99999999")


def test_list_gateways_filtered_by_customer(registry: Registry) -> None:
    registry.bind_gateway("gw-1", _plant(registry, "c1"))
    registry.bind_gateway("gw-2", _plant(registry, "c2"))
    registry.bind_gateway("gw-free", None)
    assert [g.gateway_id for g in registry.list_gateways()] == ["gw-1", "gw-2", "gw-free"]
    assert [g.gateway_id for g in registry.list_gateways("c1")] == ["gw-1"]
    assert [g.gateway_id for g in registry.list_gateways("c2")] == ["gw-2"]


def test_unknown_gateway_status_registers_it(registry: Registry) -> None:
    registry.record_gateway_status("gw-new", "online", T0)
    [gateway] = registry.list_gateways()
    assert (gateway.gateway_id, gateway.service_code, gateway.status) == ("gw-new", None, "online")
    assert gateway.status_changed_at == T0
    assert gateway.last_seen_at == T0
    assert gateway.power_interval_s == 60.0


def test_status_changes(registry: Registry) -> None:
    registry.bind_gateway("gw-1", None)
    registry.record_gateway_status("gw-1", "online", T0)
    later = T0 + timedelta(minutes=10)
    registry.record_gateway_status("gw-1", "offline", later)
    [gateway] = registry.list_gateways()
    assert (gateway.status, gateway.status_changed_at, gateway.last_seen_at) == ("offline", later, T0)
    # The same status again changes nothing.
    registry.record_gateway_status("gw-1", "offline", later + timedelta(minutes=1))
    assert registry.list_gateways()[0].status_changed_at == later
    back = later + timedelta(minutes=5)
    registry.record_gateway_status("gw-1", "online", back)
    [gateway] = registry.list_gateways()
    assert (gateway.status, gateway.status_changed_at, gateway.last_seen_at) == ("online", back, back)


def test_record_heartbeat(registry: Registry) -> None:
    registry.bind_gateway("gw-1", None)
    registry.record_heartbeat("gw-1", {"firmware": "1.2", "rssi_dbm": -70}, T0, 30.0)
    [gateway] = registry.list_gateways()
    assert gateway.heartbeat == {"firmware": "1.2", "rssi_dbm": -70}
    assert gateway.last_seen_at == T0
    assert gateway.power_interval_s == 30.0
    assert gateway.status == "unknown"


def test_heartbeat_of_unknown_gateway_registers_it_online(registry: Registry) -> None:
    registry.record_heartbeat("gw-hb", {"firmware": "2"}, T0, 15.0)
    [gateway] = registry.list_gateways()
    assert (gateway.gateway_id, gateway.status, gateway.status_changed_at) == ("gw-hb", "online", T0)
    assert gateway.power_interval_s == 15.0


def test_timestamps_come_back_aware(registry: Registry) -> None:
    utc_moment = datetime(2026, 6, 1, 3, 0, tzinfo=UTC)
    registry.record_gateway_status("gw-1", "online", utc_moment)
    [gateway] = registry.list_gateways()
    assert gateway.status_changed_at is not None
    assert gateway.status_changed_at.utcoffset() == timedelta(hours=9)
    assert gateway.status_changed_at == utc_moment
    event, _ = registry.open_event(kind="gateway_offline", at=utc_moment, message="m", gateway_id="gw-1")
    assert event.opened_at.tzinfo is not None
    assert event.opened_at == utc_moment


def test_naive_timestamps_are_refused(registry: Registry) -> None:
    with pytest.raises((RegistryError, ValueError)):
        registry.record_gateway_status("gw-1", "online", datetime(2026, 6, 1, 12, 0))
    assert registry.list_gateways() == []


def test_api_keys_are_hashed_at_rest(registry: Registry, db_path: Path) -> None:
    secret = registry.create_api_key(label="ops", created_at=T0)
    assert secret.startswith("pms_")
    assert len(secret) > 40
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute("SELECT key_id, key_hash, customer_id, label FROM api_keys").fetchall()
        dump = "\n".join(conn.iterdump())
    assert len(rows) == 1
    assert rows[0][1] == hash_api_key(secret)
    assert secret not in dump
    assert secret[4:] not in dump


def test_authenticate(registry: Registry) -> None:
    admin = registry.create_api_key(label="admin", created_at=T0)
    customer = registry.create_api_key(label="c1", created_at=T0, customer_id="c1")
    admin_principal = registry.authenticate(admin)
    assert admin_principal is not None
    assert admin_principal.is_admin
    assert admin_principal.customer_id is None
    customer_principal = registry.authenticate(customer)
    assert customer_principal is not None
    assert customer_principal.customer_id == "c1"
    assert not customer_principal.is_admin
    assert customer_principal.key_id != admin_principal.key_id
    assert registry.authenticate("pms_wrong") is None
    assert registry.authenticate("") is None


def test_create_api_key_with_a_given_secret_is_idempotent(registry: Registry, db_path: Path) -> None:
    assert registry.create_api_key(label="a", created_at=T0, secret="admin-secret") == "admin-secret"
    assert registry.create_api_key(label="a", created_at=T0, secret="admin-secret") == "admin-secret"
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT count(*) FROM api_keys").fetchone()[0] == 1
    assert registry.authenticate("admin-secret") is not None


def test_revoked_keys_do_not_authenticate(registry: Registry, db_path: Path) -> None:
    secret = registry.create_api_key(label="old", created_at=T0)
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE api_keys SET revoked = 1")
    assert registry.authenticate(secret) is None


def test_open_event_does_not_duplicate(registry: Registry) -> None:
    first, opened = registry.open_event(kind="gateway_offline", at=T0, message="gone", gateway_id="gw-1")
    assert opened
    assert (first.kind, first.state, first.gateway_id, first.message) == ("gateway_offline", "open", "gw-1", "gone")
    assert first.recovered_at is None
    again, opened = registry.open_event(kind="gateway_offline", at=T0 + timedelta(minutes=1), message="still",
                                        gateway_id="gw-1")
    assert not opened
    assert again == first
    other, opened = registry.open_event(kind="gateway_offline", at=T0, message="gone", gateway_id="gw-2")
    assert opened
    assert other.event_id != first.event_id
    assert len(registry.list_events()) == 2


def test_recover_event(registry: Registry) -> None:
    opened, _ = registry.open_event(kind="gateway_offline", at=T0, message="gone", gateway_id="gw-1")
    back = T0 + timedelta(minutes=7)
    recovered = registry.recover_event(kind="gateway_offline", gateway_id="gw-1", at=back)
    assert recovered is not None
    assert (recovered.event_id, recovered.state, recovered.recovered_at) == (opened.event_id, "recovered", back)
    assert registry.recover_event(kind="gateway_offline", gateway_id="gw-1", at=back) is None
    # After recovery, a new outage opens a new event.
    reopened, is_new = registry.open_event(kind="gateway_offline", at=back + timedelta(hours=1), message="again",
                                           gateway_id="gw-1")
    assert is_new
    assert reopened.event_id != opened.event_id


def test_recover_without_open_event(registry: Registry) -> None:
    assert registry.recover_event(kind="gateway_offline", gateway_id="gw-x", at=T0) is None


def test_list_events_newest_first_and_paged(registry: Registry) -> None:
    for minute, gw in ((0, "gw-a"), (20, "gw-c"), (10, "gw-b")):
        registry.open_event(kind="gateway_offline", at=T0 + timedelta(minutes=minute), message=gw, gateway_id=gw)
    assert [e.gateway_id for e in registry.list_events()] == ["gw-c", "gw-b", "gw-a"]
    assert [e.gateway_id for e in registry.list_events(limit=1, offset=1)] == ["gw-b"]
    registry.recover_event(kind="gateway_offline", gateway_id="gw-b", at=T0 + timedelta(minutes=30))
    assert [e.gateway_id for e in registry.list_events(state="open")] == ["gw-c", "gw-a"]
    assert [e.gateway_id for e in registry.list_events(state="recovered")] == ["gw-b"]


def test_list_events_filtered_by_customer(registry: Registry) -> None:
    mine = _plant(registry, "c1")
    theirs = _plant(registry, "c2")
    registry.open_event(kind="gateway_offline", at=T0, message="m", gateway_id="gw-1", service_code=mine)
    registry.open_event(kind="gateway_offline", at=T0, message="t", gateway_id="gw-2", service_code=theirs)
    registry.open_event(kind="gateway_offline", at=T0, message="u", gateway_id="gw-3")
    assert [e.service_code for e in registry.list_events(customer_id="c1")] == [mine]
    assert [e.service_code for e in registry.list_events(customer_id="c2")] == [theirs]
    assert len(registry.list_events()) == 3


def test_billing_start_is_decided_once_and_logged(registry: Registry) -> None:
    code = _plant(registry)
    event = registry.decide_billing_start(code, date(2026, 6, 1), T0)
    assert event is not None and (event.kind, event.state, event.service_code) == ("billing_start_decided", "info",
                                                                                  code)
    assert registry.decide_billing_start(code, date(2026, 6, 2), T0) is None
    plant = registry.get_plant(code)
    assert plant is not None and plant.billing_start_date == date(2026, 6, 1)
    assert [e.kind for e in registry.list_events(state="info")] == ["billing_start_decided"]


def test_update_and_delete_plant(registry: Registry) -> None:
    code = _plant(registry)
    registry.bind_gateway("gw-1", code)
    changed = registry.update_plant(code, name="New name", customer_id="c2", capacity_kw=9.9)
    assert (changed.name, changed.customer_id, changed.capacity_kw, changed.gateway_ids) == (
        "New name", "c2", 9.9, ("gw-1",))
    with pytest.raises(RegistryError, match="unknown"):
        registry.update_plant(code, customer_id="nobody")
    with pytest.raises(RegistryError, match="no changeable field"):
        registry.update_plant(code, created_at=T0)
    with pytest.raises(RegistryError, match="cannot be empty"):
        registry.update_plant(code, name=None)
    with pytest.raises(RegistryError, match="no plant"):
        registry.update_plant("pss99999999", name="x")
    # A plant a gateway served keeps its record: it is retired, never deleted.
    with pytest.raises(RegistryError, match="retire it"):
        registry.delete_plant(code)
    registry.retire_plant(code, T0, "user:admin")
    assert registry.plant_of_gateway("gw-1") is None
    mistake = _plant(registry)
    assert registry.delete_plant(mistake)
    assert not registry.delete_plant(mistake)
    assert _plant(registry) not in (code, mistake)  # never reissued


def test_gateway_status_counts_per_customer(registry: Registry) -> None:
    mine, theirs = _plant(registry, "c1"), _plant(registry, "c2")
    registry.bind_gateway("gw-1", mine)
    registry.bind_gateway("gw-2", theirs)
    registry.record_gateway_status("gw-1", "online", T0)
    registry.record_gateway_status("gw-2", "offline", T0)
    registry.record_gateway_status("gw-free", "online", T0)
    # The unbound gateway counts as unbound, not online: it serves no plant (see test_bindings.py).
    assert registry.gateway_status_counts() == {"online": 1, "offline": 1, "never_seen": 0, "unbound": 1}
    assert registry.gateway_status_counts("c1") == {"online": 1, "offline": 0, "never_seen": 0, "unbound": 0}
    assert [c.customer_id for c in registry.list_customers()] == ["c1", "c2"]
