"""Every service run alone (`pms <service>`) against the real Mosquitto on 127.0.0.1:1883.

Covers the walking skeleton's path end to end: simulated gateways → ingest → store → API, gateway
presence in device-manager, the gateway-offline event in alerts, weather, and dead letters.
"""

from __future__ import annotations

import json
import random
import signal
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from pms_common.timeutil import JST
from pms_registry import Registry
from pms_store.sqlite import SqliteStore
from tests.conftest import free_port, wait_until

pytestmark = pytest.mark.integration

ADMIN_KEY = "integration-admin-key"


def http_json(url: str, key: str | None = ADMIN_KEY) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def http_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


class Listener:
    """A bare paho client that records what arrives on some topics."""

    def __init__(self, *topic_filters: str) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}")
        self.subscribed = threading.Event()
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_args: self.subscribed.set()
        self.client.connect("127.0.0.1", 1883)
        self.client.subscribe([(f, 1) for f in topic_filters])
        self.client.loop_start()
        assert self.subscribed.wait(5), "subscription was not acknowledged"

    def _on_message(self, _client: Any, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((message.topic, message.payload))

    def received(self, topic: str) -> list[bytes]:
        with self.lock:
            return [payload for t, payload in self.messages if t == topic]

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def metric_value(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_services_run_alone_against_mosquitto(mosquitto: str, tmp_path: Path, pms_processes: Any) -> None:
    first = random.randint(2000, 8999)
    gateways = [f"gw-{first:04d}", f"gw-{first + 1:04d}"]
    run = uuid.uuid4().hex[:6]
    common = {
        "PMS_MQTT_URL": mosquitto,
        "PMS_REGISTRY_URL": f"sqlite:///{tmp_path}/pms.db",
        "PMS_TSDB_URL": f"sqlite:///{tmp_path}/pms-ts.db",
        "PMS_LOG_LEVEL": "INFO",
    }
    ports = {name: free_port() for name in ("ingest", "alerts", "weather", "device-manager", "sim", "api")}

    def env(name: str, **extra: str) -> dict[str, str]:
        return {**common, "PMS_METRICS_PORT": str(ports[name]), "PMS_MQTT_CLIENT_ID": f"{name}-{run}", **extra}

    listener = Listener("pms/v1/deadletter/ingest", "pms/v1/events/#", f"pms/v1/gw/{gateways[0]}/status")
    try:
        sim_args = ["sim", "--plants", "2", "--first", str(first), "--register", "--outbox-dir",
                    str(tmp_path / "outbox"), "--power-interval", "1", "--heartbeat-interval", "1"]
        sim_env = {**common, "PMS_METRICS_PORT": str(ports["sim"])}
        sim = pms_processes(sim_args, sim_env, name="sim")
        ingest = pms_processes(["ingest"], env("ingest"))
        pms_processes(["alerts"], env("alerts", PMS_TICK_S="0.5", PMS_ANOMALY_CHECK_S="0.5", PMS_EVALUATE_S="0.5",
                                      PMS_RULES_REFRESH_S="0.5"))
        pms_processes(["device-manager"], env("device-manager", PMS_TICK_S="0.5"))
        pms_processes(["weather"], env("weather", PMS_INTERVAL_S="1"))
        api = pms_processes(["api"], env("api", PMS_API_PORT=str(ports["api"]), PMS_ADMIN_API_KEY=ADMIN_KEY))
        base = f"http://127.0.0.1:{ports['api']}"

        # The readings path: every simulated plant shows a number as current sold power.
        def ours_measured() -> list[dict[str, Any]] | None:
            page = http_json(f"{base}/api/v1/plants?limit=1000")
            plants = [p for p in page["items"] if p["status"] != "no_gateway"]
            ok = len(plants) == 2 and all(isinstance(p["current_sold_w"], int) for p in plants)
            return plants if ok else None

        plants = wait_until(ours_measured, 60, "both simulated plants measured via ingest and the API")
        assert all(p["current_sold_w"] >= 0 for p in plants)
        assert all(p["service_code"].startswith("pss") and len(p["service_code"]) == 11 for p in plants)
        with pytest.raises(urllib.error.HTTPError) as refused:
            http_json(f"{base}/api/v1/plants", key="wrong-key")
        assert refused.value.code == 401

        # Device-manager tracks presence and heartbeats.
        def gateways_online() -> bool:
            items = {g["gateway_id"]: g for g in http_json(f"{base}/api/v1/gateways?limit=1000")["items"]}
            return all(items.get(gw, {}).get("status") == "online" and items[gw]["heartbeat"] for gw in gateways)

        wait_until(gateways_online, 30, "both gateways online with a heartbeat")

        # Weather: estimates published per plant and stored by ingest.
        store = SqliteStore(tmp_path / "pms-ts.db")
        codes = [p["service_code"] for p in plants]
        wait_until(lambda: all(store.latest_weather(c) is not None for c in codes), 30, "weather stored per plant")
        assert all(store.latest_weather(c).source == "clear-sky" for c in codes)  # type: ignore[union-attr]

        # Every service serves /metrics and /healthz.
        for name in ("ingest", "alerts", "weather", "device-manager", "sim"):
            metrics = http_text(f"http://127.0.0.1:{ports[name]}/metrics")
            assert "# TYPE" in metrics, name
            wait_until(lambda n=name: json.loads(http_text(f"http://127.0.0.1:{ports[n]}/healthz"))["status"] == "ok",
                       20, f"{name} healthy")
        assert "pms_api_requests_total" in http_text(f"{base}/metrics")
        assert json.loads(http_text(f"{base}/healthz"))["status"] == "ok"
        ingest_metrics = http_text(f"http://127.0.0.1:{ports['ingest']}/metrics")
        assert metric_value(ingest_metrics, "pms_ingest_readings_total") > 0

        # A malformed payload is dead-lettered with a reason, counted, and ingest keeps going.
        bad_topic = f"pms/v1/gw/{gateways[0]}/readings"
        listener.publish(bad_topic, b'{"v":1,"gateway_id":"' + gateways[0].encode() + b'","seq":"x"')
        listener.publish(bad_topic, json.dumps({"v": 1, "gateway_id": gateways[0], "stream_id": "abcdef12",
                                                "seq": 1, "outbox_floor_seq": 1, "sent_at": "2026-01-01T00:00:00",
                                                "readings": []}).encode())
        letters = wait_until(lambda: listener.received("pms/v1/deadletter/ingest") if len(
            listener.received("pms/v1/deadletter/ingest")) >= 2 else None, 20, "two dead letters")
        first_letter, second_letter = (json.loads(letter) for letter in letters[:2])
        assert first_letter["topic"] == bad_topic and "JSON" in first_letter["reason"]
        assert second_letter["reason"].startswith("sent_at") and "timezone" in second_letter["reason"]
        assert second_letter["payload_encoding"] == "utf-8"
        counted = http_text(f"http://127.0.0.1:{ports['ingest']}/metrics")
        assert metric_value(counted, 'pms_ingest_deadletter_total{reason="json"}') >= 1
        assert metric_value(counted, 'pms_ingest_deadletter_total{reason="schema"}') >= 1
        assert "rejected a payload" in ingest.log()
        assert ingest.alive()
        before = store.latest_power(gateways)
        wait_until(lambda: all(store.latest_power([gw])[gw].measured_at > before[gw].measured_at for gw in gateways),
                   20, "good readings still stored after the bad ones")

        # A register that goes backwards (a meter swapped) is stored as no energy and becomes one event.
        swapped = f"gw-swap-{run}"
        slots = [("2026-06-01T10:00:00+09:00", 5000.0), ("2026-06-01T10:30:00+09:00", 5001.5),
                 ("2026-06-01T11:00:00+09:00", 0.5)]
        batch = {"v": 1, "gateway_id": swapped, "stream_id": "0badf00d", "seq": 1, "outbox_floor_seq": 1,
                 "sent_at": "2026-06-01T11:00:05+09:00",
                 "readings": [{"kind": "energy", "slot_end": end, "forward_kwh": 10.0, "reverse_kwh": kwh}
                              for end, kwh in slots]}
        for _ in range(2):  # a resend: still one anomaly, one event
            listener.publish(f"pms/v1/gw/{swapped}/readings", json.dumps(batch).encode())

        def anomaly_events() -> list[dict[str, Any]]:
            events = http_json(f"{base}/api/v1/events?limit=1000")["items"]
            return [e for e in events if e["gateway_id"] == swapped and e["kind"] == "register_anomaly"]

        anomaly = wait_until(anomaly_events, 30, "a register_anomaly event")[0]
        assert anomaly["state"] == "info" and "reverse register" in anomaly["message"]
        assert "5001.5 → 0.5 kWh" in anomaly["message"]
        wait_until(lambda: listener.received("pms/v1/events/register_anomaly"), 10, "the event published")
        time.sleep(2)  # a few more checks by alerts: nothing is recorded twice
        assert len(anomaly_events()) == 1
        day = store.energy_series([swapped], datetime(2026, 6, 1, tzinfo=JST), datetime(2026, 6, 2, tzinfo=JST), "day")
        assert [point.sold_kwh for point in day] == [1.5]  # the good slot only: never negative, never huge

        # Stopping a gateway (SIGKILL: the broker publishes its last will) opens an offline event (the
        # shipped rule waits 5 minutes before raising and clearing; this plant's operator wants it at once)...
        registry = Registry(f"sqlite:///{tmp_path}/pms.db")
        [offline_rule] = [r for r in registry.list_alert_rules("gateway_offline") if r.scope == "global"]
        registry.update_alert_rule(offline_rule.rule_id, at=offline_rule.updated_at, raise_for_s=0, clear_for_s=0)
        registry.close()
        sim.stop(signal.SIGKILL)

        def offline_event() -> dict[str, Any] | None:
            events = http_json(f"{base}/api/v1/events?state=open&limit=1000")["items"]
            found = [e for e in events if e["gateway_id"] == gateways[0] and e["kind"] == "gateway_offline"]
            return found[0] if found else None

        event = wait_until(offline_event, 30, "an open gateway_offline event")
        assert event["recovered_at"] is None
        status = {g["gateway_id"]: g["status"] for g in http_json(f"{base}/api/v1/gateways?limit=1000")["items"]}
        wait_until(lambda: {g["gateway_id"]: g["status"] for g in http_json(
            f"{base}/api/v1/gateways?limit=1000")["items"]}[gateways[0]] == "offline", 20, "gateway offline")
        assert status  # the list answered while the gateway was down
        offline_status = json.loads(listener.received(f"pms/v1/gw/{gateways[0]}/status")[-1])
        assert offline_status["state"] == "offline" and offline_status["reason"] == "connection lost"

        # ...and restarting it clears the event with a recovery time.
        pms_processes(sim_args, sim_env, name="sim-again")

        def recovered() -> dict[str, Any] | None:
            events = http_json(f"{base}/api/v1/events?limit=1000")["items"]
            found = [e for e in events if e["event_id"] == event["event_id"] and e["state"] == "recovered"]
            return found[0] if found else None

        closed = wait_until(recovered, 30, "the offline event recovered")
        assert closed["recovered_at"] is not None and closed["recovered_at"] >= closed["opened_at"]
        # Alerts publishes the recovery after recording it: it may reach the listener a moment later.
        wait_until(lambda: any(e["event_id"] == event["event_id"] and e["recovered_at"] for e in (
            json.loads(p) for p in listener.received("pms/v1/events/gateway_recovered"))), 10,
            "the recovery published on pms/v1/events/gateway_recovered")
        assert api.alive() and ingest.alive()
    finally:
        listener.close()
