"""Gateway control in the registry: desired and reported configurations, tags and groups, commands
with deadlines, and the audit log of who asked for what.

Nothing of this lives in a service's memory: the API writes desired documents and queued commands
here, device-manager reads them, publishes, and writes back what the gateways answered, so either
may restart at any moment and carry on from the registry.

A command moves `queued` → `sent` → `succeeded` | `failed` | `expired`, each step a compare-and-set
on the state it leaves, so an answer that races the deadline (or a second device-manager) changes
a command once.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, or_, select, update

from pms_registry import schema as t
from pms_registry.core import RegistryCore
from pms_registry.errors import RegistryError

COMMAND_STATES = ("queued", "sent", "succeeded", "failed", "expired")
OPEN_STATES = ("queued", "sent")
OFFLINE_REASON = "gateway offline until the deadline"
NO_ANSWER_REASON = "no answer before the deadline"
TAG = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
CUSTOMER_GROUP = "customer:"
# An audit entry's outcome while what it records is under way.
PENDING = "pending"


@dataclass(frozen=True)
class DesiredConfig:
    gateway_id: str
    version: int
    document: dict[str, Any]
    updated_at: datetime
    updated_by: str
    published_version: int | None


@dataclass(frozen=True)
class ReportedConfig:
    gateway_id: str
    version: int
    document: dict[str, Any]
    reported_at: datetime


@dataclass(frozen=True)
class ConfigState:
    """One gateway's desired and reported configuration; drift = the versions differ, or no report yet."""

    gateway_id: str
    desired: DesiredConfig | None
    reported: ReportedConfig | None

    @property
    def drift(self) -> bool:
        if self.desired is None:
            return False  # nothing asked of it
        return self.reported is None or self.reported.version != self.desired.version


@dataclass(frozen=True)
class CommandRecord:
    command_id: str
    gateway_id: str
    command: str
    args: dict[str, Any]
    state: str
    requested_by: str
    created_at: datetime
    deadline: datetime
    sent_at: datetime | None
    finished_at: datetime | None
    result: dict[str, Any] | None
    reason: str | None


@dataclass(frozen=True)
class AuditEntry:
    audit_id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any]
    outcome: str


def check_tag(tag: str) -> str:
    if not TAG.match(tag):
        raise RegistryError(f"a tag is 1-64 lower-case letters, digits or . _ - (starting with a letter or digit), "
                            f"not {tag!r}")
    return tag


class GatewayControl(RegistryCore):
    # ---- desired configuration -------------------------------------------------------------------
    def set_desired_config(self, gateway_ids: Iterable[str], changes: Mapping[str, Any], *, defaults: Mapping[str, Any],
                           at: datetime, by: str, audit_id: int | None = None) -> dict[str, DesiredConfig]:
        """Give each gateway a new desired version, in one transaction: its current desired document
        (or, before any, its reported one, else `defaults`) with `changes` over it.

        The new version is past both the desired and the reported one: a gateway that runs a version
        the registry never issued (a registry restored from a backup) still takes the new one."""
        ids = sorted(set(gateway_ids))
        out: dict[str, DesiredConfig] = {}
        with self._tx() as conn:
            desired = _by_gateway(conn, t.gateway_config_desired, ids)
            reported = _by_gateway(conn, t.gateway_config_reported, ids)
            for gateway_id in ids:
                before, seen = desired.get(gateway_id), reported.get(gateway_id)
                base = dict(defaults)
                if seen is not None:
                    base.update({k: v for k, v in seen["document"].items() if k in defaults and v is not None})
                if before is not None:
                    base.update(before["document"])
                document = {**base, **changes}
                version = max(before["version"] if before else 0, seen["version"] if seen else 0) + 1
                values = {"version": version, "document": document, "updated_at": at, "updated_by": by,
                          "audit_id": audit_id}
                if before is None:
                    conn.execute(insert(t.gateway_config_desired).values(gateway_id=gateway_id, **values))
                else:
                    conn.execute(update(t.gateway_config_desired)
                                 .where(t.gateway_config_desired.c.gateway_id == gateway_id).values(**values))
                out[gateway_id] = DesiredConfig(gateway_id=gateway_id, version=version, document=document,
                                                updated_at=at, updated_by=by,
                                                published_version=before["published_version"] if before else None)
        return out

    def config_states(self, gateway_ids: Iterable[str]) -> list[ConfigState]:
        ids = sorted(set(gateway_ids))
        with self._tx() as conn:
            desired = _by_gateway(conn, t.gateway_config_desired, ids)
            reported = _by_gateway(conn, t.gateway_config_reported, ids)
        return [ConfigState(gateway_id=g, desired=_desired(desired[g]) if g in desired else None,
                            reported=_reported(reported[g]) if g in reported else None) for g in ids]

    def config_state(self, gateway_id: str) -> ConfigState:
        return self.config_states([gateway_id])[0]

    def unpublished_desired_configs(self, limit: int = 500) -> list[DesiredConfig]:
        """Desired documents whose version device-manager has not published yet."""
        c = t.gateway_config_desired.c
        query = (select(t.gateway_config_desired)
                 .where(or_(c.published_version.is_(None), c.published_version != c.version))
                 .order_by(c.updated_at, c.gateway_id).limit(limit))
        with self._tx() as conn:
            return [_desired(row) for row in conn.execute(query).mappings()]

    def mark_desired_published(self, published: Iterable[tuple[str, int]]) -> None:
        """Note the (gateway, version) pairs published, in one transaction (a group push is hundreds)."""
        c = t.gateway_config_desired.c
        with self._tx() as conn:
            for gateway_id, version in published:
                conn.execute(update(t.gateway_config_desired).where(c.gateway_id == gateway_id, c.version == version)
                             .values(published_version=version))

    def record_reported_config(self, gateway_id: str, version: int, document: Mapping[str, Any],
                               at: datetime) -> ConfigState:
        """Keep the whole configuration a gateway reported; a push it now runs gets its audit outcome."""
        with self._tx() as conn:
            values = {"version": version, "document": dict(document), "reported_at": at}
            found = conn.execute(update(t.gateway_config_reported)
                                 .where(t.gateway_config_reported.c.gateway_id == gateway_id).values(**values))
            if not found.rowcount:
                conn.execute(insert(t.gateway_config_reported).values(gateway_id=gateway_id, **values))
            desired = conn.execute(select(t.gateway_config_desired)
                                   .where(t.gateway_config_desired.c.gateway_id == gateway_id)).mappings().first()
            if desired is not None and desired["audit_id"] is not None and version >= desired["version"]:
                conn.execute(update(t.audit_log).where(t.audit_log.c.audit_id == desired["audit_id"],
                                                       t.audit_log.c.outcome == PENDING)
                             .values(outcome=f"applied: version {version} reported at {at.isoformat()}"))
            if desired is not None and version == desired["version"] and desired["published_version"] != version:
                # The gateway runs the desired version, so it was published: the report can overtake
                # device-manager's own note of the publish (mark_desired_published), and until then
                # the API would say "applied" and "not published" at once.
                conn.execute(update(t.gateway_config_desired)
                             .where(t.gateway_config_desired.c.gateway_id == gateway_id,
                                    t.gateway_config_desired.c.version == version)
                             .values(published_version=version))
        return self.config_state(gateway_id)

    # ---- tags and groups -------------------------------------------------------------------------
    def set_gateway_tags(self, gateway_id: str, tags: Iterable[str]) -> list[str]:
        wanted = sorted({check_tag(tag) for tag in tags})
        with self._tx() as conn:
            conn.execute(delete(t.gateway_tags).where(t.gateway_tags.c.gateway_id == gateway_id))
            for tag in wanted:
                conn.execute(insert(t.gateway_tags).values(gateway_id=gateway_id, tag=tag))
        return wanted

    def gateway_tags(self, gateway_id: str) -> list[str]:
        with self._tx() as conn:
            return list(conn.execute(select(t.gateway_tags.c.tag).where(t.gateway_tags.c.gateway_id == gateway_id)
                                     .order_by(t.gateway_tags.c.tag)).scalars())

    def group_members(self, group: str) -> list[str]:
        """The gateways of a group: `customer:{customer_id}` (those bound to its plants) or a tag."""
        if group.startswith(CUSTOMER_GROUP):
            owned = select(t.plants.c.service_code).where(t.plants.c.customer_id == group[len(CUSTOMER_GROUP):])
            query = select(t.gateways.c.gateway_id).where(t.gateways.c.service_code.in_(owned))
        else:
            query = select(t.gateway_tags.c.gateway_id).where(t.gateway_tags.c.tag == check_tag(group))
        with self._tx() as conn:
            return sorted(conn.execute(query).scalars())

    # ---- commands --------------------------------------------------------------------------------
    def create_command(self, *, gateway_id: str, command: str, args: Mapping[str, Any], requested_by: str,
                       at: datetime, deadline: datetime, audit_id: int | None = None) -> CommandRecord:
        if deadline <= at:
            raise RegistryError("a command's deadline must come after its creation")
        command_id = str(uuid.uuid4())
        with self._tx() as conn:
            conn.execute(insert(t.gateway_commands).values(
                command_id=command_id, gateway_id=gateway_id, command=command, args=dict(args), state="queued",
                requested_by=requested_by, created_at=at, deadline=deadline, audit_id=audit_id))
        found = self.get_command(command_id)
        assert found is not None
        return found

    def get_command(self, command_id: str, gateway_id: str | None = None) -> CommandRecord | None:
        query = select(t.gateway_commands).where(t.gateway_commands.c.command_id == command_id)
        if gateway_id is not None:
            query = query.where(t.gateway_commands.c.gateway_id == gateway_id)
        with self._tx() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else _command(row)

    def list_commands(self, gateway_id: str, *, limit: int = 50, offset: int = 0) -> tuple[list[CommandRecord], int]:
        """A gateway's commands, newest first, with their total."""
        c = t.gateway_commands.c
        with self._tx() as conn:
            rows = conn.execute(select(t.gateway_commands).where(c.gateway_id == gateway_id)
                                .order_by(c.created_at.desc(), c.command_id).limit(limit).offset(offset)).mappings()
            items = [_command(row) for row in rows]
            total = conn.execute(select(func.count()).select_from(t.gateway_commands)
                                 .where(c.gateway_id == gateway_id)).scalar_one()
        return items, int(total)

    def commands_to_send(self, now: datetime, limit: int = 200) -> list[CommandRecord]:
        """Queued commands, still within their deadline, of gateways the registry has online, oldest first."""
        c = t.gateway_commands.c
        online = select(t.gateways.c.gateway_id).where(t.gateways.c.status == "online")
        query = (select(t.gateway_commands).where(c.state == "queued", c.deadline > now, c.gateway_id.in_(online))
                 .order_by(c.created_at, c.command_id).limit(limit))
        with self._tx() as conn:
            return [_command(row) for row in conn.execute(query).mappings()]

    def mark_command_sent(self, command_id: str, at: datetime) -> bool:
        """queued → sent; False when it had left `queued` already (answered, expired)."""
        c = t.gateway_commands.c
        with self._tx() as conn:
            done = conn.execute(update(t.gateway_commands).where(c.command_id == command_id, c.state == "queued")
                                .values(state="sent", sent_at=at))
        return bool(done.rowcount)

    def finish_command(self, command_id: str, *, ok: bool, at: datetime, result: Mapping[str, Any] | None = None,
                       reason: str | None = None) -> CommandRecord | None:
        """The gateway's answer: succeeded or failed. None when the command is unknown or already over
        (an answer after it expired changes nothing)."""
        state = "succeeded" if ok else "failed"
        outcome = state if ok else f"failed: {reason}"
        return self._close_command(command_id, OPEN_STATES, state=state, at=at,
                                   result=dict(result) if result is not None else None, reason=reason,
                                   outcome=outcome)

    def expire_commands(self, now: datetime, *, sent_grace: timedelta = timedelta(0)) -> list[CommandRecord]:
        """Close every open command past its deadline: a queued one never reached its gateway; a sent
        one got no answer (`sent_grace` after the deadline leaves room for the gateway's own answer
        that it ran out of time, which says more)."""
        c = t.gateway_commands.c
        with self._tx() as conn:
            due = conn.execute(select(c.command_id, c.state).where(or_(
                and_(c.state == "queued", c.deadline <= now),
                and_(c.state == "sent", c.deadline <= now - sent_grace)))).all()
        expired = []
        for command_id, state in due:
            reason = OFFLINE_REASON if state == "queued" else NO_ANSWER_REASON
            closed = self._close_command(command_id, (state,), state="expired", at=now, result=None, reason=reason,
                                         outcome=f"expired: {reason}")
            if closed is not None:
                expired.append(closed)
        return expired

    def _close_command(self, command_id: str, from_states: tuple[str, ...], *, state: str, at: datetime,
                       result: dict[str, Any] | None, reason: str | None, outcome: str) -> CommandRecord | None:
        c = t.gateway_commands.c
        with self._tx() as conn:
            done = conn.execute(update(t.gateway_commands)
                                .where(c.command_id == command_id, c.state.in_(from_states))
                                .values(state=state, finished_at=at, result=result, reason=reason))
            if not done.rowcount:
                return None
            row = conn.execute(select(t.gateway_commands).where(c.command_id == command_id)).mappings().one()
            if row["audit_id"] is not None:
                conn.execute(update(t.audit_log).where(t.audit_log.c.audit_id == row["audit_id"])
                             .values(outcome=outcome[:400]))
        return _command(row)

    # ---- audit log -------------------------------------------------------------------------------
    def record_audit(self, *, at: datetime, actor: str, action: str, target: str, detail: Mapping[str, Any],
                     outcome: str = PENDING) -> int:
        with self._tx() as conn:
            audit_id = conn.execute(insert(t.audit_log).values(
                at=at, actor=actor, action=action, target=target, detail=dict(detail), outcome=outcome[:400],
            )).inserted_primary_key[0]  # type: ignore[index]
        return int(audit_id)

    def set_audit_outcome(self, audit_id: int, outcome: str) -> None:
        with self._tx() as conn:
            conn.execute(update(t.audit_log).where(t.audit_log.c.audit_id == audit_id).values(outcome=outcome[:400]))

    def list_audit(self, *, target: str | None = None, action: str | None = None, limit: int = 100,
                   offset: int = 0) -> tuple[list[AuditEntry], int]:
        """Audit entries, newest first, with their total."""
        a = t.audit_log.c
        conditions = []
        if target is not None:
            conditions.append(a.target == target)
        if action is not None:
            conditions.append(a.action == action)
        with self._tx() as conn:
            rows = conn.execute(select(t.audit_log).where(*conditions).order_by(a.at.desc(), a.audit_id.desc())
                                .limit(limit).offset(offset)).mappings()
            items = [AuditEntry(audit_id=r["audit_id"], at=r["at"], actor=r["actor"], action=r["action"],
                                target=r["target"], detail=r["detail"], outcome=r["outcome"]) for r in rows]
            total = conn.execute(select(func.count()).select_from(t.audit_log).where(*conditions)).scalar_one()
        return items, int(total)


def _by_gateway(conn: Connection, table: Any, gateway_ids: list[str]) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    # In chunks: a group of thousands stays under every engine's limit of bound parameters.
    for start in range(0, len(gateway_ids), 500):
        chunk = gateway_ids[start:start + 500]
        for row in conn.execute(select(table).where(table.c.gateway_id.in_(chunk))).mappings():
            rows[row["gateway_id"]] = row
    return rows


def _desired(row: Any) -> DesiredConfig:
    return DesiredConfig(gateway_id=row["gateway_id"], version=row["version"], document=dict(row["document"]),
                         updated_at=row["updated_at"], updated_by=row["updated_by"],
                         published_version=row["published_version"])


def _reported(row: Any) -> ReportedConfig:
    return ReportedConfig(gateway_id=row["gateway_id"], version=row["version"], document=dict(row["document"]),
                          reported_at=row["reported_at"])


def _command(row: Any) -> CommandRecord:
    return CommandRecord(
        command_id=row["command_id"], gateway_id=row["gateway_id"], command=row["command"], args=dict(row["args"]),
        state=row["state"], requested_by=row["requested_by"], created_at=row["created_at"], deadline=row["deadline"],
        sent_at=row["sent_at"], finished_at=row["finished_at"], result=row["result"], reason=row["reason"],
    )
