"""The console's rollout pages (admins): the list, a new rollout's form, one rollout with its groups
and gateways, and the pause / resume / cancel buttons; the form and the buttons take the same steps
as the REST API (pms_api.rollout_actions).

The rollout page renders its first view here; static/rollout.js then follows it from
GET /api/v1/rollouts/{id} with the login session, so a gateway's report shows without a reload.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as WerkzeugResponse

from pms_api import console_forms
from pms_api.problems import ProblemError
from pms_api.rollout_actions import ACTIONS, change_rollout_state, create_rollout
from pms_api.rollout_progress import BANDS, bands, ordered_counts
from pms_registry import Registry
from pms_registry.records import User

ROLLOUTS_LISTED = 100


def add_rollout_pages(console: Blueprint, registry: Registry, *, current_user: Callable[[], User | None],
                      language: Callable[[], str], login_required: Callable[[Any], Any],
                      translate: Callable[[str, str], str]) -> None:
    """Register the rollout pages on the console blueprint (its login, CSRF check and words)."""

    def admin() -> User:
        """Rollouts span customers: only admins see them (others get the 404 of a page that is not there)."""
        user = current_user()
        if user is None or not user.is_admin:
            raise ProblemError(404, "no such page")
        return user

    @console.get("/rollouts")
    @login_required
    def rollouts() -> str:
        admin()
        listed = [(rollout, registry.rollout_groups(rollout.rollout_id))
                  for rollout in registry.rollouts(limit=ROLLOUTS_LISTED)]
        return render_template("rollouts.html", rollouts=listed, bands=bands)

    def new_rollout_page(problems: list[str] | None = None, status: int = 200) -> tuple[str, int]:
        return render_template("rollout_new.html", images=registry.firmware_images(),
                               customers=registry.list_customers(), problems=problems or [],
                               form=request.form), status

    @console.get("/rollouts/new")
    @login_required
    def new_rollout() -> tuple[str, int]:
        admin()
        return new_rollout_page()

    @console.post("/rollouts")
    @login_required
    def create_rollout_from_form() -> tuple[str, int] | WerkzeugResponse:
        """The new-rollout form: read into the API's request model, created by the API's step; what
        does not fit comes back on the form (422, 409 for a gateway busy in another rollout)."""
        user = admin()
        body = console_forms.rollout_form(request.form)
        if isinstance(body, list):
            return new_rollout_page(body, 422)
        try:
            created = create_rollout(registry, body, actor=f"user:{user.username}")
        except ProblemError as exc:
            if exc.status not in (409, 422):
                raise
            return new_rollout_page([exc.detail or exc.title], exc.status)
        flash(translate("rollout_created_done", language()).format(rollout_id=created.rollout_id))
        return redirect(url_for("console.rollout", rollout_id=created.rollout_id))

    @console.get("/rollouts/<rollout_id>")
    @login_required
    def rollout(rollout_id: str) -> str:
        admin()
        found = registry.rollout(rollout_id)
        if found is None:
            raise ProblemError(404, f"no rollout {rollout_id}")
        groups = registry.rollout_groups(rollout_id)
        members = registry.rollout_gateways(rollout_id)
        return render_template("rollout.html", rollout=found, groups=groups, members=members, bands=bands,
                               ordered_counts=ordered_counts, band_states=BANDS, actions=list(ACTIONS))

    @console.post("/rollouts/<rollout_id>/<action>")
    @login_required
    def rollout_action(rollout_id: str, action: str) -> WerkzeugResponse:
        """A pause / resume / cancel button: the API's action, then back to the page (post/redirect/get);
        an action the rollout's state does not allow is said on the page, not as an error page."""
        user = admin()
        if action not in ACTIONS:
            raise ProblemError(404, f"no rollout action {action}")
        lang = language()
        try:
            change_rollout_state(registry, rollout_id, action, actor=f"user:{user.username}")
        except ProblemError as exc:
            if exc.status != 409:
                raise
            flash(translate("rollout_action_refused", lang).format(detail=exc.detail))
        else:
            flash(translate(f"rollout_{action}_done", lang))
        return redirect(url_for("console.rollout", rollout_id=rollout_id))
