"""POST /api/v1/gateways/factory (JSON and CSV, all or none) and POST /api/v1/plants/{code}/gateway by claim code."""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY

from pms_common import timeutil
from tests.api.conftest import ADMIN, PROBLEM, Api

ROWS = [{"serial": "SN-0001", "factory_secret": "secret-0001-abcdefghij", "claim_code": "CODE-0001"},
        {"serial": "SN-0002", "factory_secret": "secret-0002-abcdefghij", "claim_code": "CODE-0002"}]
CSV = "\ufeffserial,factory_secret,claim_code\r\nSN-0003,secret-0003-abcdefghij,CODE-0003\r\n\r\n" \
      "SN-0004,secret-0004-abcdefghij,CODE-0004\r\n"


def post_csv(api: Api, text: str, key: str = ADMIN, query: str = "") -> Any:
    return api.client.post(f"/api/v1/gateways/factory{query}", data=text.encode(), content_type="text/csv",
                           headers={"Authorization": f"Bearer {key}"})


def counter(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def test_a_factory_list_is_imported_from_json_and_again_idempotently(api: Api) -> None:
    response = api.send("POST", "/api/v1/gateways/factory", ROWS)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"created": 2, "unchanged": 0, "replaced": 0}
    assert api.send("POST", "/api/v1/gateways/factory", ROWS).get_json() == {"created": 0, "unchanged": 2,
                                                                             "replaced": 0}
    found = api.registry.factory_gateway("SN-0001")
    assert found is not None and found.gateway_id == "gw-sn-0001"


def test_a_factory_list_is_imported_from_csv(api: Api) -> None:
    response = post_csv(api, CSV)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["created"] == 2
    assert api.registry.gateway_for_claim_code("code-0004") == "gw-sn-0004"


def test_bad_rows_are_named_and_nothing_is_imported(api: Api) -> None:
    before = counter("pms_api_factory_rows_refused_total")
    bad = [ROWS[0], {**ROWS[1], "factory_secret": "short"}, {**ROWS[1], "serial": "SN-0005", "claim_code": "CODE-0001"}]
    response = api.send("POST", "/api/v1/gateways/factory", bad)
    assert response.status_code == 422 and response.content_type == PROBLEM
    detail = response.get_json()["detail"]
    assert detail.startswith("nothing imported: row 2:") and "row 3: serial SN-0005 has the same claim code as row 1" \
        in detail
    assert api.registry.factory_gateway("SN-0001") is None
    assert counter("pms_api_factory_rows_refused_total") == before + 2
    csv_bad = post_csv(api, "serial,factory_secret,claim_code\nSN-0009,secret-0009-abcdefghij\n")
    assert csv_bad.status_code == 422 and "row 1: has 2 fields, not 3" in csv_bad.get_json()["detail"]
    header = post_csv(api, "serial,secret\nx,y\n")
    assert header.status_code == 422 and "header must be serial,factory_secret,claim_code" in header.get_json()["detail"]
    missing = api.send("POST", "/api/v1/gateways/factory", [{"serial": "SN-1"}])
    assert missing.status_code == 422 and "row 1:" in missing.get_json()["detail"]
    other = api.client.post("/api/v1/gateways/factory", data=b"x", content_type="text/plain",
                            headers={"Authorization": f"Bearer {ADMIN}"})
    assert other.status_code == 415


def test_a_changed_secret_needs_replace(api: Api) -> None:
    api.send("POST", "/api/v1/gateways/factory", ROWS)
    changed = [{**ROWS[0], "factory_secret": "a-new-secret-abcdefgh"}]
    assert api.send("POST", "/api/v1/gateways/factory", changed).status_code == 422
    assert api.send("POST", "/api/v1/gateways/factory?replace=true", changed).get_json()["replaced"] == 1


def test_only_an_admin_imports(api: Api) -> None:
    assert api.send("POST", "/api/v1/gateways/factory", ROWS, key=api.keys["c1"]).status_code == 403
    assert post_csv(api, CSV, key=api.keys["c1"]).status_code == 403


def test_an_operator_binds_a_gateway_to_its_plant_by_claim_code(api: Api) -> None:
    api.send("POST", "/api/v1/gateways/factory", ROWS)
    code = api.codes["b"]  # customer c1's plant without a gateway
    response = api.send("POST", f"/api/v1/plants/{code}/gateway", {"claim_code": "code 0001"}, key=api.keys["c1"])
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"gateway_id": "gw-sn-0001", "service_code": code, "claimed": False}
    assert api.registry.plant_of_gateway("gw-sn-0001") == code
    api.registry.record_claim("SN-0002", api.registry.factory_gateway("SN-0002").imported_at)  # type: ignore[union-attr]
    admin = api.send("POST", f"/api/v1/plants/{api.codes['c']}/gateway", {"claim_code": "CODE-0002"})
    assert admin.get_json()["claimed"] is True


def test_a_wrong_claim_code_or_another_customers_plant_is_refused(api: Api) -> None:
    api.send("POST", "/api/v1/gateways/factory", ROWS)
    before = counter("pms_api_claim_codes_refused_total")
    wrong = api.send("POST", f"/api/v1/plants/{api.codes['b']}/gateway", {"claim_code": "CODE-9999"},
                     key=api.keys["c1"])
    assert wrong.status_code == 404 and wrong.get_json()["detail"] == \
        "no gateway has this claim code; check the code on the gateway's label"
    assert counter("pms_api_claim_codes_refused_total") == before + 1
    foreign = api.send("POST", f"/api/v1/plants/{api.codes['c']}/gateway", {"claim_code": "CODE-0001"},
                       key=api.keys["c1"])
    assert foreign.status_code == 404 and api.registry.plant_of_gateway("gw-sn-0001") is None
    empty = api.send("POST", f"/api/v1/plants/{api.codes['b']}/gateway", {"claim_code": ""}, key=api.keys["c1"])
    assert empty.status_code == 422


def test_the_openapi_document_describes_both(api: Api) -> None:
    document = api.get("/openapi.json").get_json()
    factory = document["paths"]["/api/v1/gateways/factory"]["post"]
    assert set(factory["requestBody"]["content"]) == {"application/json", "text/csv"}
    assert factory["requestBody"]["content"]["application/json"]["schema"]["type"] == "array"
    bind = document["paths"]["/api/v1/plants/{service_code}/gateway"]["post"]
    assert "requestBody" in bind and "200" in bind["responses"]


def test_replacing_unbinding_and_decommissioning_revoke_broker_identities_and_decommissioning_blocks_claims(
        api: Api) -> None:
    assert api.send("POST", "/api/v1/gateways/factory", ROWS).status_code == 200
    now = timeutil.now_jst()
    for serial in ("SN-0001", "SN-0002"):
        api.registry.record_claim(serial, now)  # both claimed: each has a broker login
    plant = api.codes["b"]
    assert api.send("POST", f"/api/v1/plants/{plant}/gateway", {"claim_code": "CODE-0001"}).status_code == 200
    assert api.registry.pending_revocations() == []  # binding revokes nothing
    replaced = api.send("POST", f"/api/v1/plants/{plant}/gateway", {"claim_code": "CODE-0002", "replace": True})
    assert replaced.status_code == 200, replaced.get_data(as_text=True)
    assert [(r.gateway_id, r.reason) for r in api.registry.pending_revocations()] == [
        ("gw-sn-0001", "unbound by key:admin (PMS_ADMIN_API_KEY)")]
    assert [b.gateway_id for b in api.registry.bindings_of_plant(plant) if b.bound_until is None] == ["gw-sn-0002"]
    # Moving a gateway to another plant keeps its identity; unbinding it revokes it.
    assert api.send("PUT", "/api/v1/gateways/gw-sn-0002", {"service_code": api.codes["a"]}).status_code == 200
    assert len(api.registry.pending_revocations()) == 1
    assert api.send("PUT", "/api/v1/gateways/gw-sn-0002", {"service_code": None}).status_code == 200
    assert [r.gateway_id for r in api.registry.pending_revocations()] == ["gw-sn-0001", "gw-sn-0002"]
    # A re-claim supersedes the revocation; decommissioning revokes again and blocks the serial for good.
    api.registry.record_claim("SN-0002", now)
    assert api.send("POST", "/api/v1/gateways/gw-sn-0002/decommission").status_code == 200
    assert [r.reason for r in api.registry.pending_revocations() if r.gateway_id == "gw-sn-0002"] == [
        "decommissioned by key:admin (PMS_ADMIN_API_KEY)"]
    factory = api.registry.factory_gateway("SN-0002")
    assert factory is not None and (factory.blocked, factory.blocked_reason) == (True, "decommissioned")
    refused = api.send("POST", f"/api/v1/plants/{plant}/gateway", {"claim_code": "CODE-0002"})
    assert refused.status_code == 422 and "decommissioned" in refused.get_json()["detail"]
    audit = api.get("/api/v1/audit?target=gw-sn-0002").get_json()["items"]
    assert [(a["action"], a["outcome"]) for a in audit] == [
        ("decommission", "decommissioned"), ("bind", "unbound"), ("bind", "bound"), ("bind", "bound")]
