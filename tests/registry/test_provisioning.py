"""The registry's provisioning part on SQLite and on the real PostgreSQL: factory list, claims, logins,
revocation requests."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from pms_common.provisioning import derive_keys
from pms_registry import schema as t
from pms_registry.provisioning import FactoryImportError, FactoryRow
from pms_registry.registry import Registry

ROWS = [FactoryRow("SN-0001", "secret-0001-abcdefghij", "AAAA-0001"),
        FactoryRow("SN-0002", "secret-0002-abcdefghij", "AAAA-0002")]


def test_import_keeps_derived_keys_and_a_code_hash_never_the_secret(registry: Registry, noon: datetime) -> None:
    result = registry.import_factory_gateways(ROWS, noon)
    assert (result.created, result.unchanged, result.replaced) == (2, 0, 0)
    found = registry.factory_gateway("SN-0001")
    assert found is not None and found.gateway_id == "gw-sn-0001" and found.keys == derive_keys("SN-0001",
                                                                                                 ROWS[0].factory_secret)
    assert (found.claimed_at, found.blocked, found.imported_at) == (None, False, noon)
    with registry.engine.connect() as conn:
        stored = " ".join(str(v) for row in conn.execute(select(t.factory_gateways)).all() for v in row)
    for row in ROWS:
        assert row.factory_secret not in stored and row.claim_code not in stored
    assert registry.gateway_for_claim_code("aaaa 0002") == "gw-sn-0002"
    assert registry.gateway_for_claim_code("AAAA-0003") is None
    again = registry.import_factory_gateways(ROWS, noon + timedelta(hours=1))
    assert (again.created, again.unchanged) == (0, 2)


def test_a_bad_row_imports_nothing_and_every_bad_row_is_named(registry: Registry, noon: datetime) -> None:
    rows = [ROWS[0], FactoryRow("", "secret-xxxx-abcdefghij", "CODE-0009"), FactoryRow("SN-0004", "short", "CODE-0004"),
            FactoryRow("sn-0001", "secret-0001-abcdefghij", "CODE-0005"), FactoryRow("SN-0006", "x" * 20, "AAAA-0001")]
    with pytest.raises(FactoryImportError) as failed:
        registry.import_factory_gateways(rows, noon)
    assert [e.row for e in failed.value.errors] == [2, 3, 4, 5]
    assert "shorter than 16" in failed.value.errors[1].message
    assert "same gateway id as row 1" in failed.value.errors[2].message
    assert "same claim code as row 1" in failed.value.errors[3].message
    assert registry.factory_gateway("SN-0001") is None


def test_a_reimport_with_another_secret_needs_replace(registry: Registry, noon: datetime) -> None:
    registry.import_factory_gateways(ROWS, noon)
    reflashed = [FactoryRow("SN-0001", "another-secret-abcdefgh", "AAAA-0001")]
    with pytest.raises(FactoryImportError, match="another factory secret"):
        registry.import_factory_gateways(reflashed, noon)
    colliding = [FactoryRow("sn-0002", "secret-0002-abcdefghij", "BBBB-0002")]  # same gateway id as SN-0002
    with pytest.raises(FactoryImportError, match="imported serial SN-0002"):
        registry.import_factory_gateways(colliding, noon)
    assert registry.import_factory_gateways(reflashed, noon, replace=True).replaced == 1
    found = registry.factory_gateway("SN-0001")
    assert found is not None and found.keys == derive_keys("SN-0001", "another-secret-abcdefgh")


def test_nonces_are_seen_once_and_pruned_after_the_window(registry: Registry, noon: datetime) -> None:
    assert registry.claim_nonce_seen("SN-0001", "a" * 32, noon) is False
    assert registry.claim_nonce_seen("SN-0001", "a" * 32, noon) is True
    assert registry.claim_nonce_seen("SN-0002", "a" * 32, noon) is False
    assert registry.prune_claim_nonces(noon + timedelta(seconds=1)) == 2
    assert registry.claim_nonce_seen("SN-0001", "a" * 32, noon + timedelta(seconds=2)) is False


def test_a_claim_registers_the_gateway_and_rotation_supersedes_a_pending_revocation(
        registry: Registry, noon: datetime) -> None:
    registry.import_factory_gateways(ROWS, noon)
    registry.ensure_customer("c1", "One")
    code = registry.create_plant(customer_id="c1", name="P", address="A", phone="0", created_at=noon)
    registry.bind_gateway("gw-sn-0002", code)  # bound by its claim code before it was ever claimed
    assert registry.record_claim("SN-0001", noon) == "gw-sn-0001"
    assert registry.record_claim("SN-0002", noon) == "gw-sn-0002"
    bound = {gw.gateway_id: gw.service_code for gw in registry.list_gateways()}
    assert bound == {"gw-sn-0001": None, "gw-sn-0002": code}
    login = registry.broker_login("gw-sn-0001")
    assert login is not None and (login.state, login.rotated_at) == ("active", noon)

    request_id = registry.request_revocation("gw-sn-0001", "unbound from pss00000001", noon + timedelta(minutes=1))
    login = registry.broker_login("gw-sn-0001")
    assert login is not None and login.state == "revoke_requested"
    assert [(r.request_id, r.gateway_id) for r in registry.pending_revocations()] == [(request_id, "gw-sn-0001")]
    registry.note_revocation_failure(request_id, "broker did not answer")
    assert len(registry.pending_revocations()) == 1
    registry.mark_revoked(request_id, noon + timedelta(minutes=2))
    login = registry.broker_login("gw-sn-0001")
    assert login is not None and (login.state, login.revoked_at) == ("revoked", noon + timedelta(minutes=2))
    assert registry.pending_revocations() == []

    registry.request_revocation("gw-sn-0001", "replaced", noon + timedelta(minutes=3))
    later = noon + timedelta(minutes=4)
    registry.record_claim("SN-0001", later)  # claims anew: a new login, the pending revocation is moot
    assert registry.pending_revocations() == []
    login = registry.broker_login("gw-sn-0001")
    assert login is not None and (login.state, login.rotated_at, login.created_at) == ("active", later, noon)
    found = registry.factory_gateway("SN-0001")
    assert found is not None and (found.claimed_at, found.last_claim_at, found.claims_total) == (noon, later, 2)


def test_blocking_a_serial(registry: Registry, noon: datetime) -> None:
    registry.import_factory_gateways(ROWS, noon)
    assert registry.block_factory_gateway("SN-0001", "decommissioned")
    found = registry.factory_gateway("SN-0001")
    assert found is not None and (found.blocked, found.blocked_reason) == (True, "decommissioned")
    assert registry.block_factory_gateway("SN-0001", None)
    assert not registry.block_factory_gateway("SN-9999", "x")
    assert registry.factory_gateway_of("gw-sn-0002") is not None


def test_a_v2_registry_is_upgraded_with_the_provisioning_tables(tmp_path: Path, noon: datetime) -> None:
    registry = Registry(f"sqlite:///{tmp_path}/v2.db")
    registry.migrate()
    with registry.engine.begin() as conn:
        for table in (t.revocation_requests, t.broker_logins, t.claim_nonces, t.factory_gateways):
            table.drop(conn)
        conn.execute(update(t.schema_version).values(version=2))
    assert registry.schema_version() == 2
    registry.migrate()
    assert registry.schema_version() == t.SCHEMA_VERSION
    assert registry.import_factory_gateways(ROWS, noon).created == 2
    registry.close()
