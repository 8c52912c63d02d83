"""Gateway presence history: every online/offline transition with its reason, newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from pms_registry import schema as t
from pms_registry.core import RegistryCore
from pms_registry.records import PresenceChange

DEFAULT_POWER_INTERVAL_S = 60.0


class Presence(RegistryCore):
    def record_presence(self, gateway_id: str, state: str, at: datetime, reason: str) -> None:
        """Record a transition (device-manager's liveness rule decided it): the gateway's status and
        one history row, in one transaction. An unknown gateway is registered unbound."""
        with self._tx() as conn:
            record_status(conn, gateway_id, state, at)
            conn.execute(insert(t.gateway_presence).values(gateway_id=gateway_id, state=state, at=at,
                                                           reason=reason[:200]))

    def presence_history(self, gateway_id: str, *, limit: int = 20) -> list[PresenceChange]:
        """The gateway's latest transitions, newest first."""
        p = t.gateway_presence.c
        with self._tx() as conn:
            rows = conn.execute(select(p.gateway_id, p.state, p.at, p.reason).where(p.gateway_id == gateway_id)
                                .order_by(p.at.desc(), p.presence_id.desc()).limit(limit)).all()
        return [PresenceChange(gateway_id=row[0], state=row[1], at=row[2], reason=row[3]) for row in rows]


def record_status(conn: Connection, gateway_id: str, status: str, at: datetime) -> None:
    """Set a gateway's status (and last sighting when it comes online), registering it if unknown."""
    row = conn.execute(select(t.gateways.c.status).where(t.gateways.c.gateway_id == gateway_id)).first()
    if row is None:
        conn.execute(insert(t.gateways).values(gateway_id=gateway_id, status=status, status_changed_at=at,
                                               last_seen_at=at, power_interval_s=DEFAULT_POWER_INTERVAL_S))
    elif row[0] != status:
        values: dict[str, Any] = {"status": status, "status_changed_at": at}
        if status == "online":
            values["last_seen_at"] = at
        conn.execute(update(t.gateways).where(t.gateways.c.gateway_id == gateway_id).values(**values))
