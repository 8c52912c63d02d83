"""Gateway liveness from the retained status, the last will and heartbeats, as a sans-IO tracker.

A gateway is offline when its status says so (clean stop or last will), or when it has sent no
heartbeat for `missed_heartbeats` intervals while claiming to be online (a half-open link the
broker has not noticed yet). Device-manager and alerts both follow this one rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pms_common.contract_reader import ContractReader
from pms_common.messages import GatewayStatus, Heartbeat
from pms_common.topics import split_gateway_topic

State = Literal["online", "offline"]


@dataclass(frozen=True)
class Transition:
    gateway_id: str
    state: State
    at: datetime
    reason: str


@dataclass
class _Gateway:
    state: State | None = None
    last_seen: datetime | None = None
    heartbeat_interval_s: float = 30.0


class LivenessTracker:
    def __init__(self, *, missed_heartbeats: int = 3) -> None:
        self.missed_heartbeats = missed_heartbeats
        self._gateways: dict[str, _Gateway] = {}

    def state_of(self, gateway_id: str) -> State | None:
        gateway = self._gateways.get(gateway_id)
        return None if gateway is None else gateway.state

    def _move(self, gateway_id: str, gateway: _Gateway, state: State, at: datetime, reason: str) -> list[Transition]:
        if gateway.state == state:
            return []
        gateway.state = state
        return [Transition(gateway_id, state, at, reason)]

    def on_status(self, status: GatewayStatus, received_at: datetime) -> list[Transition]:
        gateway = self._gateways.setdefault(status.gateway_id, _Gateway())
        at = status.at or received_at
        if status.state == "online":
            gateway.last_seen = received_at
            return self._move(status.gateway_id, gateway, "online", at, "connected")
        return self._move(status.gateway_id, gateway, "offline", at, status.reason or "offline")

    def on_heartbeat(self, heartbeat: Heartbeat, received_at: datetime) -> list[Transition]:
        gateway = self._gateways.setdefault(heartbeat.gateway_id, _Gateway())
        gateway.last_seen = received_at
        gateway.heartbeat_interval_s = heartbeat.heartbeat_interval_s
        if gateway.state == "offline" and gateway.last_seen is not None:
            return self._move(heartbeat.gateway_id, gateway, "online", received_at, "heartbeat resumed")
        if gateway.state is None:
            return self._move(heartbeat.gateway_id, gateway, "online", received_at, "heartbeat")
        return []

    def on_tick(self, now: datetime) -> list[Transition]:
        transitions: list[Transition] = []
        for gateway_id, gateway in self._gateways.items():
            if gateway.state != "online" or gateway.last_seen is None:
                continue
            silence = timedelta(seconds=gateway.heartbeat_interval_s * self.missed_heartbeats)
            if now - gateway.last_seen > silence:
                transitions += self._move(gateway_id, gateway, "offline", now,
                                          f"no heartbeat for {int(silence.total_seconds())} s")
        return transitions


def parse_presence(topic: str, payload: bytes,
                   reader: ContractReader | None = None) -> GatewayStatus | Heartbeat | None:
    """A status or heartbeat message from its topic; None for other topics or an empty (cleared) retain.

    Unknown fields are dropped (and counted by `reader`, when given). Raises pydantic.ValidationError
    for a payload that breaks the contract.
    """
    parts = split_gateway_topic(topic)
    if parts is None or not payload:
        return None
    reader = reader or ContractReader("presence")
    if parts[1] == "status":
        return reader.parse(GatewayStatus, payload)
    if parts[1] == "heartbeat":
        return reader.parse(Heartbeat, payload)
    return None


def feed(tracker: LivenessTracker, message: GatewayStatus | Heartbeat, received_at: datetime) -> list[Transition]:
    if isinstance(message, GatewayStatus):
        return tracker.on_status(message, received_at)
    return tracker.on_heartbeat(message, received_at)
