"""Broker administration: the logins and topic rights of gateways, made and revoked at run time.

Provisioning (device-manager's claim handler) gives each claimed gateway its own broker login, which
may touch only `pms/v1/gw/{gateway_id}/#`, and revokes it when the gateway is unbound, replaced or
re-provisioned. Which broker does it is behind this one small interface:

- Mosquitto 2.0's dynamic-security plugin, administered over `$CONTROL/dynamic-security/v1`
  (production and tests): `pms_common.dynsec.DynsecBrokerAdmin`;
- the embedded broker of `pms up` (amqtt): `pms.embedded_broker.EmbeddedBrokerAdmin`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from prometheus_client import Counter

from pms_common.errors import PmsError

PROVISION_ROOT = "pms/v1/provision"

ADMIN_REQUESTS = Counter(
    "pms_broker_admin_requests",
    "Broker administration requests by command and outcome (ok, tolerated: an idempotent repeat, refused, "
    "timeout, unreachable)",
    ["command", "outcome"],
)


def count_request(command: str, outcome: str) -> None:
    ADMIN_REQUESTS.labels(command=command, outcome=outcome).inc()


class BrokerAdminError(PmsError):
    """The broker refused or did not answer an administration request; the message says which and why."""


@dataclass(frozen=True, kw_only=True)
class BrokerLogin:
    """A broker login as handed to a gateway (its credentials file keeps the same three fields)."""

    username: str
    password: str


class BrokerAdmin(Protocol):
    async def ensure_provisioning_login(self, login: BrokerLogin) -> None:
        """Make sure the shared provisioning login exists; it may publish and subscribe only under
        `pms/v1/provision/{its own client id}/#` (idempotent)."""

    async def create_gateway_login(self, gateway_id: str) -> BrokerLogin:
        """A new login that may publish and subscribe only under `pms/v1/gw/{gateway_id}/#`. An earlier
        login of the same gateway is replaced: its client is disconnected and its password stops working
        (credentials rotate on re-provisioning)."""

    async def revoke_gateway_login(self, gateway_id: str) -> None:
        """Delete the gateway's login and disconnect its client at once (idempotent)."""

    async def gateway_logins(self) -> set[str]:
        """The gateway ids that have a login now (for reconciliation with the registry)."""
