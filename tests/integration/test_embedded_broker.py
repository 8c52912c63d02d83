"""The embedded broker of `pms up`, seen by third-party MQTT clients (paho): retained messages follow
each subscriber's own topic filter, whatever filters other clients hold."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from pms.embedded_broker import EmbeddedBroker, choose_port, topic_matches
from tests.conftest import free_port, wait_until

RETAINED = {
    "pms/v1/gw/gw-0001/status": b"online 1",
    "pms/v1/gw/gw-0002/status": b"online 2",
    "pms/v1/gw/gw-0001/config/desired": b"config 1",
    "pms/v1/plants/pss00000001/weather": b"sunny",
    "other/state": b"other",
}
# amqtt refuses clients' publishes to $ topics, so the $ rule is checked on topic_matches below.
PMS_TOPICS = {t for t in RETAINED if t.startswith("pms/")}


@pytest.fixture
def broker_port() -> Iterator[int]:
    port = free_port()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="embedded-broker", daemon=True)
    thread.start()
    broker = EmbeddedBroker("127.0.0.1", port)
    asyncio.run_coroutine_threadsafe(broker.start(), loop).result(20)
    yield port
    asyncio.run_coroutine_threadsafe(broker.stop(), loop).result(20)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def client(port: int) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}")
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def retained_seen(port: int, topic_filter: str) -> set[str]:
    """The retained messages a fresh client gets for one subscription (checked for their payloads)."""
    seen: list[tuple[str, bytes]] = []
    subscribed = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sub-{uuid.uuid4().hex[:8]}")
    c.on_message = lambda _c, _u, m: seen.append((m.topic, m.payload))
    c.on_subscribe = lambda *_: subscribed.set()
    c.on_connect = lambda cl, *_: cl.subscribe(topic_filter, qos=1)
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        assert subscribed.wait(10), f"no SUBACK for {topic_filter}"
        time.sleep(1.0)  # retained messages follow the SUBACK at once; give stragglers time
    finally:
        c.loop_stop()
        c.disconnect()
    assert all(RETAINED[topic] == payload for topic, payload in seen)
    topics = [topic for topic, _ in seen]
    assert len(topics) == len(set(topics)), f"{topic_filter}: duplicates in {topics}"
    return set(topics)


def test_retained_messages_follow_each_subscribers_own_filter(broker_port: int) -> None:
    # A bystander holding broad filters, as ingest and device-manager do on `pms up`'s broker.
    bystander = client(broker_port)
    for topic_filter in ("#", "pms/v1/gw/+/status", "pms/v1/gw/+/config/#", "pms/v1/plants/+/weather"):
        bystander.subscribe(topic_filter, qos=1)
    publisher = client(broker_port)
    for topic, payload in RETAINED.items():
        publisher.publish(topic, payload, qos=1, retain=True).wait_for_publish(10)
    wait_until(lambda: retained_seen(broker_port, "#") == set(RETAINED), 20, "the retained messages stored")

    expected = {
        "pms/v1/gw/gw-0001/status": {"pms/v1/gw/gw-0001/status"},
        "pms/v1/gw/+/status": {"pms/v1/gw/gw-0001/status", "pms/v1/gw/gw-0002/status"},
        "pms/v1/gw/gw-0001/#": {"pms/v1/gw/gw-0001/status", "pms/v1/gw/gw-0001/config/desired"},
        "pms/v1/gw/gw-0001/config/desired/#": {"pms/v1/gw/gw-0001/config/desired"},  # '#' also matches its parent
        "+/v1/plants/+/weather": {"pms/v1/plants/pss00000001/weather"},
        "pms/#": PMS_TOPICS,
        "#": set(RETAINED),
        "+/state": {"other/state"},
        "pms/v1/gw/+": set(),  # '+' is exactly one level
        "nothing/here/#": set(),
    }
    try:
        for topic_filter, topics in expected.items():
            assert retained_seen(broker_port, topic_filter) == topics, topic_filter
    finally:
        for c in (bystander, publisher):
            c.loop_stop()
            c.disconnect()


@pytest.mark.parametrize(("topic", "topic_filter", "matches"), [
    ("a/b/c", "a/b/c", True), ("a/b/c", "a/+/c", True), ("a/b/c", "a/#", True), ("a", "a/#", True),
    ("a/b", "+/+", True), ("/a", "+/a", True), ("a/b/c", "a/+", False), ("a/b", "a/b/c", False),
    ("a/b", "b/#", False), ("$SYS/x", "#", False), ("$SYS/x", "+/x", False), ("$SYS/x", "$SYS/#", True),
])
def test_topic_filter_matching(topic: str, topic_filter: str, matches: bool) -> None:
    assert topic_matches(topic, topic_filter) is matches


def test_a_taken_port_is_replaced_by_one_kept_across_starts(tmp_path: Path) -> None:
    var = tmp_path
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        wanted = taken.getsockname()[1]
        first = choose_port("127.0.0.1", wanted, var)
        assert first != wanted
        assert choose_port("127.0.0.1", wanted, var) == first  # the next start: the same port
    assert choose_port("127.0.0.1", wanted, var) == wanted  # the wanted one when it is free again


def test_login_table_rights() -> None:
    from amqtt.contexts import Action

    from pms.embedded_broker import LoginTable, filter_within

    table = LoginTable(services={"api": "api-secret"}, provisioning={"provision": "p-secret"},
                       gateways={"gw-1": "g-secret"})
    assert table.authenticate("gw-1", "g-secret") and not table.authenticate("gw-1", "api-secret")
    assert not table.authenticate(None, None) and not table.authenticate("gw-2", "g-secret")
    assert table.permits("api", "x", "$SYS/anything", Action.PUBLISH)
    assert table.permits("gw-1", "any", "pms/v1/gw/gw-1/status", Action.PUBLISH)
    assert not table.permits("gw-1", "claim-a", "pms/v1/provision/claim-a/claim", Action.PUBLISH)
    assert table.permits("provision", "claim-a", "pms/v1/provision/claim-a/claim", Action.RECEIVE)
    assert not table.permits("provision", "claim-a", "pms/v1/provision/+/claim", Action.SUBSCRIBE)
    assert not table.permits("provision", "claim-a", "pms/v1/provision/claim-b/answer", Action.PUBLISH)
    assert filter_within("pms/v1/gw/gw-1/#", "pms/v1/gw/gw-1/#")
    assert filter_within("pms/v1/gw/gw-1/+/req", "pms/v1/gw/gw-1/#")
    assert not filter_within("pms/v1/gw/+/status", "pms/v1/gw/gw-1/#")
    assert not filter_within("#", "pms/v1/gw/gw-1/#")
    # `pms up`'s in-process services connect without a login: only when the table says so.
    assert not table.permits(None, "svc", "pms/v1/gw/gw-1/readings", Action.SUBSCRIBE)
    table.anonymous_services = True
    assert table.authenticate(None, None)
    assert table.permits(None, "svc", "pms/v1/#", Action.SUBSCRIBE)
