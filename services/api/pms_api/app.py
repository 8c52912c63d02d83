"""The Flask application: REST API under /api/v1, OpenAPI 3.1 at /openapi.json, and the console."""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from typing import Any

from flask import Response, g, request, send_file
from flask_openapi3 import APIBlueprint, Info, OpenAPI
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from werkzeug.middleware.proxy_fix import ProxyFix

from pms_api.access import principal_of_request, refuse_read_only
from pms_api.api_admin import add_admin_routes
from pms_api.api_alerts import add_alert_routes
from pms_api.api_deliveries import add_delivery_routes
from pms_api.api_expected import add_expected_routes
from pms_api.api_firmware import add_firmware_routes, firmware_download_blueprint
from pms_api.api_fleet import add_fleet_routes
from pms_api.api_gateway_control import add_gateway_control_routes
from pms_api.api_gateways import add_gateway_routes
from pms_api.api_plant_import import add_plant_csv_routes
from pms_api.api_plant_list import add_plant_list_routes
from pms_api.api_plants import add_plant_routes
from pms_api.api_provisioning import add_provisioning_routes
from pms_api.api_rollouts import add_rollout_routes
from pms_api.api_tariffs import add_tariff_routes
from pms_api.console import console_blueprint
from pms_api.firmware_store import FirmwareStore
from pms_api.login_throttle import LoginThrottle, ThrottlePolicy
from pms_api.models import Problem
from pms_api.openapi_ui import add_openapi_ui
from pms_api.plant_figures import PlantFigures
from pms_api.problems import HANDLED, ProblemError, answer_problem, refuse_invalid_request
from pms_api.security_headers import add_security_headers
from pms_api.series import SeriesFigures
from pms_api.settings import ApiSettings
from pms_common import timeutil
from pms_common.service import configure_logging
from pms_registry import Registry, RegistryError
from pms_store import TimeSeriesStore, open_store

log = logging.getLogger(__name__)

REQUESTS = Counter("pms_api_requests_total", "API requests", ["endpoint", "status"])
AUTH_FAILURES = Counter("pms_api_auth_failures_total", "Requests refused for a missing or bad API key")

SECURITY: list[dict[str, list[str]]] = [{"bearer": []}]
PROBLEM_RESPONSES: dict[Any, Any] = {401: Problem, 404: Problem, 422: Problem}


def plotly_js_path() -> Path:
    """plotly.js as the `plotly` package ships it: the console's charts, served by us, no CDN."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the plotly package is missing: install pms with the [server] extra")
    return Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"


def create_app(settings: ApiSettings | None = None, *, registry: Registry | None = None,
               store: TimeSeriesStore | None = None) -> OpenAPI:
    settings = settings or ApiSettings()
    if not logging.getLogger().handlers:  # under gunicorn nothing else configures logging
        configure_logging(settings.log_level)
    registry = registry or Registry(settings.registry_url)
    registry.prepare(migrate=settings.registry_migrate)
    store = store or open_store(settings.tsdb_url)
    now = timeutil.now_jst()
    if settings.admin_api_key:
        registry.create_api_key(label="admin (PMS_ADMIN_API_KEY)", created_at=now, secret=settings.admin_api_key)
    admin_password = settings.admin_password or settings.admin_api_key
    if admin_password:
        try:
            registry.ensure_user(username=settings.admin_user, password=admin_password, created_at=now)
        except RegistryError as exc:
            log.warning("api: no console admin login made (%s); set PMS_ADMIN_PASSWORD", exc)
    figures = PlantFigures(registry, store, not_measured_intervals=settings.not_measured_intervals)

    app = OpenAPI(
        __name__,
        info=Info(title="PMS API", version="1.0.0",
                  description="Power Metering System: plants, sold power and energy, gateways, events, notices. "
                              "Times are ISO 8601 with offset; days and months are Japan time."),
        security_schemes={"bearer": {"type": "http", "scheme": "bearer"},
                          # gateways' broker logins, for update image downloads only
                          "basic": {"type": "http", "scheme": "basic"}},
        doc_prefix="/openapi",
        doc_url="/openapi.json",
        validation_error_status=422,
        validation_error_callback=refuse_invalid_request,
    )
    app.config["registry"] = registry
    app.config["store"] = store
    app.config["plant_figures"] = figures
    app.secret_key = settings.console_secret_key or registry.shared_secret("console-session")
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_SECURE=settings.console_secure_cookie,
                      REFRESH_INTERVAL_S=settings.console_refresh_s,
                      SESSION_IDLE_S=settings.console_session_idle_s, SESSION_MAX_S=settings.console_session_max_s)
    api = APIBlueprint("api_v1", __name__, url_prefix="/api/v1", abp_security=SECURITY,
                       abp_responses=PROBLEM_RESPONSES)

    @api.before_request
    def authenticate() -> None:
        found = principal_of_request(registry)
        if found is None:
            AUTH_FAILURES.inc()
            raise ProblemError(401, "send a valid API key as 'Authorization: Bearer <key>'")
        g.principal = found
        refuse_read_only()

    add_plant_csv_routes(api, registry, SeriesFigures(store))  # before /plants/<code>: /plants/export.csv
    add_plant_list_routes(api, registry, figures)
    add_plant_routes(api, registry, figures, SeriesFigures(store))
    add_tariff_routes(api, registry)
    add_expected_routes(api, registry, figures.expected)
    add_fleet_routes(api, registry, figures)
    add_gateway_routes(api, registry)
    add_admin_routes(api, registry)
    add_gateway_control_routes(api, registry)
    add_provisioning_routes(api, registry)
    firmware_store = FirmwareStore(settings.firmware_dir)
    add_firmware_routes(api, registry, firmware_store, keys=settings.firmware_keys,
                        floor=settings.firmware_min_version)
    add_rollout_routes(api, registry)
    add_alert_routes(api, registry)
    add_delivery_routes(api, registry)
    app.register_api(api)
    policy = ThrottlePolicy(max_failures=settings.login_max_failures, window_s=settings.login_window_s)
    # Gateways' wrong passwords are counted apart from console logins (gateway ids are not usernames).
    app.register_api(firmware_download_blueprint(registry, firmware_store, LoginThrottle(policy)))
    throttle = LoginThrottle(policy)
    app.register_blueprint(console_blueprint(registry, figures, throttle))

    @app.get("/healthz", doc_ui=False)
    def healthz() -> Response:
        try:
            registry.count_plants()
        except RegistryError as exc:
            raise ProblemError(503, f"registry unavailable: {exc}") from exc
        return Response('{"status":"ok"}', content_type="application/json")

    @app.get("/openapi.json", doc_ui=False)
    def openapi_document() -> Response:
        return Response(json.dumps(app.api_doc), content_type="application/json")

    @app.get("/metrics", doc_ui=False)
    def metrics() -> Response:
        return Response(generate_latest(), content_type=CONTENT_TYPE_LATEST)

    add_openapi_ui(app)

    plotly_js = plotly_js_path()

    @app.get("/vendor/plotly.min.js", doc_ui=False)
    def plotly() -> Response:
        return send_file(plotly_js, mimetype="text/javascript", max_age=86400)

    # Every problem, from a view, Flask (404, 405) or a failing backend, is answered by one handler;
    # the console's pages raise through it too (a plant out of the user's scope is a 404 problem).
    for handled in HANDLED:
        app.register_error_handler(handled, answer_problem)

    app.after_request(add_security_headers)

    @app.after_request
    def count(response: Response) -> Response:
        REQUESTS.labels(request.url_rule.rule if request.url_rule else "unmatched", str(response.status_code)).inc()
        return response

    if settings.api_proxy_hops:
        # Behind a proxy every request comes from the proxy's address: the console's login throttle
        # would count all operators as one. Only the entries the trusted proxies appended are believed;
        # anything a client put in front of them, or sends with no proxy configured, is ignored.
        hops = settings.api_proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    return app
