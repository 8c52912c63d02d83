"""The gateway install: `pip install .` without extras runs the collector, with no server dependency."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SERVER_PACKAGES = ("flask", "flask_openapi3", "sqlalchemy", "psycopg", "waitress", "gunicorn", "amqtt", "httpx")


@pytest.mark.integration
def test_the_collector_installs_and_runs_without_the_server_extra(tmp_path: Path) -> None:
    venv = tmp_path / "gw"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(REPO)],
                             capture_output=True, text=True, timeout=240)
    assert install.returncode == 0, install.stderr
    listed = subprocess.run([str(python), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True)
    installed = {line.split("==")[0].lower().replace("-", "_") for line in listed.stdout.splitlines()}
    assert not installed & set(SERVER_PACKAGES), installed

    # The real entry point with a bad configuration: a sentence and exit code 2, no traceback.
    run = subprocess.run([str(venv / "bin" / "pms"), "collector"], capture_output=True, text=True, timeout=60,
                         cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "PMS_METRICS_PORT": "0"})
    assert run.returncode == 2
    assert "PMS_BROUTE_ID" in run.stderr and "Traceback" not in run.stderr

    # The whole system and a cloud service with a registry need the server extra: one sentence says how
    # to get it. (Ingest into SQLite needs only the standard library.)
    for command in (["up", "--port", "0", "--mqtt-port", "0"], ["alerts"]):
        run = subprocess.run([str(venv / "bin" / "pms"), *command], capture_output=True, text=True, timeout=60,
                             cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "PMS_METRICS_PORT": "0"})
        assert run.returncode == 2, (command, run.stderr)
        lines = [line for line in run.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "pip install 'pms[server]'" in lines[0], (command, run.stderr)

    imported = subprocess.run(
        [str(python), "-c", "import sys, pms.cli, pms_collector.main, pms_collector.uplink, pms_collector.link;"
                            "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert not set(imported.stdout.split()) & set(SERVER_PACKAGES)
