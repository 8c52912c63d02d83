from __future__ import annotations

from pathlib import Path

import pytest

from pms_common.settings import RegistrySettings, ServiceSettings, StoreSettings, describe


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("PMS_"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    settings = ServiceSettings()
    assert settings.mqtt_url == "mqtt://127.0.0.1:1883"
    assert settings.metrics_host == "127.0.0.1"
    assert settings.metrics_port is None
    assert settings.resolved_metrics_port() == 0
    assert StoreSettings().tsdb_url == "sqlite:///var/pms-ts.db"
    assert RegistrySettings().registry_url == "sqlite:///var/pms.db"


def test_env_with_pms_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PMS_MQTT_URL", "mqtt://broker:1884")
    monkeypatch.setenv("PMS_METRICS_PORT", "9100")
    monkeypatch.setenv("MQTT_URL", "mqtt://unprefixed:1")
    settings = ServiceSettings()
    assert settings.mqtt_url == "mqtt://broker:1884"
    assert settings.metrics_port == 9100
    assert settings.resolved_metrics_port() == 9100


def test_resolved_metrics_port_uses_the_class_default() -> None:
    class Svc(ServiceSettings):
        default_metrics_port = 9200

    assert Svc().resolved_metrics_port() == 9200
    assert Svc(metrics_port=0).resolved_metrics_port() == 0


def test_toml_file_named_by_pms_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "svc.toml"
    config.write_text('mqtt_url = "mqtt://from-file:1883"\ntsdb_url = "sqlite:///file.db"\nlog_level = "DEBUG"\n')
    monkeypatch.setenv("PMS_CONFIG", str(config))
    settings = StoreSettings()
    assert settings.mqtt_url == "mqtt://from-file:1883"
    assert settings.tsdb_url == "sqlite:///file.db"
    assert settings.log_level == "DEBUG"


def test_env_wins_over_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "svc.toml"
    config.write_text('mqtt_url = "mqtt://from-file:1883"\nlog_level = "DEBUG"\n')
    monkeypatch.setenv("PMS_CONFIG", str(config))
    monkeypatch.setenv("PMS_MQTT_URL", "mqtt://from-env:1883")
    settings = ServiceSettings()
    assert settings.mqtt_url == "mqtt://from-env:1883"
    assert settings.log_level == "DEBUG"


def test_init_arguments_win_over_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PMS_LOG_LEVEL", "WARNING")
    assert ServiceSettings(log_level="ERROR").log_level == "ERROR"


def test_describe_masks_credentials_in_urls() -> None:
    settings = StoreSettings(mqtt_url="mqtt://user:s3cret@broker:1883",
                             tsdb_url="influxdb://admin:p%40ss@influx:8086/pms")
    shown = describe(settings)
    assert shown["mqtt_url"] == "mqtt://***@broker:1883"
    assert shown["tsdb_url"] == "influxdb://***@influx:8086/pms"
    assert "s3cret" not in repr(shown)
    assert "p%40ss" not in repr(shown)
    assert shown["log_level"] == "INFO"
    assert shown["metrics_port"] is None


def test_describe_leaves_urls_without_credentials() -> None:
    shown = describe(ServiceSettings(mqtt_url="mqtt://broker:1883"))
    assert shown["mqtt_url"] == "mqtt://broker:1883"


def test_describe_masks_password_and_api_key_fields() -> None:
    class Secretive(ServiceSettings):
        db_password: str = "hunter2"
        admin_api_key: str | None = "pms_abc"
        empty_password: str = ""

    shown = describe(Secretive())
    assert shown["db_password"] == "***"
    assert shown["admin_api_key"] == "***"
    assert shown["empty_password"] == ""
