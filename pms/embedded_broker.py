"""The embedded MQTT broker of `pms up` (amqtt, MQTT 3.1.1): only for a one-machine start.

Production uses Mosquitto (deploy/mosquitto); amqtt has no $share groups and keeps nothing on disk.

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
import socket
import warnings
from collections.abc import ItemsView, Iterator
from pathlib import Path
from typing import Any

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


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


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
    picked = free_port(host)
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


class EmbeddedBroker:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._broker: Any = None

    async def start(self) -> None:
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}", "max_connections": 0}},
            "sys_interval": 0,
            "auth": {"allow-anonymous": True, "plugins": ["auth_anonymous"]},
            "topic-check": {"enabled": False},
        }
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        # Its plugins warn about settings we leave out on purpose (password file, $SYS interval).
        logging.getLogger("amqtt.broker.plugins").setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            self._broker = _broker_class()(config)
            await self._broker.start()
        log.info("embedded MQTT broker on mqtt://%s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None
