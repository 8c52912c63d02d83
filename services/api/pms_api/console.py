"""The operator console: server-rendered pages in Japanese and English behind a login.

Pages render their first view on the server; their scripts then read the same /api/v1 with the
login session (GET only) to refresh lists and draw charts with plotly.js served from /vendor.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for
from prometheus_client import Counter
from werkzeug.wrappers import Response as WerkzeugResponse

from pms_api.access import plant_in_scope
from pms_api.csrf import check_csrf, csrf_field
from pms_api.i18n import LANGUAGES, catalog, translate
from pms_api.login_throttle import LoginThrottle
from pms_api.plant_figures import PlantFigures
from pms_common import timeutil
from pms_registry import Registry
from pms_registry.records import User

Page = TypeVar("Page", bound=Callable[..., Any])
LOGINS = Counter("pms_api_console_logins_total", "Console login attempts", ["outcome"])  # ok, failed, throttled


def local_path(target: str) -> str | None:
    """`target` when it is a path on this site, else None: a crafted ?next= must not lead elsewhere
    (browsers read `//host` and `/\\host` as other sites)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target or urlsplit(target).netloc:
        return None
    return target


def console_blueprint(registry: Registry, figures: PlantFigures, throttle: LoginThrottle) -> Blueprint:
    console = Blueprint("console", __name__)
    console.before_request(check_csrf)

    def current_user() -> User | None:
        user_id = session.get("user_id")
        return None if user_id is None else registry.get_user_by_id(int(user_id))

    def language() -> str:
        chosen = session.get("lang")
        if chosen in LANGUAGES:
            return str(chosen)
        best = request.accept_languages.best_match(LANGUAGES)
        return best or "ja"

    def login_required(page: Page) -> Page:
        @wraps(page)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if current_user() is None:
                return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
            return page(*args, **kwargs)

        return cast(Page, guarded)

    @console.app_context_processor
    def words() -> dict[str, Any]:
        lang = language()
        return {"lang": lang, "t": lambda key: translate(key, lang), "catalog": catalog(lang),
                "user": current_user(), "refresh_s": current_app.config["REFRESH_INTERVAL_S"],
                "csrf_field": csrf_field}

    @console.route("/login", methods=["GET", "POST"])
    def login() -> str | WerkzeugResponse | tuple[str, int, dict[str, str]]:
        if request.method == "GET":
            return render_template("login.html", failed=False, locked_minutes=None)
        username = request.form.get("username", "")
        # Checked before the password: a locked-out guess costs no scrypt round either.
        wait_s = throttle.retry_after(username, request.remote_addr, time.monotonic())
        if wait_s > 0:
            LOGINS.labels("throttled").inc()
            minutes = max(1, math.ceil(wait_s / 60))
            page = render_template("login.html", failed=False, locked_minutes=minutes)
            return page, 429, {"Retry-After": str(math.ceil(wait_s))}
        user = registry.verify_user(username, request.form.get("password", ""))
        if user is None:
            LOGINS.labels("failed").inc()
            throttle.failed(username, request.remote_addr, time.monotonic())
            return render_template("login.html", failed=True, locked_minutes=None)
        LOGINS.labels("ok").inc()
        throttle.succeeded(username)
        session.clear()
        session["user_id"] = user.user_id
        session["lang"] = request.form.get("lang") if request.form.get("lang") in LANGUAGES else user.language
        return redirect(local_path(request.args.get("next", "")) or url_for("console.home"))

    @console.post("/logout")
    def logout() -> WerkzeugResponse:
        session.clear()
        return redirect(url_for("console.login"))

    @console.get("/lang/<code>")
    def switch_language(code: str) -> WerkzeugResponse:
        if code in LANGUAGES:
            session["lang"] = code
        return redirect(local_path(request.args.get("back", "/")) or "/")

    @console.get("/")
    @login_required
    def home() -> str:
        user = current_user()
        assert user is not None
        now = timeutil.now_jst()
        counts = registry.gateway_status_counts(user.customer_id)
        total = sum(counts.values())
        plants = registry.list_plants(user.customer_id)
        sold_total, sold_today = figures.sold_energy(plants, now)
        notices, _ = registry.list_notices(customer_id=user.customer_id, current_at=now)
        events = registry.list_events(customer_id=user.customer_id, limit=50)
        return render_template("home.html", normal=counts.get("online", 0), abnormal=total - counts.get("online", 0),
                               total=total, plants=len(plants), sold_total=sold_total, sold_today=sold_today,
                               notices=notices, events=events)

    @console.get("/sales", defaults={"view": "list"})
    @console.get("/sales/graph", defaults={"view": "graph"})
    @login_required
    def sales(view: str) -> str:
        """The cross-plant list and its graph view: one page, two ways of showing the same plants."""
        user = current_user()
        assert user is not None
        summaries = figures.summaries(registry.list_plants(user.customer_id), timeutil.now_jst())
        return render_template("sales.html", plants=summaries, view=view)

    @console.get("/plants/<service_code>")
    @login_required
    def plant(service_code: str) -> str:
        user = current_user()
        assert user is not None
        found = plant_in_scope(registry, service_code, user.customer_id)
        detail = figures.detail(found, timeutil.now_jst())
        return render_template("plant.html", plant=detail, today=timeutil.now_jst().date().isoformat())

    return console
