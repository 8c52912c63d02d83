"""JSON answers of the API: a pydantic model as the body (CSV ones are in csvout)."""

from __future__ import annotations

from flask import Response
from pydantic import BaseModel


def json_response(model: BaseModel, status: int = 200) -> Response:
    return Response(model.model_dump_json(), status=status, content_type="application/json")
