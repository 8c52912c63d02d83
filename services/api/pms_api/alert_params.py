"""Checks of an alert rule's kind-specific params before the registry stores them.

TO BE REPLACED: the alerts service owns the params of each kind (pms_alerts.rules.validate_params,
a model per kind). The API may not import a service, so until that check moves to a library
(pms_registry or pms_common), this is a general one: keys in snake_case, plain JSON values, and
the ranges of the settings every kind shares. `validate_params(kind, params)` keeps the signature
of the service's, so the swap is one import.
"""

from __future__ import annotations

import re
from typing import Any

KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_KEYS = 20
# Known settings and their ranges (inclusive); a value out of range is refused with the range.
RANGES: dict[str, tuple[float, float]] = {
    "irradiance_w_m2": (0, 1500),
    "share": (0, 1),
    "days": (1, 60),
    "flap_max": (1, 1000),
}
BOOLEANS = ("daylight_only",)


def validate_params(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """`params` as they may be stored for a rule of `kind`; a ValueError's sentence names the key."""
    if len(params) > MAX_KEYS:
        raise ValueError(f"params: at most {MAX_KEYS} settings")
    for key, value in params.items():
        if not KEY.match(key):
            raise ValueError(f"params.{key}: setting names are snake_case letters and digits")
        if key in BOOLEANS and not isinstance(value, bool):
            raise ValueError(f"params.{key}: true or false")
        if key in RANGES:
            low, high = RANGES[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
                raise ValueError(f"params.{key}: a number from {low:g} to {high:g} (got {value!r})")
        elif not isinstance(value, bool | int | float | str) or (isinstance(value, str) and len(value) > 200):
            raise ValueError(f"params.{key}: a number, true/false or a short text")
    return dict(params)
