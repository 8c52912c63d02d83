"""The embedded MQTT broker of `pms up` (amqtt, MQTT 3.1.1): only for a one-machine start.

Production uses Mosquitto (deploy/mosquitto); amqtt has no $share groups and keeps nothing on disk.

With an `EmbeddedBrokerAdmin`, the broker checks logins and topics against the admin's in-memory table
(amqtt auth + topic-checking plugins): gateway logins may use only `pms/v1/gw/{id}/#`, provisioning
logins only `pms/v1/provision/{their client id}/#`, service logins everything; revoking or rotating a
gateway login closes its connection at once. The table lives as long as the process: a restarted
`pms up` starts with no gateway logins (its gateways claim again).

Two faults of amqtt 0.12 are worked around here, in a subclass of its Broker:

- On every CONNECT it sends the new client the retained messages matching *every* filter any client
  holds, not only the client's own: a subscriber to `nothing/here/#` got every retained status,
  configuration and weather message. Retained messages now go only to a session holding the filter.
- It loops over its subscription table while awaiting, so another client subscribing meanwhile
  ("dictionary changed size during iteration") killed connections once a few hundred gateways
  connected at once. The table is now iterated over a snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import socket
import warnings
from collections.abc import ItemsView, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin

from pms_common import topics
from pms_common.broker_admin import PROVISION_ROOT, BrokerAdminError, BrokerLogin, count_request
from pms_common.ports import listener_port

log = logging.getLogger(__name__)

# Gateways (one MQTT client and a few retained topics each) the embedded broker serves in one
# `pms up`, measured with bench/pms_up.py --embedded on 2 cores: 300 all measured 69 s after the
# start and stopped in 3.0 s; 1000 had none measured after 600 s (amqtt's QoS 1 deliveries time out
# in the start-up burst). More need a real broker (PMS_MQTT_URL).
EMBEDDED_BROKER_MAX_PLANTS = 300

PORT_FILE = "mqtt-port"


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def choose_port(host: str, wanted: int, var_dir: Path) -> int:
    """`wanted` when free; else the port picked on an earlier start (kept in var/mqtt-port) when free,
    so a `pms sim` pointed at it survives a restart; else a new free port, remembered for next time."""
    if port_is_free(host, wanted):
        return wanted
    remembered = var_dir / PORT_FILE
    try:
        kept = int(remembered.read_text().strip())
    except (OSError, ValueError):
        kept = 0
    if kept and kept != wanted and port_is_free(host, kept):
        return kept
    picked = listener_port(host)  # below the ephemeral range (pms_common.ports)
    remembered.write_text(f"{picked}\n")
    return picked


def topic_matches(topic: str, topic_filter: str) -> bool:
    """MQTT 3.1.1 matching: `+` is exactly one level, a final `#` any number of levels (none too:
    `a/#` matches `a`); a filter starting with a wildcard does not match a `$` topic ($SYS/...)."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    levels = topic.split("/")
    parts = topic_filter.split("/")
    for index, part in enumerate(parts):
        if part == "#":
            return index == len(parts) - 1
        if index >= len(levels) or part not in ("+", levels[index]):
            return False
    return len(parts) == len(levels)


class _SnapshotDict(dict[str, Any]):
    """A dict whose loops run over a copy: amqtt awaits inside loops over its subscription table."""

    def __iter__(self) -> Iterator[str]:
        return iter(list(super().keys()))

    def items(self) -> ItemsView[str, Any]:  # type: ignore[override]  # a view of the copy, as dict_items
        return dict(super().items()).items()


def _broker_class() -> type[Any]:
    from amqtt.broker import Broker

    class FilteringBroker(Broker):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._subscriptions = _SnapshotDict()

        async def _publish_retained_messages_for_subscription(self, subscription: tuple[str, int],
                                                              session: Any) -> None:
            # amqtt calls this for each filter a client subscribes to, and on connect for every filter
            # in the table (anyone's): only a filter this session holds may deliver anything.
            topic_filter = subscription[0]
            granted = [qos for holder, qos in self._subscriptions.get(topic_filter, ())
                       if holder.client_id == session.client_id]
            handler = self._get_handler(session)
            if not granted or handler is None:
                return
            matching = [m for topic, m in list(self._retained_messages.items()) if topic_matches(topic, topic_filter)]
            publishes = [
                asyncio.ensure_future(handler.mqtt_publish(
                    m.topic, m.data, granted[0] if m.qos is None else min(granted[0], m.qos), retain=True))
                for m in matching
            ]
            if publishes:
                await asyncio.wait(publishes)

    return FilteringBroker


_GATEWAY_ID = re.compile(topics.GATEWAY_ID_PATTERN)


def filter_within(topic_filter: str, tree: str) -> bool:
    """True when every topic `topic_filter` can match lies in `tree` (a filter ending in `/#`): the
    filter repeats the tree's fixed levels literally, so `+` and `#` can widen it only inside the tree."""
    fixed = tree.removesuffix("/#").split("/")
    levels = topic_filter.split("/")
    return levels[:len(fixed)] == fixed


@dataclass
class LoginTable:
    """Who may log in to the embedded broker, and with which rights (changed only on the broker's loop)."""

    services: dict[str, str] = field(default_factory=dict)
    provisioning: dict[str, str] = field(default_factory=dict)
    gateways: dict[str, str] = field(default_factory=dict)
    # `pms up`'s in-process services connect without a login; True lets an anonymous client have full rights.
    anonymous_services: bool = False

    def authenticate(self, username: str | None, password: str | None) -> bool:
        if username is None:
            return self.anonymous_services
        for logins in (self.services, self.provisioning, self.gateways):
            expected = logins.get(username)
            if expected is not None:
                return password is not None and secrets.compare_digest(expected.encode(), password.encode())
        return False

    def tree_of(self, username: str | None, client_id: str) -> str | None:
        """The one tree the login may use; None for full rights (a service); "" for nothing."""
        if username is None:
            return None if self.anonymous_services else ""
        if username in self.services:
            return None
        if username in self.gateways:
            return f"{topics.ROOT}/gw/{username}/#"
        if username in self.provisioning and "/" not in client_id and "+" not in client_id and "#" not in client_id:
            return f"{PROVISION_ROOT}/{client_id}/#"
        return ""

    def permits(self, username: str | None, client_id: str, topic: str, action: Action) -> bool:
        tree = self.tree_of(username, client_id)
        if tree is None:
            return True
        if not tree:
            return False
        if action == Action.SUBSCRIBE:
            return filter_within(topic, tree)
        return topic_matches(topic, tree)


class TableAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]  # amqtt is untyped
    """amqtt auth plugin: a login is accepted when the admin's table knows it with that password."""

    @dataclass
    class Config:
        table: Any

    async def authenticate(self, *, session: Any) -> bool | None:
        table: LoginTable = self.config.table
        return table.authenticate(session.username, session.password)


class TableTopicPlugin(BaseTopicPlugin):  # type: ignore[misc]  # amqtt is untyped
    """amqtt topic plugin: publish, subscribe and delivery only inside the login's own tree."""

    @dataclass
    class Config:
        table: Any

    async def topic_filtering(self, *, session: Any = None, topic: str | None = None,
                              action: Action | None = None) -> bool | None:
        if session is None or topic is None or action is None:
            return False
        table: LoginTable = self.config.table
        return table.permits(session.username, str(session.client_id), topic, action)


class EmbeddedBrokerAdmin:
    """`BrokerAdmin` of the embedded broker: its coroutines must run on the broker's event loop.

    `service_logins` (username -> password) have full rights, as `pms up`'s in-process services need.
    """

    def __init__(self, service_logins: Mapping[str, str] | None = None, *, anonymous_services: bool = False) -> None:
        self.table = LoginTable(services=dict(service_logins or {}), anonymous_services=anonymous_services)
        self._broker: Any = None

    def attach(self, broker: Any) -> None:
        self._broker = broker

    async def ensure_provisioning_login(self, login: BrokerLogin) -> None:
        if login.username in self.table.services or login.username in self.table.gateways:
            count_request("ensure_provisioning_login", "refused")
            raise BrokerAdminError(f"{login.username!r} is already a service or gateway login of the embedded broker, "
                                   "so it cannot be the provisioning login")
        self.table.provisioning[login.username] = login.password
        count_request("ensure_provisioning_login", "ok")

    async def create_gateway_login(self, gateway_id: str) -> BrokerLogin:
        self._check_gateway_id(gateway_id, "create_gateway_login")
        login = BrokerLogin(username=gateway_id, password=secrets.token_urlsafe(24))
        self.table.gateways[gateway_id] = login.password
        await self._disconnect(gateway_id)  # the old password's session goes with it
        count_request("create_gateway_login", "ok")
        return login

    async def revoke_gateway_login(self, gateway_id: str) -> None:
        self._check_gateway_id(gateway_id, "revoke_gateway_login")
        existed = self.table.gateways.pop(gateway_id, None) is not None
        await self._disconnect(gateway_id)
        count_request("revoke_gateway_login", "ok" if existed else "tolerated")

    async def gateway_logins(self) -> set[str]:
        count_request("gateway_logins", "ok")
        return set(self.table.gateways)

    async def _disconnect(self, username: str) -> None:
        """Close every connected session of this login, as amqtt does on a client-id take-over."""
        if self._broker is None:
            return
        for session, handler in list(self._broker._sessions.values()):
            if session.username == username and handler is not None and session.transitions.is_connected():
                log.info("embedded broker: closing the session of %s (%s)", session.client_id, username)
                await handler.handle_connection_closed()
                await handler.stop()

    def _check_gateway_id(self, gateway_id: str, command: str) -> None:
        if not gateway_id.startswith("gw-") or not _GATEWAY_ID.fullmatch(gateway_id):
            count_request(command, "refused")
            raise BrokerAdminError(f"{gateway_id!r} is not a gateway id (gw- followed by letters, digits, '.', '_' "
                                   "or '-', at most 64 characters)")
        if gateway_id in self.table.services or gateway_id in self.table.provisioning:
            count_request(command, "refused")
            raise BrokerAdminError(f"{gateway_id!r} is a service or provisioning login of the embedded broker")


class EmbeddedBroker:
    def __init__(self, host: str, port: int, admin: EmbeddedBrokerAdmin | None = None) -> None:
        self.host = host
        self.port = port
        self.admin = admin
        self._broker: Any = None

    async def start(self) -> None:
        config: dict[str, Any] = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}", "max_connections": 0}},
            "sys_interval": 0,
        }
        if self.admin is None:
            config["auth"] = {"allow-anonymous": True, "plugins": ["auth_anonymous"]}
            config["topic-check"] = {"enabled": False}
        else:
            table = {"table": self.admin.table}
            config["plugins"] = {f"{__name__}.TableAuthPlugin": table, f"{__name__}.TableTopicPlugin": table}
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        # Its plugins warn about settings we leave out on purpose (password file, $SYS interval).
        logging.getLogger("amqtt.broker.plugins").setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            self._broker = _broker_class()(config)
            await self._broker.start()
        if self.admin is not None:
            self.admin.attach(self._broker)
        log.info("embedded MQTT broker on mqtt://%s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None
