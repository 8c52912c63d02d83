"""One real nats-server (Debian's) with JetStream and an MQTT listener on free loopback ports, for
the tests of the NATS scale path; the 3-node cluster is bench/nats_cluster.py."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from pms_common.ports import listener_port


@dataclass(frozen=True)
class NatsServer:
    client_port: int
    mqtt_port: int

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.client_port}"

    @property
    def mqtt_url(self) -> str:
        return f"mqtt://127.0.0.1:{self.mqtt_port}"


def nats_binary() -> str:
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not Path(binary).exists():
        pytest.fail("nats-server is not installed (scripts/test-services.sh installs it)", pytrace=False)
    return binary


@contextmanager
def nats_server(workdir: Path, extra_conf: str = "", mqtt_conf: str = "") -> Iterator[NatsServer]:
    """A running server; `extra_conf` is added at the top level, `mqtt_conf` inside its mqtt block."""
    server = NatsServer(client_port=listener_port(), mqtt_port=listener_port())
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "nats.conf"
    conf.write_text(f"""
server_name: pms-test
host: 127.0.0.1
port: {server.client_port}
jetstream {{ store_dir: "{workdir / 'jetstream'}" }}
mqtt {{
  host: 127.0.0.1
  port: {server.mqtt_port}
  {mqtt_conf}
}}
{extra_conf}
""")
    log = workdir / "nats.log"
    with log.open("ab") as out:
        proc = subprocess.Popen([nats_binary(), "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        for port in (server.client_port, server.mqtt_port):
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"nats-server exited: {log.read_text(errors='replace')[-2000:]}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"nats-server is not listening: {log.read_text()[-2000:]}") from None
                    time.sleep(0.05)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
