"""HTTP helpers shared by the API modules: problem+json answers, JSON bodies, who is asking."""

from __future__ import annotations

from http import HTTPStatus

from flask import Response, g
from pydantic import BaseModel

from pms_api.models import Problem
from pms_registry.registry import Principal


def problem(status: int, detail: str | None = None, title: str | None = None) -> Response:
    body = Problem(title=title or HTTPStatus(status).phrase, status=status, detail=detail)
    response = Response(body.model_dump_json(exclude_none=True), status=status,
                        content_type="application/problem+json")
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="pms"'
    return response


def json_response(model: BaseModel, status: int = 200) -> Response:
    return Response(model.model_dump_json(), status=status, content_type="application/json")


def principal() -> Principal:
    found: Principal = g.principal
    return found


def admin_only() -> Response | None:
    """None for an admin; otherwise the 403 to return."""
    if principal().is_admin:
        return None
    return problem(403, "only an admin key may do this")
