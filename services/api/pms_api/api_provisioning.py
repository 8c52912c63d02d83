"""/api/v1 provisioning: the manufacturer's list imported (admin), a gateway bound to a plant by its claim code.

The factory list comes as JSON (a list of rows) or as CSV with the header `serial,factory_secret,claim_code`.
It is imported all or none: a bad row answers 422 naming every bad row, and nothing is written.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from flask import Response, request
from flask_openapi3 import APIBlueprint, Tag
from flask_openapi3.models import RequestBody
from prometheus_client import Counter
from pydantic import TypeAdapter, ValidationError

from pms_api.access import actor_of, plant_in_scope, principal, require_admin
from pms_api.gateway_actions import bind
from pms_api.jsonout import json_response
from pms_api.models import PlantPath
from pms_api.problems import InvalidRequest, ProblemError
from pms_api.provisioning_models import (
    ClaimCodeIn,
    FactoryImportOut,
    FactoryImportQuery,
    FactoryRowIn,
    PlantGatewayOut,
)
from pms_common import timeutil
from pms_registry import Registry, RegistryError
from pms_registry.provisioning import FactoryImportError, FactoryRow

PROVISIONING = Tag(name="provisioning", description="Zero-config provisioning: the factory list, binding by claim code")
FACTORY_ROWS_REFUSED = Counter("pms_api_factory_rows_refused_total", "Factory list rows refused on import")
CLAIM_CODES_REFUSED = Counter("pms_api_claim_codes_refused_total", "Bindings refused for a claim code of no gateway")
CSV_HEADER = ["serial", "factory_secret", "claim_code"]
MAX_ROWS = 100_000
_ROWS = TypeAdapter(list[FactoryRowIn])


def add_provisioning_routes(api: APIBlueprint, registry: Registry) -> None:
    @api.post("/gateways/factory", tags=[PROVISIONING], responses={200: FactoryImportOut})
    def import_factory_list(query: FactoryImportQuery) -> Response:
        """Import the manufacturer's list of gateways (admin): JSON rows or text/csv, all or none."""
        require_admin()
        rows = _factory_rows()
        try:
            result = registry.import_factory_gateways(rows, timeutil.now_jst(), replace=query.replace)
        except FactoryImportError as exc:
            FACTORY_ROWS_REFUSED.inc(len(exc.errors))
            raise InvalidRequest(f"nothing imported: {exc}") from exc
        return json_response(FactoryImportOut(created=result.created, unchanged=result.unchanged,
                                              replaced=result.replaced))

    @api.post("/plants/<service_code>/gateway", tags=[PROVISIONING], responses={200: PlantGatewayOut})
    def bind_by_claim_code(path: PlantPath, body: ClaimCodeIn) -> Response:
        """Bind the gateway whose label carries this claim code to the plant (admin, or the plant's customer).
        With `replace`, the plant's other gateways are unbound and their broker identities revoked."""
        plant_in_scope(registry, path.service_code, principal().customer_id)
        gateway_id = registry.gateway_for_claim_code(body.claim_code)
        if gateway_id is None:
            CLAIM_CODES_REFUSED.inc()
            raise ProblemError(404, "no gateway has this claim code; check the code on the gateway's label")
        try:
            bind(registry, gateway_id, path.service_code, actor=actor_of(registry), replace=body.replace)
        except RegistryError as exc:
            raise InvalidRequest(str(exc)) from exc
        factory = registry.factory_gateway_of(gateway_id)
        return json_response(PlantGatewayOut(gateway_id=gateway_id, service_code=path.service_code,
                                             claimed=factory is not None and factory.claimed_at is not None))

    _document_factory_body(api)


def _factory_rows() -> list[FactoryRow]:
    content_type = (request.mimetype or "").lower()
    raw = request.get_data(as_text=True)
    if content_type == "text/csv":
        parsed = _csv_rows(raw)
    elif content_type == "application/json":
        try:
            parsed = _ROWS.validate_python(json.loads(raw))
        except json.JSONDecodeError as exc:
            raise InvalidRequest(f"the body is not JSON: {exc.msg} at line {exc.lineno}") from exc
        except ValidationError as exc:
            FACTORY_ROWS_REFUSED.inc()
            raise InvalidRequest("nothing imported: " + "; ".join(
                f"row {int(e['loc'][0]) + 1}: {e['msg']}" if e["loc"] and isinstance(e["loc"][0], int) else e["msg"]
                for e in exc.errors()[:5])) from exc
    else:
        raise ProblemError(415, "send the factory list as application/json or text/csv")
    if not parsed:
        raise InvalidRequest("the factory list has no rows")
    if len(parsed) > MAX_ROWS:
        raise InvalidRequest(f"the factory list has {len(parsed)} rows; send at most {MAX_ROWS} at a time")
    return [FactoryRow(serial=r.serial, factory_secret=r.factory_secret, claim_code=r.claim_code) for r in parsed]


def _csv_rows(text: str) -> list[FactoryRowIn]:
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))  # a BOM, as Excel writes one
    header = [name.strip() for name in next(reader, [])]
    if header != CSV_HEADER:
        raise InvalidRequest(f"the CSV header must be {','.join(CSV_HEADER)}, not {','.join(header) or 'empty'}")
    rows: list[FactoryRowIn] = []
    errors: list[str] = []
    for number, fields in enumerate(reader, start=1):
        if not any(field.strip() for field in fields):
            continue
        if len(fields) != len(CSV_HEADER):
            errors.append(f"row {number}: has {len(fields)} fields, not {len(CSV_HEADER)}")
            continue
        try:
            rows.append(FactoryRowIn(**dict(zip(CSV_HEADER, (f.strip() for f in fields), strict=True))))
        except ValidationError as exc:
            errors.append(f"row {number}: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}")
    if errors:
        FACTORY_ROWS_REFUSED.inc(len(errors))
        raise InvalidRequest("nothing imported: " + "; ".join(errors[:5]))
    return rows


def _document_factory_body(api: APIBlueprint) -> None:
    """The import reads its body itself (JSON or CSV); the document says what both look like."""
    schema: dict[str, Any] = {"type": "array", "items": FactoryRowIn.model_json_schema()}
    body = {"required": True, "content": {
        "application/json": {"schema": schema},
        "text/csv": {"schema": {"type": "string", "description": "header serial,factory_secret,claim_code"}},
    }}
    for path, item in api.paths.items():
        if path.endswith("/gateways/factory") and item.post is not None:
            item.post.requestBody = RequestBody(**body)
