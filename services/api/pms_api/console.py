"""The operator console: server-rendered pages in Japanese and English behind a login.

Pages render their first view on the server; their scripts then read the same /api/v1 with the
login session (GET only) to refresh lists and draw charts with plotly.js served from /vendor.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import wraps
from typing import Any, TypeVar, cast, get_args
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from prometheus_client import Counter
from werkzeug.wrappers import Response as WerkzeugResponse

from pms_api import console_forms
from pms_api.access import plant_in_scope
from pms_api.api_fleet import gateway_counts
from pms_api.api_provisioning import CLAIM_CODES_REFUSED
from pms_api.console_alerts import add_alert_pages
from pms_api.console_events import add_event_pages
from pms_api.console_people import add_people_pages
from pms_api.console_plants import add_plant_pages
from pms_api.console_rollouts import add_rollout_pages
from pms_api.console_session import live_user_id, start_session
from pms_api.csrf import check_csrf, csrf_field
from pms_api.gateway_actions import bind, push_config, queue_command
from pms_api.gateway_status import GatewayStatus
from pms_api.i18n import LANGUAGES, catalog, translate
from pms_api.login_throttle import LoginThrottle
from pms_api.plant_figures import PlantFigures
from pms_api.plant_list import PlantList, list_query_of
from pms_api.problems import ProblemError
from pms_common import timeutil
from pms_common.event_text import Lang, Phase, kind_label, phase_label, phase_of, render_event
from pms_common.messages import LOG_LEVELS, CommandName
from pms_registry import Registry, RegistryError
from pms_registry.accounts import LockoutPolicy
from pms_registry.records import EventRecord, User

Page = TypeVar("Page", bound=Callable[..., Any])
COMMAND_NAMES: tuple[CommandName, ...] = get_args(CommandName)
RECENT_COMMANDS = 10
RECENT_AUDIT = 20
AUDIT_PAGE = 200
# outcome: ok, failed, locked (the user is locked out), throttled (its address is)
LOGINS = Counter("pms_api_console_logins_total", "Console login attempts", ["outcome"])


def local_path(target: str) -> str | None:
    """`target` when it is a path on this site, else None: a crafted ?next= must not lead elsewhere
    (browsers read `//host` and `/\\host` as other sites)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target or urlsplit(target).netloc:
        return None
    return target


@dataclass(frozen=True)
class EventRow:
    """One line of the home screen's event log, written in the reader's language."""

    event: EventRecord
    kind_label: str
    phase: Phase
    phase_label: str
    text: str


def event_row(event: EventRecord, lang: str, plant_name: str | None = None) -> EventRow:
    language: Lang = "en" if lang == "en" else "ja"
    phase = phase_of(event.state, event.acknowledged_at is not None)
    return EventRow(event=event, kind_label=kind_label(event.kind, language), phase=phase,
                    phase_label=phase_label(phase, language),
                    # An acknowledged alert still says what is wrong; who saw it is shown beside.
                    text=render_event(event, language, "raised" if phase == "acknowledged" else phase,
                                      plant_name=plant_name))


def console_blueprint(registry: Registry, figures: PlantFigures, throttle: LoginThrottle) -> Blueprint:
    console = Blueprint("console", __name__)
    console.before_request(check_csrf)
    gateway_status = GatewayStatus(registry)
    plant_list = PlantList(registry, figures)

    @console.before_request
    def refuse_viewer_changes() -> None:
        """A viewer changes nothing: every console POST but logging out is refused before its view runs
        (pages also leave their forms out for viewers, but the refusal does not rely on that)."""
        # A viewer may still make and revoke its own (read-only) API keys.
        if request.method != "POST" or request.endpoint in ("console.login", "console.logout", "console.create_my_key",
                                                            "console.revoke_my_key"):
            return
        user = current_user()
        if user is not None and not user.can_write:
            raise ProblemError(403, "a viewer may only read")

    def current_user() -> User | None:
        user_id = live_user_id()
        return None if user_id is None else registry.get_user_by_id(user_id)

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

    @console.app_template_filter("duration")
    def duration(seconds: float | None) -> str:
        """Uptime as days, hours and minutes: the same in both languages."""
        if seconds is None:
            return "—"
        minutes = int(seconds) // 60
        days, rest = divmod(minutes, 1440)
        return f"{days}d {rest // 60}h {rest % 60:02d}m" if days else f"{rest // 60}h {rest % 60:02d}m"

    @console.app_template_filter("when")
    def when(moment: datetime | None) -> str:
        return "—" if moment is None else moment.astimezone(timeutil.JST).strftime("%Y-%m-%d %H:%M:%S")

    lockout = LockoutPolicy(max_failures=throttle.policy.max_failures,
                            window=timedelta(seconds=throttle.policy.window_s),
                            lock_for=timedelta(seconds=throttle.policy.window_s))

    @console.route("/login", methods=["GET", "POST"])
    def login() -> str | WerkzeugResponse | tuple[str, int, dict[str, str]]:
        if request.method == "GET":
            return render_template("login.html", failed=False, locked_minutes=None, locked_until=None)
        username = request.form.get("username", "")
        # An address flooding many accounts is stopped in memory first, before any scrypt round.
        wait_s = throttle.retry_after(None, request.remote_addr, time.monotonic())
        if wait_s > 0:
            LOGINS.labels("throttled").inc()
            minutes = max(1, math.ceil(wait_s / 60))
            page = render_template("login.html", failed=False, locked_minutes=minutes, locked_until=None)
            return page, 429, {"Retry-After": str(math.ceil(wait_s))}
        # One account's lockout is kept in the registry: every worker sees it, and an admin lifts it.
        now = timeutil.now_jst()
        outcome = registry.sign_in(username, request.form.get("password", ""), now, lockout)
        user = outcome.user
        if user is None:
            throttle.failed(None, request.remote_addr, time.monotonic())
            if outcome.locked_until is not None:
                LOGINS.labels("locked").inc()
                page = render_template("login.html", failed=False, locked_minutes=None,
                                       locked_until=outcome.locked_until.astimezone(timeutil.JST))
                retry_s = max(1, math.ceil((outcome.locked_until - now).total_seconds()))
                return page, 429, {"Retry-After": str(retry_s)}
            LOGINS.labels("failed").inc()
            return render_template("login.html", failed=True, locked_minutes=None, locked_until=None)
        LOGINS.labels("ok").inc()
        start_session(user.user_id)
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
        counts = gateway_counts(registry.gateway_status_counts(user.customer_id))
        plants = registry.list_plants(user.customer_id)
        sold_total, sold_today = figures.sold_energy(plants, now)
        notices, _ = registry.list_notices(customer_id=user.customer_id, current_at=now)
        names = {p.service_code: p.name for p in plants}
        events = [event_row(e, language(), names.get(e.service_code or ""))
                  for e in registry.list_events(customer_id=user.customer_id, limit=50)]
        return render_template("home.html", counts=counts, plants=len(plants), sold_total=sold_total,
                               sold_today=sold_today, notices=notices, events=events)

    @console.get("/sales", defaults={"view": "list"})
    @console.get("/sales/graph", defaults={"view": "graph"})
    @login_required
    def sales(view: str) -> str:
        """The cross-plant list and its graph view: one page, two ways of showing the same plants. The first
        page is rendered here from the URL's query (search, filters, sort, page); static/sales.js then
        reads /api/v1/plants with the same query as the user changes it, and every refresh interval."""
        user = current_user()
        assert user is not None
        query = list_query_of(request.args, view)
        page = plant_list.page(query, user.customer_id, timeutil.now_jst())
        customers = registry.list_customers() if user.customer_id is None else []
        return render_template("sales.html", page=page, query=query, view=view, customers=customers)

    def plant_page(user: User, service_code: str, *, problems: list[str] | None = None,
                   status: int = 200) -> tuple[str, int]:
        found = plant_in_scope(registry, service_code, user.customer_id)
        detail = figures.detail(found, timeutil.now_jst())
        bound = [b for b in found.bindings if b.bound_until is None]
        return render_template("plant.html", plant=detail, bound=bound, today=timeutil.now_jst().date().isoformat(),
                               problems=problems or []), status

    @console.get("/plants/<service_code>")
    @login_required
    def plant(service_code: str) -> tuple[str, int]:
        user = current_user()
        assert user is not None
        return plant_page(user, service_code)

    @console.post("/plants/<service_code>/gateway")
    @login_required
    def bind_plant_gateway(service_code: str) -> tuple[str, int] | WerkzeugResponse:
        """The plant page's claim-code form: the API's bind by claim code, replacing the current gateway
        when asked (its broker identity is revoked)."""
        user = current_user()
        assert user is not None
        plant_in_scope(registry, service_code, user.customer_id)
        lang = language()
        code = request.form.get("claim_code", "").strip()
        gateway_id = registry.gateway_for_claim_code(code) if code else None
        if gateway_id is None:
            CLAIM_CODES_REFUSED.inc()
            return plant_page(user, service_code, problems=[translate("no_claim_code", lang)], status=422)
        try:
            bind(registry, gateway_id, service_code, actor=f"user:{user.username}",
                 replace=request.form.get("replace") == "1")
        except RegistryError as exc:
            return plant_page(user, service_code, problems=[str(exc)], status=422)
        flash(translate("gateway_bound", lang).format(gateway_id=gateway_id))
        return redirect(url_for("console.plant", service_code=service_code))

    @console.get("/gateways")
    @login_required
    def gateways() -> str:
        user = current_user()
        assert user is not None
        return render_template("gateways.html", gateways=gateway_status.listing(user.customer_id))

    def gateway_page(user: User, gateway_id: str, *, problems: list[str] | None = None,
                     status: int = 200) -> tuple[str, int]:
        found = gateway_status.detail(gateway_id, user.customer_id)
        if found is None:  # another customer's gateway answers as no gateway at all
            raise ProblemError(404, f"no gateway {gateway_id}")
        commands, _ = registry.list_commands(gateway_id, limit=RECENT_COMMANDS)
        audit = registry.list_audit(target=gateway_id, limit=RECENT_AUDIT)[0] if user.is_admin else []
        return render_template("gateway.html", gw=found, config=registry.config_state(gateway_id), commands=commands,
                               audit=audit, problems=problems or [], form=request.form, log_levels=LOG_LEVELS,
                               command_names=COMMAND_NAMES), status

    @console.get("/gateways/<gateway_id>")
    @login_required
    def gateway(gateway_id: str) -> tuple[str, int]:
        user = current_user()
        assert user is not None
        return gateway_page(user, gateway_id)

    def gateway_form(gateway_id: str, read: Callable[[Any], Any], act: Callable[..., object], done: str,
                     anchor: str) -> tuple[str, int] | WerkzeugResponse:
        """A gateway page form: read into the API's request model (422 on the page with the problems),
        carried out by the step the API's endpoint takes too, then back to the page (post/redirect/get)."""
        user = current_user()
        assert user is not None
        form = read(request.form)
        if isinstance(form, list):
            return gateway_page(user, gateway_id, problems=form, status=422)
        if gateway_status.detail(gateway_id, user.customer_id) is None:
            raise ProblemError(404, f"no gateway {gateway_id}")
        act(registry, gateway_id, form, actor=f"user:{user.username}")
        flash(translate(done, language()))
        return redirect(url_for("console.gateway", gateway_id=gateway_id) + anchor)

    @console.post("/gateways/<gateway_id>/config")
    @login_required
    def push_gateway_config(gateway_id: str) -> tuple[str, int] | WerkzeugResponse:
        """The gateway page's config form: the API's PUT config."""
        return gateway_form(gateway_id, console_forms.config_form, push_config, "config_pushed", "#config")

    @console.post("/gateways/<gateway_id>/commands")
    @login_required
    def run_gateway_command(gateway_id: str) -> tuple[str, int] | WerkzeugResponse:
        """The gateway page's command form: queued like the API's POST; the page follows its state."""
        return gateway_form(gateway_id, console_forms.command_form, queue_command, "command_queued", "#commands")

    @console.get("/audit")
    @login_required
    def audit() -> str:
        """Who pushed which configuration and ran which command, when, with what outcome (admins)."""
        user = current_user()
        assert user is not None
        if not user.is_admin:
            raise ProblemError(404, "no such page")
        entries, total = registry.list_audit(limit=AUDIT_PAGE)
        return render_template("audit.html", entries=entries, total=total)

    add_rollout_pages(console, registry, current_user=current_user, language=language, login_required=login_required,
                      translate=translate)
    add_alert_pages(console, registry, current_user=current_user, language=language, login_required=login_required,
                    translate=translate)
    add_plant_pages(console, registry, current_user=current_user, language=language, login_required=login_required,
                    translate=translate)
    add_people_pages(console, registry, current_user=current_user, language=language, login_required=login_required,
                     translate=translate)
    add_event_pages(console, registry, current_user=current_user, language=language, login_required=login_required,
                    translate=translate)
    return console
