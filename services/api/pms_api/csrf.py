"""CSRF tokens for the console's forms.

The console changes things with plain HTML forms posted with the login session's cookie. SameSite=Lax
already keeps that cookie off cross-site POSTs in current browsers; the token is the defence that
does not depend on the browser: one random token per session, put into every form by the template
(`csrf_field()`), and checked on every POST to the console before the view runs.
"""

from __future__ import annotations

import hmac
import secrets

from flask import request, session
from markupsafe import Markup, escape
from prometheus_client import Counter

from pms_api.problems import ProblemError

SESSION_KEY = "csrf_token"
FORM_FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
REFUSED = Counter("pms_api_csrf_refused_total", "Console form posts refused for a missing or wrong CSRF token")


def csrf_token() -> str:
    """This session's token, made on first use."""
    token = session.get(SESSION_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[SESSION_KEY] = token
    return token


def csrf_field() -> Markup:
    return Markup('<input type="hidden" name="{}" value="{}">').format(FORM_FIELD, escape(csrf_token()))


def check_csrf() -> None:
    """Refuse a state-changing request whose token is missing or is not this session's (403)."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    expected = session.get(SESSION_KEY)
    sent = request.form.get(FORM_FIELD) or request.headers.get(HEADER) or ""
    if not isinstance(expected, str) or not expected or not hmac.compare_digest(sent, expected):
        REFUSED.inc()
        raise ProblemError(403, "the form was not sent from this console session (missing or wrong CSRF token); "
                                "reload the page and send it again")
