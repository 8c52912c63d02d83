"""The brokers the BrokerAdmin tests run against, behind one shape, and a recording paho client.

Each `AdminedBroker` is a real broker on a free 127.0.0.1 port with its admin object, a login that may
read every topic (the wildcard listener that must never see a refused message) and the shared
provisioning login.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from pms_common.broker_admin import BrokerAdmin, BrokerLogin


@dataclass
class AdminedBroker:
    name: str
    port: int
    admin: BrokerAdmin
    listener: BrokerLogin
    provisioning: BrokerLogin
    # Runs a coroutine on the loop the admin lives on (the embedded broker's own thread, or asyncio.run).
    run: Callable[[Any], Any]
    extra: dict[str, Any] = field(default_factory=dict)


class Probe:
    """A paho-mqtt 2.x client (MQTT 3.1.1) that records what it receives and when it lost the connection."""

    def __init__(self, port: int, login: BrokerLogin, client_id: str | None = None) -> None:
        self.port = port
        self.client_id = client_id or f"probe-{uuid.uuid4().hex[:8]}"
        self.messages: list[tuple[str, bytes]] = []
        self.connect_result: ReasonCode | None = None
        self.disconnected_at: float | None = None
        self.subscribe_results: list[list[ReasonCode]] = []
        self._event = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv311,
                                  reconnect_on_failure=False)
        self.client.username_pw_set(login.username, login.password)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: ReasonCode, properties: Any) -> None:
        self.connect_result = reason
        self._event.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: ReasonCode, properties: Any) -> None:
        self.disconnected_at = time.monotonic()
        self._event.set()

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.messages.append((message.topic, message.payload))

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reasons: list[ReasonCode], properties: Any) -> None:
        self.subscribe_results.append(reasons)

    def connect(self, timeout: float = 5) -> bool:
        """True when the broker accepted the login, False when it refused or closed the connection."""
        self._event.clear()
        try:
            self.client.connect("127.0.0.1", self.port, keepalive=30)
        except OSError:
            return False
        self.client.loop_start()
        self._event.wait(timeout)
        return self.connect_result is not None and not self.connect_result.is_failure and self.disconnected_at is None

    def subscribe(self, topic_filter: str) -> None:
        count = len(self.subscribe_results)
        self.client.subscribe(topic_filter, qos=1)
        deadline = time.monotonic() + 5
        while len(self.subscribe_results) == count and time.monotonic() < deadline:
            time.sleep(0.01)

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
