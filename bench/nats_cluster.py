"""A 3-node NATS cluster (MQTT 3.1.1 + JetStream) on loopback, for tests and benches.

    .venv/bin/python bench/nats_cluster.py [--nodes 3]

run as a script, it starts the cluster, prints each node's URLs and waits for Ctrl-C. As a library:

    from nats_cluster import nats_cluster

    with nats_cluster(workdir) as cluster:
        cluster.mqtt_urls        # ["mqtt://127.0.0.1:P1", ...], one per node
        cluster.nats_url         # "nats://127.0.0.1:C1,nats://127.0.0.1:C2,..." (PMS_NATS_URL)
        cluster.kill(1)          # SIGKILL node 1 (its JetStream directory stays)
        cluster.restart(1)       # start it again on the same ports and directory, wait until it is current
        cluster.pids()           # nats-server pids, for CPU/RSS figures

Every node runs Debian's `nats-server` with the repo's own node configuration
(deploy/nats/node.conf), its values given in the environment, on free loopback ports, with its own
JetStream directory under `workdir`. The context waits until every node answers /healthz (JetStream
current, a meta leader elected) and stops every node it started on leaving.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from _support import REPO, BenchError, end_cleanly_on_sigterm, stop_process

from pms_common.ports import listener_port  # below the ephemeral range: a killed node keeps its ports free

NODE_CONF = REPO / "deploy" / "nats" / "node.conf"


def nats_server_binary() -> str:
    """Debian's nats-server (/usr/sbin is not on every user's PATH)."""
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not Path(binary).exists():
        raise BenchError("nats-server is not installed (scripts/test-services.sh installs Debian's)")
    return binary


@dataclass
class NatsNode:
    """One node: its ports, its JetStream directory, its log and (while it runs) its process."""

    index: int
    name: str
    client_port: int
    cluster_port: int
    mqtt_port: int
    monitor_port: int
    store: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def mqtt_url(self) -> str:
        return f"mqtt://127.0.0.1:{self.mqtt_port}"

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.client_port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def unhealthy(self, serving_only: bool = False) -> str | None:
        """Why /healthz is not ok (None when it is). In full, ok means every stream and consumer on
        this node is current with the cluster; `serving_only` asks only that the server and its
        JetStream run (the readiness probe of deploy/k8s/nats.yaml)."""
        query = "?js-enabled-only=true" if serving_only else ""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor_port}/healthz{query}",
                                        timeout=2) as answer:
                body = json.load(answer)
        except urllib.error.HTTPError as exc:  # 503 carries the reason
            try:
                body = json.load(exc)
            except ValueError:
                return f"HTTP {exc.code}"
        except (OSError, ValueError) as exc:
            return f"no answer ({exc})"
        return None if body.get("status") == "ok" else str(body.get("error") or body)

    def meta_leader(self) -> str | None:
        """The JetStream meta leader this node knows of (None while there is none)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor_port}/jsz", timeout=2) as answer:
                leader = json.load(answer).get("meta_cluster", {}).get("leader")
        except (OSError, ValueError):
            return None
        return str(leader) if leader else None


class NatsCluster:
    """The running cluster: its nodes' URLs, and killing or restarting one of them."""

    def __init__(self, workdir: Path, nodes: int = 3) -> None:
        self.workdir = workdir
        self.nodes: list[NatsNode] = []
        for index in range(nodes):
            name = f"pms-nats-{index}"
            node_dir = workdir / name
            node_dir.mkdir(parents=True, exist_ok=True)
            self.nodes.append(NatsNode(index=index, name=name, client_port=0, cluster_port=0, mqtt_port=0,
                                       monitor_port=0, store=node_dir / "jetstream",
                                       log=node_dir / "nats-server.log"))
        self._choose_ports()

    def _choose_ports(self) -> None:
        """Free ports, distinct across the nodes (a port probed free may be handed out twice)."""
        chosen: set[int] = set()

        def one() -> int:
            while (port := listener_port()) in chosen:
                pass
            chosen.add(port)
            return port

        for node in self.nodes:
            node.client_port, node.cluster_port, node.mqtt_port, node.monitor_port = one(), one(), one(), one()

    # ---- addresses --------------------------------------------------------------------------------
    @property
    def mqtt_urls(self) -> list[str]:
        return [node.mqtt_url for node in self.nodes]

    @property
    def nats_urls(self) -> list[str]:
        return [node.nats_url for node in self.nodes]

    @property
    def nats_url(self) -> str:
        """Every node's NATS URL, comma-separated: the form PMS_NATS_URL takes."""
        return ",".join(self.nats_urls)

    def pids(self) -> list[int]:
        """The pids of the nodes running now."""
        return [node.proc.pid for node in self.nodes if node.proc is not None and node.running]

    # ---- life -------------------------------------------------------------------------------------
    def _environment(self, node: NatsNode) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "PMS_NATS_NAME": node.name,
            "PMS_NATS_HOST": "127.0.0.1",
            "PMS_NATS_CLIENT_PORT": str(node.client_port),
            "PMS_NATS_CLUSTER_PORT": str(node.cluster_port),
            "PMS_NATS_MQTT_PORT": str(node.mqtt_port),
            "PMS_NATS_MONITOR_PORT": str(node.monitor_port),
            "PMS_NATS_STORE": str(node.store),
        })
        # The template names three routes; a cluster of fewer nodes repeats the last one.
        routes = [f"nats://127.0.0.1:{other.cluster_port}" for other in self.nodes]
        for slot in range(3):
            env[f"PMS_NATS_ROUTE_{slot + 1}"] = routes[min(slot, len(routes) - 1)]
        return env

    def _spawn(self, node: NatsNode) -> None:
        with node.log.open("ab") as out:
            node.proc = subprocess.Popen([nats_server_binary(), "-c", str(NODE_CONF)],
                                         env=self._environment(node), stdout=out, stderr=subprocess.STDOUT)

    def start(self, timeout_s: float = 60, serving_only: bool = False) -> None:
        """Start every node and return once the cluster is ready (see wait_ready). On a busy machine
        another process may take a probed port before the node binds it: then all start again on
        new ports (three tries)."""
        for attempt in range(3):
            for node in self.nodes:
                self._spawn(node)
            try:
                self.wait_ready(timeout_s, serving_only=serving_only)
                return
            except BenchError as exc:
                if attempt == 2 or "address already in use" not in str(exc):
                    raise
                self.stop()
                self._choose_ports()

    def wait_ready(self, timeout_s: float = 60, nodes: list[NatsNode] | None = None,
                   serving_only: bool = False) -> None:
        """Return once every running node (or those given) is healthy (see NatsNode.unhealthy) and
        knows a meta leader. On a timeout the error names each node's reason before the logs."""
        deadline = time.monotonic() + timeout_s
        waiting = nodes if nodes is not None else [node for node in self.nodes if node.proc is not None]
        while True:
            for node in waiting:
                if node.proc is not None and node.proc.poll() is not None:
                    raise BenchError(f"{node.name} exited with {node.proc.returncode}:\n{self._tail(node)}")
            reasons = {node.name: node.unhealthy(serving_only) or ("" if node.meta_leader() else "no meta leader")
                       for node in waiting}
            if not any(reasons.values()):
                return
            if time.monotonic() > deadline:
                raise BenchError(
                    f"the NATS cluster was not ready in {timeout_s:g} s: "
                    + "; ".join(f"{name}: {reason or 'ready'}" for name, reason in reasons.items()) + "\n"
                    + "\n".join(f"--- {node.name}\n{self._tail(node)}" for node in waiting))
            time.sleep(0.2)

    def kill(self, index: int, sig: int = signal.SIGKILL) -> None:
        """End node `index` with `sig` (default SIGKILL: a crash, not a clean shutdown) and wait for it."""
        node = self.nodes[index]
        if node.proc is not None and node.proc.poll() is None:
            node.proc.send_signal(sig)
            node.proc.wait(timeout=30)

    def restart(self, index: int, timeout_s: float = 60) -> None:
        """Start node `index` again (same ports, same JetStream directory) and wait until it is current."""
        node = self.nodes[index]
        if node.running:
            self.kill(index)
        self._spawn(node)
        self.wait_ready(timeout_s, nodes=[node])

    def stop(self) -> None:
        """Stop every node this cluster started (SIGTERM, then SIGKILL after a while)."""
        for node in self.nodes:
            if node.proc is not None:
                stop_process(node.proc, timeout_s=10)

    @staticmethod
    def _tail(node: NatsNode) -> str:
        try:
            return node.log.read_text(errors="replace")[-3000:]
        except OSError:
            return ""


@contextmanager
def nats_cluster(workdir: Path, nodes: int = 3, timeout_s: float = 60) -> Iterator[NatsCluster]:
    """A running cluster of `nodes` nodes under `workdir`, stopped on leaving."""
    cluster = NatsCluster(workdir, nodes)
    try:
        cluster.start(timeout_s)
        yield cluster
    finally:
        cluster.stop()


def main() -> None:
    end_cleanly_on_sigterm()
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pms-nats-") as scratch, \
            nats_cluster(Path(scratch), args.nodes) as cluster:
        for node in cluster.nodes:
            print(f"{node.name}: {node.mqtt_url}  {node.nats_url}  monitor http://127.0.0.1:{node.monitor_port}  "
                  f"pid {node.proc.pid if node.proc else '-'}")
        print(f"PMS_NATS_URL={cluster.nats_url}")
        print("Ctrl-C stops the cluster")
        with suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()
