"""How long a console login lasts: it ends after `idle` seconds without a request, and in any case
`max` seconds after the password was given (settings PMS_CONSOLE_SESSION_IDLE_S and
PMS_CONSOLE_SESSION_MAX_S). Both times ride in the signed session cookie, so any API replica can
tell; the clock is timeutil.now_jst, the one clock the services read (tests pin it).

An ended session is cleared: the console's pages send the browser to the login page with next= set,
and the API no longer reads it as a login."""

from __future__ import annotations

from flask import current_app, flash, session
from prometheus_client import Counter

from pms_api.i18n import translate
from pms_common import timeutil

SIGNED_IN_AT = "signed_in_at"
SEEN_AT = "seen_at"
# The last-seen time is rewritten at most this often: each rewrite is a new Set-Cookie.
SEEN_RESOLUTION_S = 30.0
ENDED = Counter("pms_api_console_sessions_ended_total", "Console sessions ended by the clock", ["reason"])  # idle, max


def start_session(user_id: int) -> None:
    """A fresh login: whatever the cookie held before is dropped (no session fixation)."""
    session.clear()
    now = timeutil.now_jst().timestamp()
    session["user_id"] = user_id
    session[SIGNED_IN_AT] = now
    session[SEEN_AT] = now


def live_user_id() -> int | None:
    """The logged-in user's id while the session lasts; None (and the session cleared) once it has
    ended by idleness or age, or when there is no login. A read that keeps it alive."""
    user_id = session.get("user_id")
    if user_id is None:
        return None
    now = timeutil.now_jst().timestamp()
    signed_in_at = session.get(SIGNED_IN_AT)
    seen_at = session.get(SEEN_AT)
    if not isinstance(signed_in_at, (int, float)) or not isinstance(seen_at, (int, float)):
        ended = "max"  # a cookie from before sessions expired: sign in again
    elif now - signed_in_at > current_app.config["SESSION_MAX_S"]:
        ended = "max"
    elif now - seen_at > current_app.config["SESSION_IDLE_S"]:
        ended = "idle"
    else:
        if now - seen_at >= SEEN_RESOLUTION_S:
            session[SEEN_AT] = now
        return int(user_id)
    ENDED.labels(ended).inc()
    lang = session.get("lang")
    session.clear()
    if lang is not None:
        session["lang"] = lang  # the login page stays in the reader's language
    flash(translate("session_ended", str(lang or "ja")))
    return None
