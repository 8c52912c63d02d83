"""Every failed API request ends here: one exception type, one renderer of RFC 9457 problem+json.

Views, the authentication hook and the validation callback raise `ProblemError`; the app registers
`answer_problem` as its one error handler, for `ProblemError` and for what it translates into one
(werkzeug's 404/405 and other HTTP errors, and a registry or store that fails mid-request). Errors
are described in docs/api.md.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any, NoReturn

from flask import Response
from werkzeug.exceptions import HTTPException

from pms_api.models import Problem
from pms_registry import RegistryError
from pms_store import StoreError

log = logging.getLogger(__name__)

INVALID_REQUEST = "Invalid request"


class ProblemError(Exception):
    """A request that ends in a problem answer: its status, a title (the status's phrase unless
    given) and a detail for the caller."""

    def __init__(self, status: int, detail: str | None = None, title: str | None = None) -> None:
        super().__init__(detail or title or HTTPStatus(status).phrase)
        self.status = status
        self.detail = detail
        self.title = title or HTTPStatus(status).phrase


class InvalidRequest(ProblemError):
    """422: the request is well-formed but asks for something the API refuses (bad fields, unknown
    references, a range too long)."""

    def __init__(self, detail: str) -> None:
        super().__init__(422, detail, INVALID_REQUEST)


# Exceptions that answer_problem turns into a problem answer; the app registers it for each.
HANDLED: tuple[type[Exception], ...] = (ProblemError, HTTPException, RegistryError, StoreError)


def as_problem(exc: Exception) -> ProblemError:
    if isinstance(exc, ProblemError):
        return exc
    if isinstance(exc, HTTPException):
        return ProblemError(exc.code or 500, exc.description)
    # A backend that fails mid-request: the caller may retry; the log says what broke.
    log.error("api: backend failure: %s", exc)
    return ProblemError(503, "a backing store is unavailable; try again shortly")


def answer_problem(exc: Exception) -> Response:
    """The application/problem+json answer to `exc` (one of HANDLED)."""
    problem = as_problem(exc)
    body = Problem(title=problem.title, status=problem.status, detail=problem.detail)
    response = Response(body.model_dump_json(exclude_none=True), status=problem.status,
                        content_type="application/problem+json")
    if problem.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="pms"'
    return response


def refuse_invalid_request(exc: Any) -> NoReturn:
    """flask-openapi3's validation callback: a request its models reject is a 422 problem."""
    errors = exc.errors() if hasattr(exc, "errors") else []
    detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:5]) or str(exc)
    raise InvalidRequest(detail)
