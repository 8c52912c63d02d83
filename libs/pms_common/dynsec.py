"""Broker identities on Mosquitto 2.0's dynamic-security plugin, administered over MQTT.

The plugin takes JSON command lists on `$CONTROL/dynamic-security/v1` and answers on
`$CONTROL/dynamic-security/v1/response`, one answer per command, matched here by `correlationData`.
Each gateway gets a client (username = gateway id) and a role of its own, `gw-role-{id}`, that grants
exactly `pms/v1/gw/{id}/#` and ends in a deny of everything else (see `confined_acls`).

What Mosquitto 2.0.11 (Debian 12) does, checked against a real broker in tests/common/test_dynsec.py:

- `setClientPassword`, `disableClient` and `deleteClient` disconnect a connected client of that
  login (measured ~1 s later, on the broker's next loop turn); the old password fails at once.
- Role ACL topics are matched literally: `%c` and `%u` are not substituted (that comes with 2.1,
  eclipse-mosquitto/mosquitto#2222, #3191), so a dynsec role cannot confine a shared login to its own
  client id's tree. The provisioning login therefore lives in the broker's password file, where the
  `acl_file` line `pattern readwrite pms/v1/provision/%c/#` does exactly that: the plugin defers a
  login it does not know to the password file and `acl_file` (deploy/mosquitto/mosquitto-dynsec.conf).
- A dynsec login whose roles match nothing is also deferred to `acl_file` (the plugin's "deny by
  default" is a defer), so every role made here ends in explicit denies: a gateway that calls itself
  `claim-…` gets nothing of the provisioning tree.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import aiomqtt

from pms_common import topics
from pms_common.broker_admin import PROVISION_ROOT, BrokerAdminError, BrokerLogin, count_request
from pms_common.mqtt import BrokerAddress

log = logging.getLogger(__name__)

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"
GATEWAY_ROLE_PREFIX = "gw-role-"
GATEWAY_LOGIN_PREFIX = "gw-"
_GATEWAY_ID = re.compile(topics.GATEWAY_ID_PATTERN)
# Allows are checked before the closing denies (higher priority first).
_ALLOW_PRIORITY = 10
_DENY_PRIORITY = 0

Acl = dict[str, Any]


def confined_acls(*, send: Sequence[str] = (), receive: Sequence[str] = ()) -> list[Acl]:
    """Dynsec ACLs granting publish on `send` and subscribe + delivery on `receive`, then denying the rest.

    The closing denies keep the decision inside the plugin: without them a topic no allow matches is
    deferred to the broker's `acl_file`, whose provisioning pattern applies to every login.
    """
    acls: list[Acl] = [{"acltype": "publishClientSend", "topic": t, "allow": True, "priority": _ALLOW_PRIORITY}
                       for t in send]
    for topic in receive:
        acls.append({"acltype": "subscribePattern", "topic": topic, "allow": True, "priority": _ALLOW_PRIORITY})
        acls.append({"acltype": "publishClientReceive", "topic": topic, "allow": True, "priority": _ALLOW_PRIORITY})
    for acltype in ("publishClientSend", "subscribePattern", "publishClientReceive"):
        acls.append({"acltype": acltype, "topic": "#", "allow": False, "priority": _DENY_PRIORITY})
    return acls


def gateway_role(gateway_id: str) -> str:
    return f"{GATEWAY_ROLE_PREFIX}{gateway_id}"


def gateway_acls(gateway_id: str) -> list[Acl]:
    tree = f"{topics.ROOT}/gw/{gateway_id}/#"
    return confined_acls(send=[tree], receive=[tree])


# The service logins and their rights, as deploy/mosquitto/acl gives them to the password-file broker.
# deploy/mosquitto/dynsec-init.sh makes the same roles with mosquitto_ctrl; tests/deploy checks both agree.
SERVICE_ROLES: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # service: (topics it may publish, topic filters it may subscribe to and receive)
    "ingest": (("pms/v1/gw/+/ack", "pms/v1/deadletter/ingest"),
               ("pms/v1/gw/+/readings", "pms/v1/plants/+/weather", "pms/v1/plants/+/expected")),
    "alerts": (("pms/v1/events/+", "pms/v1/deadletter/alerts"),
               ("pms/v1/gw/+/status", "pms/v1/gw/+/heartbeat")),
    "weather": (("pms/v1/plants/+/weather", "pms/v1/plants/+/expected"), ()),
    # status: the offline status of a gateway whose identity it revoked (the broker drops the client
    # without publishing its will, which the deleted login may no longer publish).
    "device-manager": (("pms/v1/gw/+/config/desired", "pms/v1/gw/+/cmd/req", "pms/v1/gw/+/status",
                        "pms/v1/gw/+/update/job", "pms/v1/deadletter/device-manager", f"{PROVISION_ROOT}/+/answer"),
                       ("pms/v1/gw/+/status", "pms/v1/gw/+/heartbeat", "pms/v1/gw/+/config/#", "pms/v1/gw/+/cmd/#",
                        "pms/v1/gw/+/update/state", f"{PROVISION_ROOT}/+/claim")),
    "api": (("pms/v1/gw/+/cmd/req", "pms/v1/gw/+/config/desired"), ("pms/v1/#",)),
    "healthcheck": ((), ("$SYS/broker/uptime",)),
    # `docker compose --profile demo` only: one connection speaks for many simulated gateways.
    "sim": (("pms/v1/gw/#",), ("pms/v1/gw/#",)),
}


def service_role(service: str) -> str:
    return f"service-{service}"


class DynsecBrokerAdmin:
    """`BrokerAdmin` over Mosquitto's dynamic-security plugin; `admin` is a login with the plugin's
    admin role (the one `mosquitto_ctrl dynsec init` makes). Each request is one short connection, so
    a broker restart between requests costs nothing."""

    def __init__(self, admin: BrokerAddress, *, timeout_s: float = 5.0) -> None:
        if not admin.username:
            raise BrokerAdminError("the dynamic-security admin address needs a username and password "
                                   "(mqtt://admin:PASSWORD@host:1883)")
        self.admin = admin
        self.timeout_s = timeout_s

    # ------------------------------------------------------------------ BrokerAdmin

    async def ensure_provisioning_login(self, login: BrokerLogin) -> None:
        answer = (await self.request({"command": "getClient", "username": login.username}, tolerate=("not found",)))[0]
        if "error" not in answer:
            raise BrokerAdminError(
                f"the provisioning login {login.username!r} is a dynamic-security client, which Mosquitto 2.0 "
                "cannot confine to its own client id; delete it there and keep it in the password file "
                "(deploy/mosquitto/dynsec-init.sh)")
        try:
            async with self._client(BrokerAddress(host=self.admin.host, port=self.admin.port, tls=self.admin.tls,
                                                  username=login.username, password=login.password)):
                pass
        except aiomqtt.MqttError as exc:
            count_request("ensure_provisioning_login", "refused")
            raise BrokerAdminError(
                f"the broker at {self._where()} refuses the provisioning login {login.username!r} ({exc}); "
                "it belongs in the broker's password file (deploy/mosquitto/dynsec-init.sh)") from exc
        count_request("ensure_provisioning_login", "ok")

    async def create_gateway_login(self, gateway_id: str) -> BrokerLogin:
        self._check_gateway_id(gateway_id)
        login = BrokerLogin(username=gateway_id, password=secrets.token_urlsafe(24))
        role = gateway_role(gateway_id)
        await self.ensure_role(role, gateway_acls(gateway_id))
        created = (await self.request(
            {"command": "createClient", "username": login.username, "password": login.password,
             "textname": f"gateway {gateway_id}", "roles": [{"rolename": role}]},
            tolerate=("already exists",)))[0]
        if "error" in created:
            # Re-provisioning: the new password kicks the connected client and the old one stops working.
            await self._reset_existing_client(login, role)
        return login

    async def revoke_gateway_login(self, gateway_id: str) -> None:
        self._check_gateway_id(gateway_id)
        # deleteClient disconnects the client's connection; the role goes with it.
        await self.request({"command": "deleteClient", "username": gateway_id},
                           {"command": "deleteRole", "rolename": gateway_role(gateway_id)},
                           tolerate=("not found",))

    async def gateway_logins(self) -> set[str]:
        answer = (await self.request({"command": "listClients", "verbose": False, "count": -1}))[0]
        usernames = answer.get("data", {}).get("clients", [])
        return {name for name in usernames
                if isinstance(name, str) and name.startswith(GATEWAY_LOGIN_PREFIX) and _GATEWAY_ID.fullmatch(name)}

    # ------------------------------------------------------------------ beyond the interface

    async def ensure_role(self, rolename: str, acls: list[Acl]) -> None:
        """Create the role, or give an existing one exactly these ACLs (idempotent)."""
        created = (await self.request({"command": "createRole", "rolename": rolename, "acls": acls},
                                      tolerate=("already exists",)))[0]
        if "error" not in created:
            return
        current = (await self.request({"command": "getRole", "rolename": rolename}))[0]
        old = current.get("data", {}).get("role", {}).get("acls", [])
        removals = [{"command": "removeRoleACL", "rolename": rolename, "acltype": a["acltype"], "topic": a["topic"]}
                    for a in old]
        additions = [{"command": "addRoleACL", "rolename": rolename, **acl} for acl in acls]
        await self.request(*removals, *additions, tolerate=("not found",))

    async def ensure_service_login(self, service: str, password: str) -> None:
        """The service's login with the rights SERVICE_ROLES gives it (password set again if it exists)."""
        send, receive = SERVICE_ROLES[service]
        role = service_role(service)
        await self.ensure_role(role, confined_acls(send=send, receive=receive))
        created = (await self.request(
            {"command": "createClient", "username": service, "password": password, "roles": [{"rolename": role}]},
            tolerate=("already exists",)))[0]
        if "error" in created:
            await self._reset_existing_client(BrokerLogin(username=service, password=password), role)

    async def _reset_existing_client(self, login: BrokerLogin, role: str) -> None:
        """A new password (which disconnects the client), the role if it lost it, enabled again."""
        commands: list[dict[str, Any]] = [
            {"command": "setClientPassword", "username": login.username, "password": login.password},
            {"command": "enableClient", "username": login.username},
        ]
        current = (await self.request({"command": "getClient", "username": login.username}))[0]
        roles = current.get("data", {}).get("client", {}).get("roles", [])
        if role not in {r.get("rolename") for r in roles if isinstance(r, dict)}:
            # The plugin answers "Internal error" to adding a role the client already has.
            commands.append({"command": "addClientRole", "username": login.username, "rolename": role})
        await self.request(*commands)

    async def request(self, *commands: dict[str, Any], tolerate: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Send the commands in one message and return the plugin's answers in the same order.

        An answer whose error contains one of `tolerate` (e.g. "not found" for a delete) is returned as
        is; any other error raises BrokerAdminError naming the command and the broker's text.
        """
        if not commands:
            return []
        batch = uuid.uuid4().hex
        tagged = [{**command, "correlationData": f"{batch}-{index}"} for index, command in enumerate(commands)]
        names = ", ".join(str(c["command"]) for c in commands)
        answers: dict[str, dict[str, Any]] = {}
        try:
            async with asyncio.timeout(self.timeout_s), self._client(self.admin) as client:
                await client.subscribe(RESPONSE_TOPIC, qos=1)
                await client.publish(CONTROL_TOPIC, json.dumps({"commands": tagged}), qos=1)
                async for message in client.messages:
                    for answer in _answers(message.payload):
                        tag = answer.get("correlationData")
                        if isinstance(tag, str) and tag.startswith(batch):
                            answers[tag] = answer
                    if len(answers) == len(tagged):
                        break
        except TimeoutError as exc:
            for command in commands:
                count_request(str(command["command"]), "timeout")
            raise BrokerAdminError(
                f"the broker at {self._where()} did not answer the dynamic-security command(s) {names} within "
                f"{self.timeout_s:g} s (is the dynamic-security plugin loaded, and is {self.admin.username!r} "
                "its admin?)") from exc
        except aiomqtt.MqttError as exc:
            for command in commands:
                count_request(str(command["command"]), "unreachable")
            raise BrokerAdminError(
                f"the dynamic-security command(s) {names} could not be sent to the broker at {self._where()}: {exc}"
            ) from exc
        ordered = [answers[tag["correlationData"]] for tag in tagged]
        failures = []
        for command, answer in zip(commands, ordered, strict=True):
            error = answer.get("error")
            if error is None:
                count_request(str(command["command"]), "ok")
            elif any(text in str(error).lower() for text in tolerate):
                count_request(str(command["command"]), "tolerated")
            else:
                count_request(str(command["command"]), "refused")
                failures.append(f"{command['command']} ({_subject(command)}): {error}")
        if failures:
            raise BrokerAdminError(f"the broker at {self._where()} refused {'; '.join(failures)}")
        return ordered

    # ------------------------------------------------------------------ helpers

    def _client(self, address: BrokerAddress) -> aiomqtt.Client:
        return address.client(identifier=f"pms-dynsec-{uuid.uuid4().hex[:12]}", clean_session=True)

    def _where(self) -> str:
        return f"{self.admin.host}:{self.admin.port}"

    @staticmethod
    def _check_gateway_id(gateway_id: str) -> None:
        if not gateway_id.startswith(GATEWAY_LOGIN_PREFIX) or not _GATEWAY_ID.fullmatch(gateway_id):
            raise BrokerAdminError(f"{gateway_id!r} is not a gateway id (gw- followed by letters, digits, '.', '_' "
                                   "or '-', at most 64 characters)")


def _answers(payload: Any) -> list[dict[str, Any]]:
    try:
        body = json.loads(payload)
    except (TypeError, ValueError):
        return []
    responses = body.get("responses") if isinstance(body, dict) else None
    return [r for r in responses if isinstance(r, dict)] if isinstance(responses, list) else []


def _subject(command: Mapping[str, Any]) -> str:
    for key in ("username", "rolename", "groupname"):
        if key in command:
            return f"{key}={command[key]!r}"
    return "no subject"
