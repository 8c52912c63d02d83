"""The registry's exceptions.

    PmsError (pms_common.errors)    a failure the operator can act on
    └── RegistryError               the registry cannot be reached, or a request breaks its rules

One class on purpose: callers tell "unreachable" from "refused" by where they catch it (the API
answers a RegistryError from a write it validates as 422, any other as 503). When the database
refused a write, the SQLAlchemy error is the RegistryError's __cause__ (an IntegrityError for a
duplicate key or an unknown customer), which the registry itself reads to word its messages.
"""

from __future__ import annotations

from pms_common.errors import PmsError


class RegistryError(PmsError):
    """The registry cannot be reached, or a request breaks its rules."""
