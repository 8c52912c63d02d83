"""Zero-config provisioning in the registry: the factory list, claims, broker logins, revocations.

The factory list keeps, per serial, the keys derived from the factory secret and a hash of the claim
code (pms_common.provisioning): neither the secret nor the code is stored or logged. The gateway id is
fixed at import (`gw-` + the sanitised serial). Device-manager records claims and the gateways' broker
logins here, and carries out the revocation requests that unbinding, replacing or decommissioning a
gateway leave here (the registry cannot reach the broker; device-manager can).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from pms_common.provisioning import (
    CLAIM_WINDOW,
    SERIAL_PATTERN,
    DerivedKeys,
    derive_keys,
    gateway_id_for_serial,
    hash_claim_code,
)
from pms_registry import schema as t
from pms_registry.core import RegistryCore
from pms_registry.errors import RegistryError

LoginState = str  # "active" | "revoke_requested" | "revoked"


@dataclass(frozen=True)
class FactoryRow:
    """One line of the manufacturer's list, as imported (the secret and code only pass through)."""

    serial: str
    factory_secret: str
    claim_code: str


@dataclass(frozen=True)
class FactoryGateway:
    serial: str
    gateway_id: str
    keys: DerivedKeys
    imported_at: datetime
    claimed_at: datetime | None
    last_claim_at: datetime | None
    claims_total: int
    blocked: bool
    blocked_reason: str | None


@dataclass(frozen=True)
class ImportResult:
    created: int
    unchanged: int
    replaced: int


@dataclass(frozen=True)
class RowError:
    row: int  # 1-based, as a person counts the rows of the list
    message: str


class FactoryImportError(RegistryError):
    """Some rows of a factory list are bad; nothing was imported. `errors` names each row and why."""

    def __init__(self, errors: Sequence[RowError]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(f"row {e.row}: {e.message}" for e in self.errors[:5]))


@dataclass(frozen=True)
class BrokerLoginRecord:
    gateway_id: str
    state: LoginState
    created_at: datetime
    rotated_at: datetime
    revoked_at: datetime | None
    reason: str | None


@dataclass(frozen=True)
class RevocationRequest:
    request_id: int
    gateway_id: str
    reason: str
    requested_at: datetime


_MIN_SECRET_CHARS = 16


class Provisioning(RegistryCore):
    # ---- the factory list ------------------------------------------------------------------------
    def import_factory_gateways(self, rows: Sequence[FactoryRow], at: datetime, *,
                                replace: bool = False) -> ImportResult:
        """Import the manufacturer's rows, all or none (FactoryImportError names every bad row).

        Importing a row again is idempotent; a row whose secret or claim code differs from the one
        imported is an error unless `replace` (a device re-flashed at the factory)."""
        errors: list[RowError] = []
        prepared: list[tuple[int, dict[str, Any]]] = []
        seen_ids: dict[str, int] = {}
        seen_codes: dict[str, int] = {}
        for number, row in enumerate(rows, start=1):
            message = _row_problem(row)
            if message is not None:
                errors.append(RowError(number, message))
                continue
            values = _factory_values(row)
            duplicate = None
            for key, seen, what in ((values["gateway_id"], seen_ids, "gateway id"),
                                    (values["claim_code_hash"], seen_codes, "claim code")):
                if key in seen and duplicate is None:
                    duplicate = f"serial {row.serial} has the same {what} as row {seen[key]}"
                seen.setdefault(key, number)
            if duplicate is not None:
                errors.append(RowError(number, duplicate))
            else:
                prepared.append((number, values))
        with self._tx() as conn:
            created = unchanged = replaced = 0
            for number, values in prepared:
                outcome = self._import_one(conn, number, values, at, replace=replace, errors=errors)
                created += outcome == "created"
                unchanged += outcome == "unchanged"
                replaced += outcome == "replaced"
            if errors:
                raise FactoryImportError(sorted(errors, key=lambda e: e.row))
        return ImportResult(created=created, unchanged=unchanged, replaced=replaced)

    @staticmethod
    def _import_one(conn: Connection, number: int, values: dict[str, Any], at: datetime, *, replace: bool,
                    errors: list[RowError]) -> str | None:
        fg = t.factory_gateways
        serial = values["serial"]
        existing = conn.execute(select(fg).where(fg.c.serial == serial)).mappings().first()
        others = conn.execute(select(fg.c.serial).where(
            fg.c.serial != serial,
            (fg.c.gateway_id == values["gateway_id"]) | (fg.c.claim_code_hash == values["claim_code_hash"]),
        )).scalars().first()
        if others is not None:
            errors.append(RowError(number, f"serial {serial} would share its gateway id or claim code with the "
                                           f"imported serial {others}"))
            return None
        if existing is None:
            conn.execute(insert(fg).values(**values, imported_at=at, claims_total=0, blocked=False))
            return "created"
        same = all(existing[k] == values[k] for k in ("proof_key", "answer_key", "claim_code_hash"))
        if same:
            return "unchanged"
        if not replace:
            errors.append(RowError(number, f"serial {serial} was imported with another factory secret or claim "
                                           "code; import with replace to change it"))
            return None
        conn.execute(update(fg).where(fg.c.serial == serial).values(**values, imported_at=at))
        return "replaced"

    def factory_gateway(self, serial: str) -> FactoryGateway | None:
        with self._tx() as conn:
            fg = t.factory_gateways
            row = conn.execute(select(fg).where(fg.c.serial == serial)).mappings().first()
        return None if row is None else _factory_gateway(row)

    def factory_gateway_of(self, gateway_id: str) -> FactoryGateway | None:
        fg = t.factory_gateways
        with self._tx() as conn:
            row = conn.execute(select(fg).where(fg.c.gateway_id == gateway_id)).mappings().first()
        return None if row is None else _factory_gateway(row)

    def gateway_for_claim_code(self, claim_code: str) -> str | None:
        """The gateway id whose label carries `claim_code`; None when no imported gateway has it."""
        fg = t.factory_gateways
        with self._tx() as conn:
            return conn.execute(select(fg.c.gateway_id)
                                .where(fg.c.claim_code_hash == hash_claim_code(claim_code))).scalar()

    def block_factory_gateway(self, serial: str, reason: str | None) -> bool:
        """Refuse (reason given) or allow again (None) the claims of a serial; False if it is unknown."""
        fg = t.factory_gateways
        with self._tx() as conn:
            result = conn.execute(update(fg).where(fg.c.serial == serial)
                                  .values(blocked=reason is not None, blocked_reason=reason))
        return bool(result.rowcount)

    # ---- claims ----------------------------------------------------------------------------------
    def claim_nonce_seen(self, serial: str, nonce: str, at: datetime) -> bool:
        """Record a claim's nonce; True when it had been seen already (a replay). Nonces older than the
        claim window are pruned: a claim that old is refused as stale before its nonce is asked about."""
        cn = t.claim_nonces
        try:
            with self._tx() as conn:
                conn.execute(delete(cn).where(cn.c.serial == serial, cn.c.seen_at < at - 2 * CLAIM_WINDOW))
                conn.execute(insert(cn).values(serial=serial, nonce=nonce, seen_at=at))
        except RegistryError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                return True
            raise
        return False

    def prune_claim_nonces(self, before: datetime) -> int:
        with self._tx() as conn:
            return int(conn.execute(delete(t.claim_nonces).where(t.claim_nonces.c.seen_at < before)).rowcount)

    def record_claim(self, serial: str, at: datetime) -> str:
        """An accepted claim: the gateway's login was made (or rotated) now. Registers the gateway (unbound,
        unless it was bound by its claim code before it was claimed); pending revocations of its former
        login are superseded (the new login replaced it). Returns the gateway id."""
        fg, bl, rr = t.factory_gateways, t.broker_logins, t.revocation_requests
        with self._tx() as conn:
            gateway_id = conn.execute(select(fg.c.gateway_id).where(fg.c.serial == serial)).scalar()
            if gateway_id is None:
                raise RegistryError(f"serial {serial} is not in the factory list")
            conn.execute(update(fg).where(fg.c.serial == serial).values(
                last_claim_at=at, claims_total=fg.c.claims_total + 1))
            conn.execute(update(fg).where(fg.c.serial == serial, fg.c.claimed_at.is_(None)).values(claimed_at=at))
            if conn.execute(select(bl.c.gateway_id).where(bl.c.gateway_id == gateway_id)).first() is None:
                conn.execute(insert(bl).values(gateway_id=gateway_id, state="active", created_at=at, rotated_at=at))
            else:
                conn.execute(update(bl).where(bl.c.gateway_id == gateway_id).values(
                    state="active", rotated_at=at, revoked_at=None, reason=None))
            conn.execute(update(rr).where(rr.c.gateway_id == gateway_id, rr.c.done_at.is_(None))
                         .values(done_at=at, outcome="superseded by a new claim"))
            if conn.execute(select(t.gateways.c.gateway_id).where(t.gateways.c.gateway_id == gateway_id)).first() \
                    is None:
                conn.execute(insert(t.gateways).values(gateway_id=gateway_id, status="unknown", power_interval_s=60.0))
        return str(gateway_id)

    # ---- broker logins and their revocation ------------------------------------------------------
    def broker_login(self, gateway_id: str) -> BrokerLoginRecord | None:
        with self._tx() as conn:
            row = conn.execute(select(t.broker_logins).where(t.broker_logins.c.gateway_id == gateway_id)) \
                .mappings().first()
        return None if row is None else BrokerLoginRecord(**row)

    def request_revocation(self, gateway_id: str, reason: str, at: datetime) -> int:
        """Ask device-manager to revoke the gateway's broker login at once; returns the request's id."""
        bl = t.broker_logins
        with self._tx() as conn:
            request_id = conn.execute(insert(t.revocation_requests).values(
                gateway_id=gateway_id, reason=reason, requested_at=at)).inserted_primary_key[0]  # type: ignore[index]
            conn.execute(update(bl).where(bl.c.gateway_id == gateway_id, bl.c.state == "active")
                         .values(state="revoke_requested", reason=reason))
        return int(request_id)

    def pending_revocations(self) -> list[RevocationRequest]:
        rr = t.revocation_requests
        with self._tx() as conn:
            rows = conn.execute(select(rr.c.request_id, rr.c.gateway_id, rr.c.reason, rr.c.requested_at)
                                .where(rr.c.done_at.is_(None)).order_by(rr.c.request_id)).mappings().all()
        return [RevocationRequest(**row) for row in rows]

    def mark_revoked(self, request_id: int, at: datetime) -> None:
        rr, bl = t.revocation_requests, t.broker_logins
        with self._tx() as conn:
            gateway_id = conn.execute(select(rr.c.gateway_id).where(rr.c.request_id == request_id)).scalar()
            if gateway_id is None:
                raise RegistryError(f"no revocation request {request_id}")
            conn.execute(update(rr).where(rr.c.request_id == request_id, rr.c.done_at.is_(None))
                         .values(done_at=at, outcome="revoked"))
            conn.execute(update(bl).where(bl.c.gateway_id == gateway_id).values(state="revoked", revoked_at=at))

    def note_revocation_failure(self, request_id: int, failure: str) -> None:
        """The request stays pending (it is tried again); its outcome says why it has not been done."""
        rr = t.revocation_requests
        with self._tx() as conn:
            conn.execute(update(rr).where(rr.c.request_id == request_id).values(outcome=failure[:500]))


def _row_problem(row: FactoryRow) -> str | None:
    if not re.fullmatch(SERIAL_PATTERN, row.serial or ""):
        return (f"serial {row.serial!r} must be 1 to 61 letters, digits and . _ - : / or spaces, starting with a "
                "letter or digit")
    if len(row.factory_secret or "") < _MIN_SECRET_CHARS:
        return f"the factory secret of serial {row.serial} is shorter than {_MIN_SECRET_CHARS} characters"
    if len((row.claim_code or "").strip()) < 6:
        return f"the claim code of serial {row.serial} is shorter than 6 characters"
    return None


def _factory_values(row: FactoryRow) -> dict[str, Any]:
    keys = derive_keys(row.serial, row.factory_secret)
    return {"serial": row.serial, "gateway_id": gateway_id_for_serial(row.serial), "proof_key": keys.proof_key.hex(),
            "answer_key": keys.answer_key.hex(), "claim_code_hash": hash_claim_code(row.claim_code)}


def _factory_gateway(row: Any) -> FactoryGateway:
    return FactoryGateway(
        serial=row["serial"], gateway_id=row["gateway_id"],
        keys=DerivedKeys.from_hex(row["proof_key"], row["answer_key"]),
        imported_at=row["imported_at"], claimed_at=row["claimed_at"], last_claim_at=row["last_claim_at"],
        claims_total=row["claims_total"], blocked=row["blocked"], blocked_reason=row["blocked_reason"],
    )
