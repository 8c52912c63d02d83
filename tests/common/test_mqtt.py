from __future__ import annotations

import asyncio
import gc
import logging
import random
import time

import aiomqtt
import pytest

from pms_common.mqtt import Backoff, BrokerAddress, BrokerUrlError, is_broker_failure
from tests.collector.waiting import eventually


def test_parse_full_url() -> None:
    address = BrokerAddress.parse("mqtt://user:pass@broker.example:1884")
    assert address == BrokerAddress(host="broker.example", port=1884, username="user", password="pass", tls=False)


def test_parse_defaults() -> None:
    assert BrokerAddress.parse("mqtt://127.0.0.1") == BrokerAddress(host="127.0.0.1", port=1883)
    assert BrokerAddress.parse("tcp://h").port == 1883


def test_mqtts_defaults_to_8883_and_tls() -> None:
    address = BrokerAddress.parse("mqtts://broker")
    assert (address.port, address.tls) == (8883, True)
    assert BrokerAddress.parse("ssl://broker").tls is True
    assert BrokerAddress.parse("mqtts://broker:9883").port == 9883


def test_parse_unquotes_credentials() -> None:
    address = BrokerAddress.parse("mqtt://gw%2F1:p%40ss%3Aword@h:1883")
    assert (address.username, address.password) == ("gw/1", "p@ss:word")


def test_username_without_password() -> None:
    address = BrokerAddress.parse("mqtt://reader@h")
    assert (address.username, address.password) == ("reader", None)


@pytest.mark.parametrize("url", ["http://broker:1883", "broker:1883", "ws://broker", ""])
def test_bad_scheme(url: str) -> None:
    with pytest.raises(BrokerUrlError, match="must start with"):
        BrokerAddress.parse(url)


@pytest.mark.parametrize("url", ["mqtt://", "mqtt://:1883", "mqtt://user:pass@:1883"])
def test_no_host(url: str) -> None:
    with pytest.raises(BrokerUrlError, match="names no host"):
        BrokerAddress.parse(url)


@pytest.mark.parametrize("url", ["mqtt://h:abc", "mqtt://h:70000", "mqtt://h:-1"])
def test_bad_port(url: str) -> None:
    with pytest.raises(BrokerUrlError, match="bad port"):
        BrokerAddress.parse(url)


def test_broker_url_error_is_a_value_error() -> None:
    assert issubclass(BrokerUrlError, ValueError)


def test_client_is_built_without_connecting() -> None:
    async def build() -> aiomqtt.Client:
        return BrokerAddress.parse("mqtt://u:p@127.0.0.1:1999").client(identifier="pms-test")

    client = asyncio.run(build())
    assert isinstance(client, aiomqtt.Client)
    assert client.identifier == "pms-test"


class SilentBroker:
    """A TCP server that reads a CONNECT and answers CONNACK only after `connack_after_s` (never when
    None): a broker too busy to answer in time. It notes how long each connection stayed open."""

    def __init__(self, connack_after_s: float | None) -> None:
        self.connack_after_s = connack_after_s
        self.opened = 0
        self.connects = 0
        self.open_for_s: list[float] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.opened += 1
        started = time.monotonic()
        await reader.read(1024)  # the CONNECT
        self.connects += 1
        if self.connack_after_s is not None:
            await asyncio.sleep(self.connack_after_s)
            writer.write(bytes([0x20, 2, 0, 0]))  # CONNACK, accepted
        while await reader.read(1024):
            pass
        self.open_for_s.append(time.monotonic() - started)
        writer.close()


@pytest.mark.parametrize("connack_after_s", [None, 1.0], ids=["never", "late"])
def test_a_connect_given_up_on_is_disconnected_at_once_and_leaves_no_stray_error(
        connack_after_s: float | None, caplog: pytest.LogCaptureFixture) -> None:
    """aiomqtt alone keeps such a connection open until paho's keepalive check (here 4 s, the
    collector's 30 s: up to twice that), and a late CONNACK made it a session nobody used, ended by
    'Future exception was never retrieved'. A cancelled connect (a stop) is ended the same way."""
    broker = SilentBroker(connack_after_s)

    async def attempts() -> None:
        server = await asyncio.start_server(broker.serve, "127.0.0.1", 0)
        address = BrokerAddress(host="127.0.0.1", port=server.sockets[0].getsockname()[1])
        for _ in range(3):
            client = address.client(identifier="pms-test-silent", keepalive=4)
            client.timeout = 0.3
            with pytest.raises(aiomqtt.MqttError, match="timed out"):
                async with client:
                    pass
        cancelled = asyncio.create_task(address.client(identifier="pms-test-stopped", keepalive=4).__aenter__())
        await eventually(lambda: broker.connects == 4, 5, "the fourth CONNECT")  # waiting for its CONNACK
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        await eventually(lambda: len(broker.open_for_s) == broker.opened, 10, "every connection closed")
        server.close()
        await server.wait_closed()

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        asyncio.run(attempts())
        gc.collect()  # a future's unretrieved exception is logged when it is collected
    assert broker.opened == 4 and len(broker.open_for_s) == 4
    # Closed by the client as soon as it gave up (the server sees it once it reads again, after a late
    # CONNACK): well before the 4 s keepalive.
    assert max(broker.open_for_s) < (connack_after_s or 0.3) + 1.0, broker.open_for_s
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]


def test_backoff_grows_with_jitter_within_bounds() -> None:
    random.seed(1)
    backoff = Backoff(initial_s=0.5, maximum_s=30.0)
    for attempt in range(12):
        ceiling = min(30.0, 0.5 * 2**attempt)
        delay = backoff.next_delay()
        assert ceiling / 2 <= delay <= ceiling
    assert backoff.attempt == 12


def test_backoff_is_capped() -> None:
    backoff = Backoff(initial_s=1.0, maximum_s=4.0, attempt=10)
    delays = [backoff.next_delay() for _ in range(50)]
    assert all(2.0 <= d <= 4.0 for d in delays)
    assert len(set(delays)) > 1  # jittered, not lockstep


def test_backoff_reset() -> None:
    backoff = Backoff(initial_s=0.5, maximum_s=30.0)
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert backoff.attempt == 0
    assert 0.25 <= backoff.next_delay() <= 0.5


def test_is_broker_failure_plain() -> None:
    assert is_broker_failure(aiomqtt.MqttError("lost"))
    assert is_broker_failure(aiomqtt.MqttCodeError(5, "refused"))
    assert not is_broker_failure(ValueError("bug"))
    assert not is_broker_failure(KeyboardInterrupt())


def test_is_broker_failure_in_exception_groups() -> None:
    only_mqtt = ExceptionGroup("tg", [aiomqtt.MqttError("a"), aiomqtt.MqttError("b")])
    assert is_broker_failure(only_mqtt)
    nested = ExceptionGroup("outer", [ExceptionGroup("inner", [aiomqtt.MqttError("a")])])
    assert is_broker_failure(nested)
    mixed = ExceptionGroup("tg", [aiomqtt.MqttError("a"), RuntimeError("bug")])
    assert not is_broker_failure(mixed)
    assert not is_broker_failure(ExceptionGroup("tg", [RuntimeError("bug")]))
    assert not is_broker_failure(BaseExceptionGroup("tg", [aiomqtt.MqttError("a"), KeyboardInterrupt()]))


def test_backoff_survives_a_long_outage() -> None:
    """libs/pms_common/mqtt.py `Backoff.next_delay` (line 94): `initial_s * 2**attempt` overflows.

    `attempt` grows without bound, so after 1024 failed reconnects (about 8.5 h of broker outage at
    the 30 s cap) `0.5 * 2**1024` raises OverflowError inside `run_connected`'s except block, which
    ends the reconnect loop and the service. The delay should stay at `maximum_s`.
    """
    backoff = Backoff(initial_s=0.5, maximum_s=30.0, attempt=1024)
    delay = backoff.next_delay()
    assert 15.0 <= delay <= 30.0


def test_broker_url_with_port_zero_is_refused() -> None:
    """libs/pms_common/mqtt.py `BrokerAddress.parse` (line 41): `parts.port or default` turns an
    explicit port 0 into 1883 (8883 for mqtts) silently; a port the user wrote must not be replaced.
    """
    with pytest.raises(BrokerUrlError):
        BrokerAddress.parse("mqtt://broker:0")
