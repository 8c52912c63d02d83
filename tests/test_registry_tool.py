"""`pms registry migrate|wait` on SQLite and on the real PostgreSQL (a scratch database), and the services'
start with PMS_REGISTRY_MIGRATE=false (the Kubernetes shape: one migration Job, services that wait for it)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pms.cli import main
from pms.registry_tool import migrate, wait
from pms_registry import RegistryError
from pms_registry import schema as t
from pms_registry.core import RegistryCore
from tests.postgres import scratch_database
from tests.registry.v1_fixture import make_v1_registry

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/pms.db"
        return
    with scratch_database("pms_test_registry_tool") as url:
        yield url


def pms(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The command as a Job or an init container runs it: its own process, configured by the environment."""
    env = {**os.environ, "PMS_REGISTRY_URL": url}
    return subprocess.run([sys.executable, "-m", "pms.cli", "registry", *args], env=env, capture_output=True,
                          text=True, timeout=120, cwd=REPO)


def test_migrate_prints_the_schema_version_and_wait_then_passes(registry_url: str) -> None:
    waited = pms(registry_url, "wait", "--timeout", "0")
    assert waited.returncode == 1
    assert f"the registry's schema is version 0, this PMS needs {t.SCHEMA_VERSION}" in waited.stderr

    first = pms(registry_url, "migrate")
    assert first.returncode == 0, first.stderr
    assert first.stdout == f"registry schema version {t.SCHEMA_VERSION} (new registry)\n"
    again = pms(registry_url, "migrate")
    assert again.stdout == f"registry schema version {t.SCHEMA_VERSION} (unchanged)\n"

    waited = pms(registry_url, "wait", "--timeout", "5")
    assert waited.returncode == 0, waited.stderr
    assert waited.stdout == f"registry schema version {t.SCHEMA_VERSION}\n"


def test_migrate_upgrades_an_old_registry(registry_url: str, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    core = RegistryCore(registry_url)
    make_v1_registry(core.engine)
    core.close()
    monkeypatch.setenv("PMS_REGISTRY_URL", registry_url)
    assert main(["registry", "migrate"]) == 0
    assert capsys.readouterr().out == f"registry schema version {t.SCHEMA_VERSION} (was 1)\n"


def test_a_service_that_does_not_migrate_refuses_another_schema_version(registry_url: str) -> None:
    core = RegistryCore(registry_url)
    with pytest.raises(RegistryError, match=r"version 0, this PMS needs .*run `pms registry migrate`"):
        core.prepare(migrate=False)
    assert core.schema_version() == 0, "a service with PMS_REGISTRY_MIGRATE=false creates no table"
    assert migrate(registry_url) == (0, t.SCHEMA_VERSION)
    core.prepare(migrate=False)
    core.close()


def test_wait_returns_once_the_job_has_migrated(registry_url: str) -> None:
    """An init container started before the Job: it waits, and passes as soon as the Job is done."""
    result: list[tuple[bool, str]] = []
    waiter = threading.Thread(target=lambda: result.append(wait(registry_url, timeout_s=60, interval_s=0.05)))
    waiter.start()
    migrate(registry_url)
    waiter.join(timeout=70)
    assert result == [(True, f"registry schema version {t.SCHEMA_VERSION}")]


def test_wait_refuses_a_newer_schema_at_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/pms.db"
    migrate(url)
    core = RegistryCore(url)
    with core.engine.begin() as conn:
        conn.execute(t.schema_version.update().values(version=t.SCHEMA_VERSION + 1))
    core.close()
    ready, seen = wait(url, timeout_s=3600, interval_s=60)  # returns at once: no sleep would end in time
    assert not ready
    assert f"version {t.SCHEMA_VERSION + 1}, newer than this PMS understands" in seen


@pytest.mark.integration
def test_wait_names_an_unreachable_postgresql_when_it_gives_up() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once the socket is closed
    waited = pms(f"postgresql://pms@127.0.0.1:{port}/pms", "wait", "--timeout", "1", "--interval", "0.2")
    assert waited.returncode == 1
    assert waited.stderr.startswith("pms registry wait: the registry is not reachable:")
    assert "Traceback" not in waited.stderr


def test_a_service_started_before_the_job_says_what_to_do(tmp_path: Path) -> None:
    """`pms weather` with PMS_REGISTRY_MIGRATE=false on a registry not yet migrated: one sentence, exit 2."""
    env = {**os.environ, "PMS_REGISTRY_URL": f"sqlite:///{tmp_path}/pms.db", "PMS_REGISTRY_MIGRATE": "false",
           "PMS_METRICS_PORT": "0", "PMS_MQTT_URL": "mqtt://127.0.0.1:9"}
    result = subprocess.run([sys.executable, "-m", "pms.cli", "weather"], env=env, capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"pms weather: the registry's schema is version 0, this PMS needs {t.SCHEMA_VERSION}: "
        "run `pms registry migrate` (or set PMS_REGISTRY_MIGRATE=true)")
    assert "Traceback" not in result.stderr
