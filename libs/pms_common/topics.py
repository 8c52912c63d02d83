"""Topic names of the public MQTT contract, version 1 (docs/asyncapi.yaml)."""

from __future__ import annotations

import re

ROOT = "pms/v1"
GATEWAY_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
SERVICE_CODE_PATTERN = r"pss\d{8}"

_GATEWAY_TOPIC = re.compile(rf"^{ROOT}/gw/(?P<gateway_id>{GATEWAY_ID_PATTERN})/(?P<leaf>.+)$")


def gateway(gateway_id: str, leaf: str) -> str:
    return f"{ROOT}/gw/{gateway_id}/{leaf}"


def readings(gateway_id: str) -> str:
    return gateway(gateway_id, "readings")


def ack(gateway_id: str) -> str:
    return gateway(gateway_id, "ack")


def status(gateway_id: str) -> str:
    return gateway(gateway_id, "status")


def heartbeat(gateway_id: str) -> str:
    return gateway(gateway_id, "heartbeat")


def weather(service_code: str) -> str:
    return f"{ROOT}/plants/{service_code}/weather"


def expected(service_code: str) -> str:
    return f"{ROOT}/plants/{service_code}/expected"


def event(kind: str) -> str:
    return f"{ROOT}/events/{kind}"


def deadletter(service: str) -> str:
    return f"{ROOT}/deadletter/{service}"


def provision_claim(client_id: str) -> str:
    """Where a gateway publishes its claim (the provisioning login may touch only its own client id's)."""
    return f"{ROOT}/provision/{client_id}/claim"


def provision_answer(client_id: str) -> str:
    return f"{ROOT}/provision/{client_id}/answer"


def client_id_of_claim_topic(topic: str) -> str | None:
    match = re.fullmatch(rf"{ROOT}/provision/([^/+#]+)/claim", topic)
    return match.group(1) if match else None


def update_job(gateway_id: str) -> str:
    return gateway(gateway_id, "update/job")


def update_state(gateway_id: str) -> str:
    return gateway(gateway_id, "update/state")


ALL_CLAIMS = f"{ROOT}/provision/+/claim"
ALL_UPDATE_STATES = f"{ROOT}/gw/+/update/state"
ALL_READINGS = f"{ROOT}/gw/+/readings"
ALL_STATUS = f"{ROOT}/gw/+/status"
ALL_HEARTBEATS = f"{ROOT}/gw/+/heartbeat"
ALL_WEATHER = f"{ROOT}/plants/+/weather"
ALL_EXPECTED = f"{ROOT}/plants/+/expected"


def split_gateway_topic(topic: str) -> tuple[str, str] | None:
    """(gateway_id, leaf) of a `pms/v1/gw/{id}/...` topic, or None when it is not one."""
    match = _GATEWAY_TOPIC.match(topic)
    if match is None:
        return None
    return match["gateway_id"], match["leaf"]


def service_code_of_weather_topic(topic: str) -> str | None:
    match = re.fullmatch(rf"{ROOT}/plants/({SERVICE_CODE_PATTERN})/weather", topic)
    return match.group(1) if match else None


def service_code_of_expected_topic(topic: str) -> str | None:
    match = re.fullmatch(rf"{ROOT}/plants/({SERVICE_CODE_PATTERN})/expected", topic)
    return match.group(1) if match else None
