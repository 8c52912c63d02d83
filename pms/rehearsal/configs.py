"""The repository's production configs, rendered for one machine: loopback, free ports, a scratch folder.

Each function reads the deploy/ file (or docker-compose.yml) and changes only what cannot be the same
outside containers: host names become 127.0.0.1, ports become free ones, the containers' paths become
the scratch folder's. What a rendering changes on purpose (scrape interval, `for` durations) is an
argument, and the rehearsal prints it.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = DEPLOY / "env.example"
MOSQUITTO_DIR = DEPLOY / "mosquitto"
PROVISIONING_ACL = MOSQUITTO_DIR / "acl-provisioning"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
ALERT_RULES = DEPLOY / "prometheus" / "alerts.yml"
ALERTMANAGER_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"
DASHBOARDS = DEPLOY / "grafana" / "dashboards"
DYNSEC_PLUGIN = Path("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so")

# Left empty on purpose: an empty sim password means no `sim` login (no demo profile here), an empty
# weather key means the keyless provider.
_EMPTY_ON_PURPOSE = {"PMS_SIM_MQTT_PASSWORD", "PMS_WEATHER_API_KEY"}
_SECRET_NAME = re.compile(r"(PASSWORD|TOKEN|API_KEY)$")


class ConfigError(ValueError):
    """A production config does not have the shape the rendering expects."""


def env_from_example(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """deploy/env.example with every empty secret filled as its comment says (`openssl rand -hex 24`)."""
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#") or "=" not in line:
            continue
        name, value = line.split("=", 1)
        name = name.strip()
        if not value and _SECRET_NAME.search(name) and name not in _EMPTY_ON_PURPOSE:
            value = secrets.token_hex(24)
        env[name] = value
    return env


def write_env_file(env: Mapping[str, str], path: Path) -> None:
    path.write_text("".join(f"{name}={value}\n" for name, value in env.items()))
    path.chmod(0o600)


_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's `${NAME}`, `${NAME:-default}`, `${NAME-default}`, `${NAME:?message}` and `$$`."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group(1), match.group(2), match.group(3) or ""
        current = env.get(name)
        if op in (":-", "-"):
            return (current if current else arg) if op == ":-" else (arg if current is None else current)
        if op in (":?", "?") and not current:
            raise ConfigError(f"docker-compose.yml needs {name}: {arg}")
        return current or ""

    return _VARIABLE.sub(substitute, value)


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def service_environment(name: str, env: Mapping[str, str], *, hosts: Mapping[str, str]) -> dict[str, str]:
    """The environment docker-compose.yml gives service `name`, with the .env values and `hosts`
    (compose `host:port` → local `127.0.0.1:port`) put in."""
    service = compose()["services"][name]
    rendered: dict[str, str] = {}
    for key, value in (service.get("environment") or {}).items():
        text = interpolate(str(value), env)
        for compose_host, local in hosts.items():
            text = text.replace(f"@{compose_host}", f"@{local}").replace(f"//{compose_host}", f"//{local}")
        rendered[key] = text
    return rendered


def api_command(port: int) -> list[str]:
    """The API container's gunicorn arguments (entrypoint + command), bound to loopback on `port`."""
    service = compose()["services"]["api"]
    argv = [*service["entrypoint"], *service["command"]]
    if argv[0] != "gunicorn":
        raise ConfigError(f"the api container no longer runs gunicorn ({argv[0]}); update pms.rehearsal")
    bound = [arg if not arg.startswith("--bind=") else f"--bind=127.0.0.1:{port}" for arg in argv[1:]]
    if bound == argv[1:]:
        raise ConfigError("the api container's command has no --bind=; update pms.rehearsal")
    return bound


# Where compose mounts deploy/mosquitto in the broker and in its one-shot init, and the broker's data volume.
_BROKER_CONFIG_MOUNT = "/mosquitto/config/"
_BROKER_INIT_MOUNT = "/pms-init/"
_BROKER_DATA = "/mosquitto/data"


def broker_config_file() -> Path:
    """The deploy/mosquitto file compose's `mosquitto` runs (`mosquitto -c /mosquitto/config/<file>`)."""
    command = [str(arg) for arg in compose()["services"]["mosquitto"].get("command") or []]
    if "-c" not in command or command.index("-c") + 1 >= len(command):
        raise ConfigError("compose's mosquitto has no `-c <config>` command; update pms.rehearsal")
    path = command[command.index("-c") + 1]
    if not path.startswith(_BROKER_CONFIG_MOUNT):
        raise ConfigError(f"compose's mosquitto reads {path}, not a file of deploy/mosquitto; update pms.rehearsal")
    return MOSQUITTO_DIR / path.removeprefix(_BROKER_CONFIG_MOUNT)


def broker_init_command(data: Path) -> list[str]:
    """The one-shot `mosquitto-init` of compose (deploy/mosquitto/dynsec-init.sh and its arguments), with
    the broker's data volume at `data`."""
    argv = [str(arg) for arg in compose()["services"]["mosquitto-init"]["entrypoint"]]
    scripts = [i for i, arg in enumerate(argv) if arg.startswith(_BROKER_INIT_MOUNT)]
    if argv[:1] != ["/bin/sh"] or len(scripts) != 1:
        raise ConfigError(f"compose's mosquitto-init runs {argv}, not `/bin/sh {_BROKER_INIT_MOUNT}<script>`; "
                          "update pms.rehearsal")
    argv[scripts[0]] = str(MOSQUITTO_DIR / argv[scripts[0]].removeprefix(_BROKER_INIT_MOUNT))
    return ["sh", *(str(data) if arg == _BROKER_DATA else arg for arg in argv[1:])]


def mosquitto_config(*, plain_port: int, tls_port: int, folder: Path, ca_cert: Path, server_cert: Path,
                     server_key: Path) -> str:
    """The broker config compose runs (deploy/mosquitto/mosquitto-dynsec.conf) with its TLS listener switched
    on, both listeners on loopback (the services' plain one stands for the compose network), and the
    container's paths: the data volume is `folder`/data, the config mount `folder`."""
    conf = broker_config_file()
    text = conf.read_text()
    tls_block = re.search(r"^#listener 8883\n(?:#.*\n)+", text, flags=re.MULTILINE)
    if tls_block is None or "\nlistener 1883\n" not in text:
        raise ConfigError(f"{conf} has no `listener 1883` and commented `#listener 8883` block")
    tls = "".join(line[1:] + "\n" for line in tls_block.group(0).splitlines())
    tls = (tls.replace("listener 8883", f"listener {tls_port} 127.0.0.1")
           .replace("/mosquitto/certs/server.crt", str(server_cert))
           .replace("/mosquitto/certs/server.key", str(server_key))
           .replace("/mosquitto/certs/ca.crt", str(ca_cert)))
    text = text.replace(tls_block.group(0), tls)
    text = text.replace("\nlistener 1883\n", f"\nlistener {plain_port} 127.0.0.1\n")
    # Directive by directive: a scratch folder's own path may contain "/mosquitto/data/".
    values = {
        "plugin": ("/usr/lib/mosquitto_dynamic_security.so", str(DYNSEC_PLUGIN)),
        "plugin_opt_config_file": ("/mosquitto/data/dynamic-security.json",
                                   str(folder / "data" / "dynamic-security.json")),
        "password_file": ("/mosquitto/data/passwords", str(folder / "data" / "passwords")),
        "acl_file": ("/mosquitto/config/acl-provisioning", str(folder / "acl-provisioning")),
        "persistence_location": ("/mosquitto/data/", str(folder / "data") + "/"),
    }
    lines = text.splitlines()
    for directive, (container_path, local) in values.items():
        line = f"{directive} {container_path}"
        if line not in lines:
            raise ConfigError(f"{conf} no longer has `{line}`; update pms.rehearsal")
        lines[lines.index(line)] = f"{directive} {local}"
    text = "\n".join(lines) + "\n"
    return text


def prometheus_config(targets: Mapping[str, str], *, alertmanager: str, scrape_interval: str | None,
                      left_out: set[str]) -> str:
    """deploy/prometheus/prometheus.yml with each `compose-name:port` target replaced by its local address
    (`targets`), jobs of parts that do not run here (`left_out`) removed, and optionally a shorter
    scrape and evaluation interval."""
    config: dict[str, Any] = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    if scrape_interval is not None:
        config["global"]["scrape_interval"] = scrape_interval
        config["global"]["evaluation_interval"] = scrape_interval
        config["global"]["scrape_timeout"] = scrape_interval
    jobs = []
    for job in config["scrape_configs"]:
        if job["job_name"] in left_out:
            continue
        for static in job["static_configs"]:
            missing = [t for t in static["targets"] if t not in targets]
            if missing:
                raise ConfigError(f"prometheus.yml job {job['job_name']} scrapes {missing}, which the rehearsal "
                                  "does not run; update pms.rehearsal")
            static["targets"] = [targets[t] for t in static["targets"]]
        jobs.append(job)
    config["scrape_configs"] = jobs
    for manager in config["alerting"]["alertmanagers"]:
        for static in manager["static_configs"]:
            static["targets"] = [alertmanager]
    return yaml.safe_dump(config, sort_keys=False)


_UNITS_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_s(text: str) -> float:
    parts = re.findall(r"(\d+)(ms|s|m|h|d)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ConfigError(f"not a Prometheus duration: {text!r}")
    return sum(int(n) * _UNITS_S[u] for n, u in parts)


def alert_rules(*, for_at_most: str | None) -> tuple[str, list[str]]:
    """deploy/prometheus/alerts.yml, with every `for` longer than `for_at_most` cut to it; the text and
    one line per alert changed."""
    text = ALERT_RULES.read_text()
    if for_at_most is None:
        return text, []
    limit_s = duration_s(for_at_most)
    rules: dict[str, Any] = yaml.safe_load(text)
    changed = []
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "alert" in rule and duration_s(rule.get("for", "0s")) > limit_s:
                changed.append(f"{rule['alert']}: for {rule['for']} -> {for_at_most}")
                rule["for"] = for_at_most
    return yaml.safe_dump(rules, sort_keys=False), changed


def influxdb_config(*, folder: Path, http_port: int, rpc_port: int) -> str:
    """Debian's influxd (1.x) on loopback with authentication on: the services log in with the v1
    user of deploy/env.example, as they do on InfluxDB 2.x's v1 API in compose."""
    return f"""reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{folder / "meta"}"

[data]
  dir = "{folder / "data"}"
  wal-dir = "{folder / "wal"}"
  query-log-enabled = false

[monitor]
  store-enabled = false

[http]
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = true
  log-enabled = false
"""
