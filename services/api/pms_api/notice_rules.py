"""Who may post and change which notices, for the API and the console alike.

Admins, and operators of every customer (no customer), post notices for everyone or for any
customer; a customer's operator posts for its own customer only and changes only those. Another
customer's notice answers as none (404), so its existence does not leak; a general notice seen by
a customer's operator is refused (403). Viewers change nothing (refused before these rules).
"""

from __future__ import annotations

from pms_api.problems import ProblemError
from pms_registry.records import Notice


def notice_customer(scope: str | None, asked: str | None) -> str | None:
    """The customer a notice posted by someone of `scope` is for: a customer's operator's own."""
    if scope is None:
        return asked
    if asked not in (None, scope):
        raise ProblemError(403, f"customer_id: an operator posts notices for its customer {scope} only")
    return scope


def editable(notice: Notice | None, notice_id: int, scope: str | None) -> Notice:
    """The notice when someone of `scope` may change it."""
    if notice is None or (scope is not None and notice.customer_id not in (None, scope)):
        raise ProblemError(404, f"no notice {notice_id}")
    if scope is not None and notice.customer_id is None:
        raise ProblemError(403, "a notice for every customer is changed by an admin")
    return notice
