"""The console's people pages: users and customers (admins), "my API keys" (every user) and notices
(everyone reads them; admins and operators post, edit and delete them).

Each form takes the same registry step and the same rules as its /api/v1 route (roles checked by
`check_role`, keys issued by `api_admin.issue_key`, notice scope by `notice_rules`). A new key's
secret is shown once, on the page that answers the form (rendered, not redirected, so it never
rides in the session cookie). Viewers get no forms here but their own keys', and any other POST of
theirs is refused by the console before a view runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from prometheus_client import Counter
from pydantic import ValidationError
from werkzeug.wrappers import Response as WerkzeugResponse

from pms_api.api_admin import issue_key
from pms_api.models import MAX_KEY_DAYS, NoticeIn
from pms_api.notice_rules import editable, notice_customer
from pms_api.problems import InvalidRequest, ProblemError
from pms_common import timeutil
from pms_registry import Registry, RegistryError
from pms_registry.eventlog import NOTICE_KINDS
from pms_registry.records import ROLES, Notice, User

# A form sent back with its problems (each named by its field on the page), by page.
FORMS_REFUSED = Counter("pms_api_console_people_forms_refused_total",
                        "People page forms (users, customers, keys, notices) refused for bad input", ["page"])
NOTICE_FORM_FIELDS = ("kind", "title", "body", "title_en", "body_en", "starts_at", "ends_at", "customer_id")


def add_people_pages(console: Blueprint, registry: Registry, *, current_user: Callable[[], User | None],
                     language: Callable[[], str], login_required: Callable[[Any], Any],
                     translate: Callable[[str, str], str]) -> None:
    """Register the people pages on the console blueprint (its login, CSRF check and words)."""

    def user() -> User:
        found = current_user()
        assert found is not None  # behind login_required
        return found

    def admin() -> User:
        who = user()
        if not who.is_admin:
            raise ProblemError(404, "no such page")  # admin pages do not exist for others
        return who

    @console.app_template_filter("when_jst")
    def when_jst(moment: datetime | None) -> str:
        """A moment to the minute in Japan time ("—" for none), as the notice forms take it."""
        return "—" if moment is None else moment.astimezone(timeutil.JST).strftime("%Y-%m-%d %H:%M")

    @console.app_template_filter("datetime_local")
    def datetime_local(moment: datetime | None) -> str:
        """A moment as a datetime-local input's value in Japan time (blank for none)."""
        return "" if moment is None else moment.astimezone(timeutil.JST).strftime("%Y-%m-%dT%H:%M")

    def done(key: str, **fields: Any) -> None:
        flash(translate(key, language()).format(**fields))

    def form(name: str) -> str:
        return request.form.get(name, "").strip()

    # ---- users -----------------------------------------------------------------------------------------
    def users_page(problems: list[str] | None = None, status: int = 200) -> tuple[str, int]:
        if problems:
            FORMS_REFUSED.labels("users").inc()
        return render_template("people_users.html", users=registry.list_users(), roles=ROLES,
                               customers=registry.list_customers(), now=timeutil.now_jst(),
                               problems=problems or [], form=request.form), status

    @console.get("/users")
    @login_required
    def users() -> tuple[str, int]:
        admin()
        return users_page()

    @console.post("/users")
    @login_required
    def create_user() -> tuple[str, int] | WerkzeugResponse:
        admin()
        username = form("username")
        try:
            registry.create_user(username=username, password=request.form.get("password", ""),
                                 created_at=timeutil.now_jst(), customer_id=form("customer_id") or None,
                                 language=form("language") or "ja", role=_role(form("role")))
        except RegistryError as exc:
            return users_page([str(exc)], 422)
        done("user_created", username=username)
        return redirect(url_for("console.users"))

    @console.post("/users/<username>/role")
    @login_required
    def change_user_role(username: str) -> tuple[str, int] | WerkzeugResponse:
        me = admin()
        role = _role(form("role"))
        if me.username == username and role != "admin":
            return users_page(["role: an admin cannot take away its own admin role"], 409)
        try:
            registry.update_user(username, role=role, customer_id=form("customer_id") or None)
        except RegistryError as exc:
            return users_page([str(exc)], 422)
        done("user_updated", username=username)
        return redirect(url_for("console.users"))

    @console.post("/users/<username>/unlock")
    @login_required
    def unlock_user(username: str) -> WerkzeugResponse:
        admin()
        if not registry.unlock_user(username):
            raise ProblemError(404, f"no user {username}")
        done("user_unlocked", username=username)
        return redirect(url_for("console.users"))

    @console.post("/users/<username>/delete")
    @login_required
    def delete_user(username: str) -> tuple[str, int] | WerkzeugResponse:
        me = admin()
        if me.username == username:
            return users_page(["username: an admin cannot delete itself"], 409)
        if not registry.delete_user(username):
            raise ProblemError(404, f"no user {username}")
        done("user_deleted", username=username)
        return redirect(url_for("console.users"))

    # ---- customers -------------------------------------------------------------------------------------
    def customers_page(problems: list[str] | None = None, status: int = 200) -> tuple[str, int]:
        if problems:
            FORMS_REFUSED.labels("customers").inc()
        return render_template("people_customers.html", customers=registry.list_customers(),
                               problems=problems or [], form=request.form), status

    @console.get("/customers")
    @login_required
    def customers() -> tuple[str, int]:
        admin()
        return customers_page()

    @console.post("/customers")
    @login_required
    def create_customer() -> tuple[str, int] | WerkzeugResponse:
        admin()
        customer_id, name = form("customer_id"), form("name")
        problems = _customer_problems(customer_id, name)
        if not problems and registry.get_customer(customer_id) is not None:
            problems = [f"customer_id: customer {customer_id} exists already"]
        if problems:
            return customers_page(problems, 422)
        registry.ensure_customer(customer_id, name)
        done("customer_created", customer_id=customer_id)
        return redirect(url_for("console.customers"))

    @console.post("/customers/<customer_id>/rename")
    @login_required
    def rename_customer(customer_id: str) -> tuple[str, int] | WerkzeugResponse:
        admin()
        try:
            found = registry.update_customer(customer_id, name=form("name"))
        except RegistryError as exc:
            return customers_page([f"name: {exc}"], 422)
        if not found:
            raise ProblemError(404, f"no customer {customer_id}")
        done("customer_renamed", customer_id=customer_id)
        return redirect(url_for("console.customers"))

    # ---- my API keys -----------------------------------------------------------------------------------
    def keys_page(who: User, *, secret: str | None = None, secret_label: str | None = None,
                  problems: list[str] | None = None, status: int = 200) -> tuple[str, int]:
        if problems:
            FORMS_REFUSED.labels("keys").inc()
        return render_template("people_keys.html", keys=registry.list_api_keys(user_id=who.user_id),
                               now=timeutil.now_jst(), secret=secret, secret_label=secret_label,
                               max_days=MAX_KEY_DAYS, problems=problems or []), status

    @console.get("/keys")
    @login_required
    def my_keys() -> tuple[str, int]:
        return keys_page(user())

    @console.post("/keys")
    @login_required
    def create_my_key() -> tuple[str, int]:
        who = user()
        label = form("label")
        try:
            days = int(form("expires_in_days") or "90")
        except ValueError:
            days = 0
        problems = [] if 1 <= days <= MAX_KEY_DAYS else [f"expires_in_days: 1 to {MAX_KEY_DAYS} days"]
        if not label or len(label) > 200:
            problems.append("label: 1 to 200 characters")
        scope = "read" if form("scope") == "read" or not who.can_write else "write"
        if problems:
            return keys_page(who, problems=problems, status=422)
        try:
            secret, record = issue_key(registry, who, label=label, scope=scope, expires_in_days=days)
        except InvalidRequest as exc:
            return keys_page(who, problems=[str(exc.detail)], status=422)
        return keys_page(who, secret=secret, secret_label=record.label, status=201)

    @console.post("/keys/<key_id>/revoke")
    @login_required
    def revoke_my_key(key_id: str) -> WerkzeugResponse:
        who = user()
        key = registry.get_api_key(key_id)
        if key is None or key.user_id != who.user_id:
            raise ProblemError(404, f"no key {key_id}")  # another's key answers as none
        registry.revoke_api_key_by_id(key_id)
        done("key_revoked_done")
        return redirect(url_for("console.my_keys"))

    # ---- notices ---------------------------------------------------------------------------------------
    def notices_page(problems: list[str] | None = None, status: int = 200) -> tuple[str, int]:
        if problems:
            FORMS_REFUSED.labels("notices").inc()
        who, now = user(), timeutil.now_jst()
        lists = {state: registry.list_notices(customer_id=who.customer_id, state=state, at=now, limit=200)[0]
                 for state in ("current", "scheduled", "past")}
        return render_template("people_notices.html", lists=lists, kinds=NOTICE_KINDS, editing=None,
                               customers=registry.list_customers() if who.customer_id is None else [],
                               can_edit=lambda n: _may_edit(who, n), problems=problems or [],
                               form=request.form), status

    def notice_form() -> dict[str, Any] | list[str]:
        """The form's fields read into the API's NoticeIn (JST times from datetime-local inputs)."""
        fields: dict[str, Any] = {name: form(name) for name in NOTICE_FORM_FIELDS}
        problems = []
        for name in ("starts_at", "ends_at"):
            try:
                fields[name] = _jst(fields[name])
            except ValueError:
                problems.append(f"{name}: a date and time, e.g. 2026-12-04T00:00")
        for name in ("title_en", "body_en", "customer_id"):
            fields[name] = fields[name] or None
        if problems:
            return problems
        try:
            return NoticeIn.model_validate(fields).model_dump()
        except ValidationError as exc:
            return [f"{'.'.join(str(p) for p in e['loc'])}: {str(e['msg']).removeprefix('Value error, ')}"
                    for e in exc.errors()]

    @console.get("/notices")
    @login_required
    def notices() -> tuple[str, int]:
        return notices_page()

    @console.post("/notices")
    @login_required
    def create_notice() -> tuple[str, int] | WerkzeugResponse:
        who = _operator(user())
        fields = notice_form()
        if isinstance(fields, list):
            return notices_page(fields, 422)
        fields["customer_id"] = notice_customer(who.customer_id, fields["customer_id"])
        try:
            registry.create_notice(created_at=timeutil.now_jst(), created_by=f"user:{who.username}", **fields)
        except RegistryError as exc:
            return notices_page([str(exc)], 422)
        done("notice_created")
        return redirect(url_for("console.notices"))

    def edit_page(notice: Notice, problems: list[str] | None = None, status: int = 200) -> tuple[str, int]:
        if problems:
            FORMS_REFUSED.labels("notice").inc()
        who = user()
        return render_template("people_notice_edit.html", notice=notice, kinds=NOTICE_KINDS,
                               customers=registry.list_customers() if who.customer_id is None else [],
                               problems=problems or []), status

    @console.get("/notices/<int:notice_id>")
    @login_required
    def edit_notice(notice_id: int) -> tuple[str, int]:
        who = _operator(user())
        return edit_page(editable(registry.get_notice(notice_id), notice_id, who.customer_id))

    @console.post("/notices/<int:notice_id>")
    @login_required
    def save_notice(notice_id: int) -> tuple[str, int] | WerkzeugResponse:
        who = _operator(user())
        notice = editable(registry.get_notice(notice_id), notice_id, who.customer_id)
        fields = notice_form()
        if isinstance(fields, list):
            return edit_page(notice, fields, 422)
        fields["customer_id"] = notice_customer(who.customer_id, fields["customer_id"])
        try:
            registry.update_notice(notice_id, **fields)
        except RegistryError as exc:
            return edit_page(notice, [str(exc)], 422)
        done("notice_saved")
        return redirect(url_for("console.notices"))

    @console.post("/notices/<int:notice_id>/delete")
    @login_required
    def delete_notice(notice_id: int) -> WerkzeugResponse:
        who = _operator(user())
        editable(registry.get_notice(notice_id), notice_id, who.customer_id)
        registry.delete_notice(notice_id)
        done("notice_deleted")
        return redirect(url_for("console.notices"))


def _role(value: str) -> Any:
    if value not in ROLES:
        raise ProblemError(422, f"role: one of {', '.join(ROLES)}")
    return value


def _customer_problems(customer_id: str, name: str) -> list[str]:
    problems = []
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", customer_id):
        problems.append("customer_id: 1-32 letters, digits, _ or -")
    if not name or len(name) > 200:
        problems.append("name: 1-200 characters")
    return problems


def _operator(who: User) -> User:
    if who.role not in ("admin", "operator"):
        raise ProblemError(403, "only an admin or an operator may do this")
    return who


def _may_edit(who: User, notice: Notice) -> bool:
    if who.role not in ("admin", "operator"):
        return False
    return who.customer_id is None or notice.customer_id == who.customer_id


def _jst(value: str) -> datetime | None:
    """A datetime-local input's value read as Japan time (blank: none)."""
    if not value:
        return None
    moment = datetime.fromisoformat(value)
    return moment.replace(tzinfo=timeutil.JST) if moment.tzinfo is None else moment
