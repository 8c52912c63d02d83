"""Every failed request ends here: one exception type, one renderer of RFC 9457 problem+json.

Views, the authentication hook and the validation callback raise `ProblemError`; the app registers
`answer_problem` as its one error handler, for `ProblemError` and for what it translates into one
(werkzeug's 404/405 and other HTTP errors, and a registry or store that fails mid-request). Errors
are described in docs/api.md.

A person's browser asking for a console page (any path outside the API, the OpenAPI document, the
metrics, health, vendored and static files) gets the same failure as an HTML page in its language
with a link home (templates/error.html): a problem+json document is for programs.
"""

from __future__ import annotations

import inspect
import json
import logging
import typing
from http import HTTPStatus
from typing import Any, NoReturn

from flask import Response, current_app, render_template, request, session
from markupsafe import escape
from prometheus_client import Counter
from pydantic import BaseModel
from werkzeug.exceptions import HTTPException

from pms_api.i18n import LANGUAGES, translate
from pms_api.models import Problem
from pms_registry import RegistryError
from pms_store import StoreError

log = logging.getLogger(__name__)

INVALID_REQUEST = "Invalid request"
INVALID_REQUESTS = Counter("pms_api_invalid_requests_total", "Requests refused by their models, by the part at fault",
                           ["part"])  # body, query, path, form, header, cookie, request
# Paths whose failures stay problem+json whatever the client accepts: they are for programs.
MACHINE_PATHS = ("/api/", "/openapi", "/metrics", "/healthz", "/vendor/", "/static/")
# The parts of a request flask-openapi3 validates, by the name of the view's parameter.
REQUEST_PARTS = ("path", "query", "header", "cookie", "form", "body")
MAX_LISTED_ERRORS = 5


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
    """The answer to `exc` (one of HANDLED): application/problem+json, or an HTML page for a browser
    on the console."""
    problem = as_problem(exc)
    if wants_html_page():
        # werkzeug's own English sentence ("The requested URL was not found...") is replaced on the
        # page by a hint in the reader's language; a detail of ours is shown as it is.
        stock = isinstance(exc, HTTPException) and exc.description == type(exc).description
        return error_page(problem, stock_detail=stock)
    body = Problem(title=problem.title, status=problem.status, detail=problem.detail)
    response = Response(body.model_dump_json(exclude_none=True), status=problem.status,
                        content_type="application/problem+json")
    if problem.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="pms"'
    return response


def wants_html_page() -> bool:
    """A browser asking for a console page: HTML preferred to JSON, and a path that is not for programs."""
    if request.path.startswith(MACHINE_PATHS):
        return False
    # `*/*` alone (curl, test clients) picks the first: only a client that names HTML gets a page.
    offered = ["application/problem+json", "application/json", "text/html"]
    return request.accept_mimetypes.best_match(offered) == "text/html"


def page_language() -> str:
    chosen = session.get("lang")
    if chosen in LANGUAGES:
        return str(chosen)
    return request.accept_languages.best_match(LANGUAGES) or "ja"


def error_page(problem: ProblemError, *, stock_detail: bool = False) -> Response:
    """The console's HTML page for a failure: what happened in the reader's language, the detail,
    a link home. Rendered without the console's page frame when that itself fails (a registry that is
    down also fails the frame's user look-up), so the reader always gets a page."""
    lang = page_language()
    key = f"error_{problem.status}" if f"error_{problem.status}" in ERROR_KEYS else "error_other"
    heading = translate(key, lang)
    detail = translate("error_hint", lang) if stock_detail else problem.detail
    try:
        body = render_template("error.html", problem=problem, heading=heading, detail=detail)
    except Exception as exc:  # the error page must not fail in turn
        log.warning("api: error page rendered without its frame: %s", exc)
        body = (f'<!doctype html><html lang="{lang}"><meta charset="utf-8"><title>{escape(heading)}</title>'
                f'<h1>{escape(heading)}</h1><p>{escape(detail or problem.title)}</p>'
                f'<p><a href="/">{escape(translate("error_home", lang))}</a></p></html>')
    return Response(body, status=problem.status, content_type="text/html; charset=utf-8")


ERROR_KEYS = ("error_403", "error_404", "error_405", "error_422", "error_429", "error_503")


def refuse_invalid_request(exc: Any) -> NoReturn:
    """flask-openapi3's validation callback: a request its models reject is a 422 problem whose detail
    names each field as `<part>.<field>` (`body.capacity_kw: ...`, `query.limit: ...`), and says plainly
    when the body is not JSON at all or not an object."""
    part = failed_part(getattr(exc, "title", None))
    INVALID_REQUESTS.labels(part or "request").inc()
    if part == "body":
        unreadable = unreadable_body()
        if unreadable is not None:
            raise InvalidRequest(unreadable)
    errors = exc.errors() if hasattr(exc, "errors") else []
    detail = "; ".join(f"{field_name(part, e['loc'])}: {e['msg']}" for e in errors[:MAX_LISTED_ERRORS])
    if len(errors) > MAX_LISTED_ERRORS:
        detail += f"; and {len(errors) - MAX_LISTED_ERRORS} more"
    raise InvalidRequest(detail or str(exc))


def field_name(part: str | None, loc: tuple[Any, ...]) -> str:
    """`body.capacity_kw`, `query.limit`, `body.items.2.name`; the part alone for a rule over the whole
    part (e.g. "end must not be before start")."""
    return ".".join(str(item) for item in ((part or "request"), *loc))


def failed_part(model_name: str | None) -> str | None:
    """Which part of the request (path, query, body, ...) the model named `model_name` reads: the
    validation error names the model, the view's annotations name the part it is bound to."""
    view = current_app.view_functions.get(request.endpoint or "")
    if view is None or model_name is None:
        return None
    try:
        hints = typing.get_type_hints(inspect.unwrap(view))
    except (NameError, TypeError):
        return None
    for part in REQUEST_PARTS:
        model = hints.get(part)
        if isinstance(model, type) and issubclass(model, BaseModel) and model.__name__ == model_name:
            return part
    return None


def unreadable_body() -> str | None:
    """Why the request body cannot be read as a JSON object, or None when it is one."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return "the request body is empty: send a JSON object (Content-Type: application/json)"
    try:
        document = json.loads(raw)
    except UnicodeDecodeError:
        return "the request body is not valid JSON (it is not UTF-8 text)"
    except json.JSONDecodeError as exc:
        return f"the request body is not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})"
    if not isinstance(document, dict):
        return f"the request body must be a JSON object, not {json_kind(document)}"
    if not request.is_json:
        return "the request body is JSON but its Content-Type is not application/json"
    return None


def json_kind(document: object) -> str:
    if isinstance(document, list):
        return "an array"
    if isinstance(document, str):
        return "a string"
    if isinstance(document, bool):
        return "true or false"
    if document is None:
        return "null"
    return "a number"
