"""The Flask application: REST API under /api/v1, OpenAPI 3.1 at /openapi.json, and the console."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from http import HTTPStatus
from typing import Any

from flask import Response, g, render_template, request
from flask_openapi3 import APIBlueprint, Info, OpenAPI, Tag
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from pydantic import BaseModel
from werkzeug.exceptions import HTTPException

from pms_api.models import (
    EventOut,
    EventPage,
    EventQuery,
    GatewayOut,
    GatewayPage,
    PageQuery,
    PlantDetail,
    PlantPage,
    PlantPath,
    Problem,
)
from pms_api.settings import ApiSettings
from pms_api.views import PlantViews
from pms_common import timeutil
from pms_common.service import configure_logging
from pms_registry import Registry, RegistryError
from pms_registry.registry import Principal
from pms_store import StoreError, TimeSeriesStore, open_store

log = logging.getLogger(__name__)

REQUESTS = Counter("pms_api_requests_total", "API requests", ["endpoint", "status"])
AUTH_FAILURES = Counter("pms_api_auth_failures_total", "Requests refused for a missing or bad API key")

SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]
PROBLEM_RESPONSES: dict[Any, Any] = {401: Problem, 404: Problem, 422: Problem}


def problem(status: int, detail: str | None = None, title: str | None = None) -> Response:
    body = Problem(title=title or HTTPStatus(status).phrase, status=status, detail=detail)
    response = Response(body.model_dump_json(exclude_none=True), status=status,
                        content_type="application/problem+json")
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="pms"'
    return response


def _json(model: BaseModel) -> Response:
    return Response(model.model_dump_json(), content_type="application/json")


def _validation_problem(exc: Any) -> Response:
    errors = exc.errors() if hasattr(exc, "errors") else []
    detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:5]) or str(exc)
    return problem(422, detail, "Invalid request")


def create_app(settings: ApiSettings | None = None, *, registry: Registry | None = None,
               store: TimeSeriesStore | None = None) -> OpenAPI:
    settings = settings or ApiSettings()
    if not logging.getLogger().handlers:  # under gunicorn nothing else configures logging
        configure_logging(settings.log_level)
    registry = registry or Registry(settings.registry_url)
    registry.migrate()
    store = store or open_store(settings.tsdb_url)
    if settings.admin_api_key:
        registry.create_api_key(label="admin (PMS_ADMIN_API_KEY)", created_at=timeutil.now_jst(),
                                secret=settings.admin_api_key)
    views = PlantViews(registry, store, not_measured_intervals=settings.not_measured_intervals)

    app = OpenAPI(
        __name__,
        info=Info(title="PMS API", version="1.0.0",
                  description="Power Metering System: plants, sold power and energy, gateways, events."),
        security_schemes={"bearer": {"type": "http", "scheme": "bearer"}},
        doc_prefix="/openapi",
        doc_url="/openapi.json",
        validation_error_status=422,
        validation_error_callback=_validation_problem,
    )
    app.config["registry"] = registry
    app.config["store"] = store
    api = APIBlueprint("api_v1", __name__, url_prefix="/api/v1", abp_security=SECURITY,
                       abp_responses=PROBLEM_RESPONSES)
    plants_tag = Tag(name="plants", description="Plants and what they sell")
    fleet_tag = Tag(name="fleet", description="Gateways and events")

    @api.before_request
    def authenticate() -> Response | None:
        header = request.headers.get("Authorization", "")
        scheme, _, secret = header.partition(" ")
        principal = registry.authenticate(secret.strip()) if scheme.lower() == "bearer" and secret else None
        if principal is None:
            AUTH_FAILURES.inc()
            return problem(401, "send a valid API key as 'Authorization: Bearer <key>'")
        g.principal = principal
        return None

    def principal() -> Principal:
        found: Principal = g.principal
        return found

    @api.get("/plants", tags=[plants_tag], responses={200: PlantPage})
    def list_plants(query: PageQuery) -> Response:
        """The cross-plant list: current sold power (null = not measured) and today's sold kWh."""
        plants = registry.list_plants(principal().customer_id)
        page = plants[query.offset : query.offset + query.limit]
        items = views.summaries(page, timeutil.now_jst())
        return _json(PlantPage(items=items, total=len(plants), limit=query.limit, offset=query.offset))

    @api.get("/plants/<service_code>", tags=[plants_tag], responses={200: PlantDetail})
    def get_plant(path: PlantPath) -> Response:
        """One plant; another customer's plant answers 404 so that its existence does not leak."""
        plant = registry.get_plant(path.service_code, principal().customer_id)
        if plant is None:
            return problem(404, f"no plant {path.service_code}")
        return _json(views.detail(plant, timeutil.now_jst()))

    @api.get("/gateways", tags=[fleet_tag], responses={200: GatewayPage})
    def list_gateways(query: PageQuery) -> Response:
        """Gateways with their status and latest heartbeat."""
        gateways = registry.list_gateways(principal().customer_id)
        page = gateways[query.offset : query.offset + query.limit]
        items = [GatewayOut(**asdict(gw)) for gw in page]
        return _json(GatewayPage(items=items, total=len(gateways), limit=query.limit, offset=query.offset))

    @api.get("/events", tags=[fleet_tag], responses={200: EventPage})
    def list_events(query: EventQuery) -> Response:
        """The event log, newest first."""
        customer_id = principal().customer_id
        records = registry.list_events(customer_id=customer_id, limit=query.limit, offset=query.offset,
                                       state=query.state)
        total = registry.count_events(customer_id=customer_id, state=query.state)
        items = [EventOut(**asdict(r)) for r in records]
        return _json(EventPage(items=items, total=total, limit=query.limit, offset=query.offset))

    app.register_api(api)

    @app.get("/healthz", doc_ui=False)
    def healthz() -> Response:
        try:
            registry.count_plants()
        except RegistryError as exc:
            return problem(503, f"registry unavailable: {exc}")
        return Response('{"status":"ok"}', content_type="application/json")

    @app.get("/openapi.json", doc_ui=False)
    def openapi_document() -> Response:
        return Response(json.dumps(app.api_doc), content_type="application/json")

    @app.get("/metrics", doc_ui=False)
    def metrics() -> Response:
        return Response(generate_latest(), content_type=CONTENT_TYPE_LATEST)

    @app.get("/", doc_ui=False)
    def console() -> str:
        return render_template("index.html")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        return problem(exc.code or 500, exc.description)

    @app.errorhandler(StoreError)
    @app.errorhandler(RegistryError)
    def backend_error(exc: Exception) -> Response:
        log.error("api: backend failure: %s", exc)
        return problem(503, "a backing store is unavailable; try again shortly")

    @app.after_request
    def count(response: Response) -> Response:
        REQUESTS.labels(request.url_rule.rule if request.url_rule else "unmatched", str(response.status_code)).inc()
        return response

    return app
