"""What a B-route session is configured with and what it reports: its settings, states and events.

These are the public data types of `echonet.session` (import them from there); the state machine
that uses them lives in `session_dialogue` (the scripted dialogue with the module) and `session`
(the sans-IO driving surface).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from echonet.frame import Frame
from echonet.skstack_events import Family, PanDescriptor, PayloadMode


class SessionState(enum.StrEnum):
    IDLE = "idle"
    PROBING = "probing"
    SCANNING = "scanning"
    JOINING = "joining"
    READY = "ready"
    BACKOFF = "backoff"
    CLOSED = "closed"


class BackoffCause(enum.Enum):
    """Why the session left for BACKOFF, for code to act on (the reason text is for people)."""

    MODULE_SILENT = "module_silent"  # no answer to SKVER: maybe no SKSTACK module on this port
    AUTH_REFUSED = "auth_refused"  # PANA EVENT 24: wrong B-route ID or password, or a busy meter
    NO_METER = "no_meter"  # no scan heard the meter
    REQUESTS_FAILED = "requests_failed"  # the meter stopped answering requests
    COMMAND_FAILED = "command_failed"  # a command answered FAIL
    TIMEOUT = "timeout"  # a command, scan or join took too long
    BAD_MODULE_REPLY = "bad_module_reply"  # the module answered something unusable


@dataclass(frozen=True, kw_only=True)
class SessionConfig:
    rbid: str
    password: str
    family: Family | None = None  # None: detect from the module (EINFO), corrected by FAIL ER05
    pan: PanDescriptor | None = None  # a PAN cached from an earlier run: skips the scan
    scan_durations: tuple[int, ...] = (4, 5, 6, 7, 8)
    command_timeout_s: float = 5.0
    join_timeout_s: float = 60.0
    request_timeout_s: float = 20.0
    max_request_failures: int = 3
    max_join_failures: int = 2  # then the cached PAN is dropped and the meter scanned for again
    backoff_initial_s: float = 2.0
    backoff_max_s: float = 300.0
    jitter: float = 0.2


# ---- events the session reports ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StateChanged:
    state: SessionState
    reason: str = ""
    cause: BackoffCause | None = None  # set when state is BACKOFF


@dataclass(frozen=True, slots=True)
class ModuleDetected:
    family: Family
    payload_mode: PayloadMode
    version: str


@dataclass(frozen=True, slots=True)
class PanCached:
    """A PAN found by scanning: persist it and pass it back in SessionConfig.pan to skip the scan."""

    pan: PanDescriptor


@dataclass(frozen=True, slots=True)
class Response:
    tid: int
    frame: Frame
    rssi_dbm: int | None = None  # of the radio packet, where the module reports it (dual-stack, SA2 on)


@dataclass(frozen=True, slots=True)
class RequestFailed:
    tid: int
    reason: str


@dataclass(frozen=True, slots=True)
class Notification:
    """A frame the meter sent on its own (INF of EA/EB every 30 min, D5 instance list on join)."""

    frame: Frame
    rssi_dbm: int | None = None


SessionEvent = StateChanged | ModuleDetected | PanCached | Response | RequestFailed | Notification
