"""The rehearsal's renderings of the repository's production configs (no process started)."""

from __future__ import annotations

import datetime
import ssl

import pytest
import yaml
from cryptography import x509

from pms.rehearsal import configs
from pms.rehearsal.tls import make_throwaway_ca
from pms.rehearsal.topology import API_COMPOSE_PORT, LEFT_OUT_JOBS, SERVICES


def test_env_example_secrets_are_filled_and_the_optional_ones_left_empty() -> None:
    env = configs.env_from_example()
    assert len(env["PMS_MQTT_INGEST_PASSWORD"]) == 48 and env["PMS_MQTT_INGEST_PASSWORD"].isalnum()
    assert env["INFLUXDB_ADMIN_TOKEN"] and env["PMS_ADMIN_API_KEY"] and env["POSTGRES_PASSWORD"]
    assert env["PMS_SIM_MQTT_PASSWORD"] == "" and env["PMS_WEATHER_API_KEY"] == ""
    assert env["INFLUXDB_V1_USER"] == "pms"
    assert configs.env_from_example()["PMS_MQTT_INGEST_PASSWORD"] != env["PMS_MQTT_INGEST_PASSWORD"]


def test_compose_interpolation() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert configs.interpolate("a${SET}b$$c", env) == "ax" + "b$c"
    assert configs.interpolate("${EMPTY:-d} ${EMPTY-d} ${MISSING-d}", env) == "d  d"
    with pytest.raises(configs.ConfigError, match="MISSING: set it"):
        configs.interpolate("${MISSING:?set it}", env)


def test_service_environment_is_compose_s_on_local_hosts() -> None:
    env = configs.env_from_example()
    ingest = configs.service_environment("ingest", env, hosts={"mosquitto:1883": "127.0.0.1:1", "influxdb:8086":
                                                               "127.0.0.1:2"})
    assert ingest["PMS_MQTT_URL"] == f"mqtt://ingest:{env['PMS_MQTT_INGEST_PASSWORD']}@127.0.0.1:1"
    assert ingest["PMS_TSDB_URL"] == f"influxdb://pms:{env['INFLUXDB_V1_PASSWORD']}@127.0.0.1:2/pms"
    assert ingest["TZ"] == "Asia/Tokyo"


def test_the_api_runs_the_container_s_gunicorn_command_on_loopback() -> None:
    argv = configs.api_command(4321)
    assert argv[0] == "--bind=127.0.0.1:4321" and argv[-1] == "pms_api.app:create_app()"
    assert "--workers=1" in argv and "--worker-class=gthread" in argv


def test_mosquitto_config_switches_the_tls_listener_on(tmp_path: configs.Path) -> None:
    folder = tmp_path / "mosquitto" / "data" / "x"  # a scratch path containing a container path's words
    text = configs.mosquitto_config(plain_port=1111, tls_port=2222, folder=folder, ca_cert=folder / "ca.crt",
                                    server_cert=folder / "s.crt", server_key=folder / "s.key")
    lines = text.splitlines()
    assert "listener 1111 127.0.0.1" in lines and "listener 2222 127.0.0.1" in lines
    assert f"certfile {folder / 's.crt'}" in lines and f"keyfile {folder / 's.key'}" in lines
    assert f"cafile {folder / 'ca.crt'}" in lines and "tls_version tlsv1.2" in lines
    assert f"plugin_opt_config_file {folder / 'data' / 'dynamic-security.json'}" in lines
    assert f"password_file {folder / 'data' / 'passwords'}" in lines
    assert f"plugin {configs.DYNSEC_PLUGIN}" in lines and "allow_anonymous false" in lines
    assert "max_queued_messages 100000" in lines  # the production limits come along unchanged
    assert not [line for line in lines if " /mosquitto/" in line]


def test_the_broker_and_its_init_are_compose_s(tmp_path: configs.Path) -> None:
    """The rehearsal runs the config file and the one-shot init that docker-compose.yml names."""
    assert configs.broker_config_file() == configs.MOSQUITTO_DIR / "mosquitto-dynsec.conf"
    argv = configs.broker_init_command(tmp_path / "data")
    assert argv[:2] == ["sh", str(configs.MOSQUITTO_DIR / "dynsec-init.sh")]
    assert "-k" in argv and argv[argv.index("-o") + 1] == str(tmp_path / "data")
    env = configs.env_from_example()
    init_env = configs.service_environment("mosquitto-init", env, hosts={})
    assert init_env["PMS_MQTT_ADMIN_PASSWORD"] == env["PMS_MQTT_ADMIN_PASSWORD"]
    assert init_env["PMS_MQTT_PROVISION_PASSWORD"] == env["PMS_MQTT_PROVISION_PASSWORD"]


def test_device_manager_takes_its_provisioning_settings_from_compose() -> None:
    """No rehearsal-only settings: compose gives device-manager the broker admin and the provisioning login."""
    env = configs.env_from_example()
    manager = configs.service_environment("device-manager", env, hosts={"mosquitto:1883": "127.0.0.1:1"})
    assert manager["PMS_BROKER_ADMIN_URL"] == f"mqtt://admin:{env['PMS_MQTT_ADMIN_PASSWORD']}@127.0.0.1:1"
    assert manager["PMS_PROVISIONING_USERNAME"] == "provision"
    assert manager["PMS_PROVISIONING_PASSWORD"] == env["PMS_MQTT_PROVISION_PASSWORD"]


def test_prometheus_config_scrapes_local_ports_and_sends_to_the_local_alertmanager() -> None:
    targets = {"localhost:9090": "127.0.0.1:1", "alertmanager:9093": "127.0.0.1:2",
               f"api:{API_COMPOSE_PORT}": "127.0.0.1:3",
               **{f"{name}:{port}": f"127.0.0.1:{10 + i}" for i, (name, port) in enumerate(SERVICES.items())}}
    config = yaml.safe_load(configs.prometheus_config(targets, alertmanager="127.0.0.1:2", scrape_interval="1s",
                                                      left_out=LEFT_OUT_JOBS))
    scraped = {t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert scraped == set(targets.values())
    assert {job["job_name"] for job in config["scrape_configs"]}.isdisjoint(LEFT_OUT_JOBS)
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:2"]
    assert config["global"]["scrape_interval"] == config["global"]["evaluation_interval"] == "1s"
    assert config["rule_files"] == ["alerts.yml"]
    with pytest.raises(configs.ConfigError, match="pms-ingest scrapes"):
        configs.prometheus_config({k: v for k, v in targets.items() if not k.startswith("ingest")},
                                  alertmanager="x", scrape_interval=None, left_out=LEFT_OUT_JOBS)


def test_alert_rules_keep_the_repo_s_for_unless_asked_and_say_what_they_cut() -> None:
    text, changed = configs.alert_rules(for_at_most=None)
    assert text == configs.ALERT_RULES.read_text() and changed == []
    text, changed = configs.alert_rules(for_at_most="5s")
    rules = {r["alert"]: r for g in yaml.safe_load(text)["groups"] for r in g["rules"]}
    assert rules["PMSServiceDown"]["for"] == "5s" and rules["PMSIngestDeadLetters"]["for"] == "0m"
    assert "PMSServiceDown: for 2m -> 5s" in changed


def test_the_throwaway_ca_signs_a_certificate_for_loopback(tmp_path: configs.Path) -> None:
    files = make_throwaway_ca(tmp_path)
    server = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert server.not_valid_after_utc - datetime.datetime.now(datetime.UTC) < datetime.timedelta(days=3)
    assert files.server_key.stat().st_mode & 0o777 == 0o600
    context = ssl.create_default_context(cafile=str(files.ca_cert))
    context.load_cert_chain(files.server_cert, files.server_key)  # the key matches the certificate
