"""Plants in bulk as CSV: an import in two steps (a preview that writes nothing and lists each row's
problems, then a confirmation that writes exactly the previewed valid rows, all or none), the export
the import reads back, and the monthly settlement sheet across a customer's plants."""

from __future__ import annotations

import secrets
from datetime import date, datetime, timedelta
from typing import Any, Literal

from flask import Response, request
from flask_openapi3 import APIBlueprint, Tag
from flask_openapi3.models import RequestBody
from pydantic import BaseModel, Field

from pms_api.access import actor_of, principal, require_operator
from pms_api.jsonout import json_response
from pms_api.models import CSV_CONTENT, Problem
from pms_api.plant_csv import Preview, ReadEncoding, read_plants, write_plants
from pms_api.problems import InvalidRequest, ProblemError
from pms_api.series import SeriesFigures
from pms_api.settlement import settlement_csv, settlement_lines
from pms_common import timeutil
from pms_registry import Registry, RegistryError
from pms_registry.plant_import import ImportedPlant, ImportNotFound

PLANT_CSV = Tag(name="plant-csv", description="Plants in bulk as CSV (UTF-8 with BOM or Shift_JIS), and the "
                                               "monthly settlement sheet")
MAX_UPLOAD_BYTES = 8 * 1024 * 1024


class ImportQuery(BaseModel):
    encoding: ReadEncoding = Field(default="auto", description="auto: UTF-8 (with or without BOM), else Shift_JIS")
    lang: Literal["ja", "en"] = Field(default="en", description="the language of the problems")


class ImportRowOut(BaseModel):
    row: int = Field(description="the line in the file (the header is line 1)")
    service_code: str | None = Field(description="blank: a new plant, its code issued on confirmation")
    name: str
    problems: list[str] = Field(description="empty: the row will be written on confirmation")


class ImportPreviewOut(BaseModel):
    token: str | None = Field(description="confirm with POST /plants/import/{token}; null when no row is valid")
    expires_at: datetime | None
    total: int
    accepted: int
    refused: int
    problems: list[str] = Field(description="about the whole file (encoding, headers)")
    rows: list[ImportRowOut]


class ImportResultOut(BaseModel):
    created: list[str]
    updated: list[str]


class ImportTokenPath(BaseModel):
    token: str = Field(pattern=r"^[A-Za-z0-9_-]{16,64}$")


class ExportQuery(BaseModel):
    encoding: Literal["utf-8-sig", "shift_jis"] = "utf-8-sig"
    headers: Literal["ja", "en"] = "ja"
    customer_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,32}$")


class SettlementPath(BaseModel):
    customer_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")


class SettlementQuery(BaseModel):
    month: str | None = Field(default=None, pattern=r"^\d{4}-(0[1-9]|1[0-2])$",
                              description="YYYY-MM, a JST month; default the month before this one")
    encoding: Literal["utf-8-sig", "shift_jis"] = "utf-8-sig"
    headers: Literal["ja", "en"] = "ja"


def preview_import(registry: Registry, data: bytes, encoding: ReadEncoding, *, scope: str | None,
                   actor: str) -> tuple[Preview, str | None, datetime | None]:
    """Check the file and keep its valid rows under a new token (None when no row is valid)."""
    plants = {plant.service_code: plant for plant in registry.list_plants(scope, include_retired=True)}
    customers = {customer.customer_id for customer in registry.list_customers()}
    preview = read_plants(data, encoding, customers=customers, plants=plants, scope=scope)
    if not preview.accepted:
        return preview, None, None
    token = secrets.token_urlsafe(24)
    expires = registry.keep_plant_import(token, actor=actor, customer_scope=scope, rows=preview.accepted,
                                         at=timeutil.now_jst())
    return preview, token, expires


def confirm_import(registry: Registry, token: str, actor: str) -> list[ImportedPlant]:
    """Write the previewed rows (ImportNotFound / RegistryError: nothing written)."""
    return registry.confirm_plant_import(token, actor=actor, at=timeutil.now_jst())


def _csv_answer(body: bytes, encoding: str, filename: str) -> Response:
    charset = "shift_jis" if encoding == "shift_jis" else "utf-8"
    response = Response(body, content_type=f"text/csv; charset={charset}")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _uploaded_file() -> bytes:
    """The CSV as a multipart `file` part or as the whole text/csv body."""
    if request.content_length is not None and request.content_length > MAX_UPLOAD_BYTES:
        raise ProblemError(413, f"send at most {MAX_UPLOAD_BYTES // 1024 // 1024} MiB of CSV at a time")
    if request.mimetype == "multipart/form-data":
        part = request.files.get("file")
        if part is None:
            raise InvalidRequest("file: the upload has no `file` part")
        return part.stream.read(MAX_UPLOAD_BYTES + 1)
    if request.mimetype != "text/csv":
        raise ProblemError(415, "send the plants as text/csv, or as multipart/form-data with a `file` part")
    return request.get_data()


def add_plant_csv_routes(api: APIBlueprint, registry: Registry, series: SeriesFigures) -> None:
    @api.post("/plants/import", tags=[PLANT_CSV], responses={200: ImportPreviewOut, 403: Problem})
    def import_preview(query: ImportQuery) -> Response:
        """Check a CSV of plants and preview it: nothing is written. Headers in Japanese or English; a blank
        service code is a new plant, a given one an update of that plant. The valid rows wait 30 minutes for
        POST /plants/import/{token}."""
        require_operator()
        preview, token, expires = preview_import(registry, _uploaded_file(), query.encoding,
                                                 scope=principal().customer_id, actor=actor_of(registry))
        return json_response(ImportPreviewOut(
            token=token, expires_at=expires, total=len(preview.rows), accepted=len(preview.accepted),
            refused=len(preview.refused), problems=[p.text(query.lang) for p in preview.problems],
            rows=[ImportRowOut(row=row.row, service_code=row.cells.get("service_code") or None,
                               name=row.cells.get("name", ""), problems=[p.text(query.lang) for p in row.problems])
                  for row in preview.rows]))

    @api.post("/plants/import/<token>", tags=[PLANT_CSV], responses={200: ImportResultOut, 409: Problem})
    def import_confirm(path: ImportTokenPath) -> Response:
        """Write the rows the preview accepted, in one transaction: all of them or, when one no longer fits
        (a customer removed meanwhile), none (409)."""
        require_operator()
        try:
            done = confirm_import(registry, path.token, actor_of(registry))
        except ImportNotFound as exc:
            raise ProblemError(404, str(exc)) from exc
        except RegistryError as exc:
            raise ProblemError(409, f"nothing imported: {exc}") from exc
        return json_response(ImportResultOut(created=[d.service_code for d in done if d.created],
                                             updated=[d.service_code for d in done if not d.created]))

    @api.get("/plants/export.csv", tags=[PLANT_CSV], responses={200: {"content": CSV_CONTENT}})
    def export_plants(query: ExportQuery) -> Response:
        """The plants (one customer's with `customer_id`) in the columns the import reads, PV parameters
        and today's price included: edit in Excel and import again. Retired plants are left out."""
        scope = principal().customer_id
        if scope is not None and query.customer_id not in (None, scope):
            raise ProblemError(404, f"no customer {query.customer_id}")
        plants = registry.list_plants(query.customer_id or scope)
        pv = registry.plant_pvs([plant.service_code for plant in plants])
        body = write_plants(plants, pv, query.headers, query.encoding)
        return _csv_answer(body, query.encoding, f"plants-{timeutil.now_jst().date().isoformat()}.csv")

    @api.get("/customers/<customer_id>/settlement.csv", tags=[PLANT_CSV], responses={200: {"content": CSV_CONTENT}})
    def settlement(path: SettlementPath, query: SettlementQuery) -> Response:
        """The month's settlement sheet: per plant, sold and bought kWh, the prices applied and the amount
        (the price in force on each day sold), with a total line. A JST month, default the last one."""
        scope = principal().customer_id
        known = {c.customer_id for c in registry.list_customers()}
        if (scope is not None and scope != path.customer_id) or path.customer_id not in known:
            raise ProblemError(404, f"no customer {path.customer_id}")
        month = _month(query.month)
        lines = settlement_lines(registry, series, path.customer_id, month)
        return _csv_answer(settlement_csv(lines, query.headers, query.encoding), query.encoding,
                           f"settlement-{path.customer_id}-{month.strftime('%Y-%m')}.csv")

    _document_upload(api)


def _month(text: str | None) -> date:
    if text is None:
        this_month = timeutil.now_jst().date().replace(day=1)
        return (this_month - timedelta(days=1)).replace(day=1)
    year, month = text.split("-")
    return date(int(year), int(month), 1)


def _document_upload(api: APIBlueprint) -> None:
    """The preview reads its body itself (text/csv or a multipart file); the document says so."""
    body: dict[str, Any] = {"required": True, "content": {
        "text/csv": {"schema": {"type": "string", "description": "UTF-8 (BOM optional) or Shift_JIS CSV"}},
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "file": {"type": "string", "format": "binary"}}, "required": ["file"]}},
    }}
    for path, item in api.paths.items():
        if path.endswith("/plants/import") and item.post is not None:
            item.post.requestBody = RequestBody(**body)
