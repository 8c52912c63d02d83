from __future__ import annotations

import pytest

from pms_common import topics


def test_gateway_topic_builders() -> None:
    assert topics.readings("gw-1") == "pms/v1/gw/gw-1/readings"
    assert topics.ack("gw-1") == "pms/v1/gw/gw-1/ack"
    assert topics.status("gw-1") == "pms/v1/gw/gw-1/status"
    assert topics.heartbeat("gw-1") == "pms/v1/gw/gw-1/heartbeat"
    assert topics.gateway("gw-1", "cmd/req") == "pms/v1/gw/gw-1/cmd/req"


def test_other_topic_builders() -> None:
    assert topics.weather("pss00000001") == "pms/v1/plants/pss00000001/weather"
    assert topics.event("gateway_offline") == "pms/v1/events/gateway_offline"
    assert topics.deadletter("ingest") == "pms/v1/deadletter/ingest"


def test_wildcard_subscriptions() -> None:
    assert topics.ALL_READINGS == "pms/v1/gw/+/readings"
    assert topics.ALL_STATUS == "pms/v1/gw/+/status"
    assert topics.ALL_HEARTBEATS == "pms/v1/gw/+/heartbeat"
    assert topics.ALL_WEATHER == "pms/v1/plants/+/weather"
    assert topics.ALL_EXPECTED == "pms/v1/plants/+/expected"
    assert topics.expected("pss00000001") == "pms/v1/plants/pss00000001/expected"
    assert topics.service_code_of_expected_topic("pms/v1/plants/pss00000001/expected") == "pss00000001"
    assert topics.service_code_of_expected_topic("pms/v1/plants/pss00000001/weather") is None


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("pms/v1/gw/gw-1/readings", ("gw-1", "readings")),
        ("pms/v1/gw/GW_2.a/status", ("GW_2.a", "status")),
        ("pms/v1/gw/gw-1/cmd/req", ("gw-1", "cmd/req")),
        ("pms/v1/gw/gw-1/config/desired", ("gw-1", "config/desired")),
    ],
)
def test_split_gateway_topic(topic: str, expected: tuple[str, str]) -> None:
    assert topics.split_gateway_topic(topic) == expected


@pytest.mark.parametrize(
    "topic",
    [
        "pms/v1/plants/pss00000001/weather",
        "pms/v2/gw/gw-1/readings",
        "pms/v1/gw/gw-1",
        "pms/v1/gw/gw-1/",
        "pms/v1/gw/-bad/readings",  # must start with a letter or digit
        "pms/v1/gw/+/readings",
        "pms/v1/gw/" + "a" * 65 + "/readings",  # longer than 64 characters
        "xpms/v1/gw/gw-1/readings",
    ],
)
def test_split_gateway_topic_refuses_other_topics(topic: str) -> None:
    assert topics.split_gateway_topic(topic) is None


def test_split_gateway_topic_round_trips_the_builders() -> None:
    for build, leaf in ((topics.readings, "readings"), (topics.status, "status"), (topics.heartbeat, "heartbeat")):
        assert topics.split_gateway_topic(build("a" * 64)) == ("a" * 64, leaf)


def test_service_code_of_weather_topic() -> None:
    assert topics.service_code_of_weather_topic(topics.weather("pss12345678")) == "pss12345678"


@pytest.mark.parametrize(
    "topic",
    [
        "pms/v1/plants/pss1234567/weather",  # 7 digits
        "pms/v1/plants/pss123456789/weather",  # 9 digits
        "pms/v1/plants/PSS12345678/weather",
        "pms/v1/plants/pss12345678/weather/extra",
        "pms/v1/plants/pss12345678/power",
        "pms/v1/gw/gw-1/readings",
    ],
)
def test_service_code_of_weather_topic_refuses(topic: str) -> None:
    assert topics.service_code_of_weather_topic(topic) is None
