"""Settings shared by every service: environment variables with the `PMS_` prefix, or a TOML file.

`PMS_CONFIG=/etc/pms/ingest.toml` names a TOML file whose keys are the field names (`mqtt_url = ...`);
environment variables win over the file.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PMS_", extra="ignore")

    default_metrics_port: ClassVar[int] = 0

    mqtt_url: str = Field(default="mqtt://127.0.0.1:1883", description="mqtt://user:pass@host:1883 or mqtts://")
    mqtt_client_id: str | None = None
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = Field(default=None, description="HTTP port of /metrics and /healthz; 0 = off")
    log_level: str = "INFO"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_path = os.environ.get("PMS_CONFIG")
        if config_path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_path))
        return tuple(sources)

    def resolved_metrics_port(self) -> int:
        return self.default_metrics_port if self.metrics_port is None else self.metrics_port


class StoreSettings(ServiceSettings):
    tsdb_url: str = "sqlite:///var/pms-ts.db"


class RegistrySettings(ServiceSettings):
    registry_url: str = "sqlite:///var/pms.db"
    registry_migrate: bool = Field(
        default=True, description="upgrade the registry's schema at start; false where `pms registry migrate` runs "
        "as a step of its own (a Kubernetes Job): the service then refuses a registry at another schema version")


def describe(settings: BaseSettings) -> dict[str, Any]:
    """Settings for a start-up log line, with passwords in URLs masked."""
    shown: dict[str, Any] = {}
    for name, value in settings.model_dump().items():
        shown_value = value
        if isinstance(value, str) and "://" in value and "@" in value:
            scheme, rest = value.split("://", 1)
            shown_value = f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
        if ("password" in name or name.endswith("api_key")) and value:
            shown_value = "***"
        shown[name] = shown_value
    return shown
