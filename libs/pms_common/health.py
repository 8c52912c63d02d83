"""Health state and the small HTTP server that serves `/metrics` and `/healthz` for a service."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

log = logging.getLogger(__name__)


class Health:
    """Named checks that a service flips as its connections come and go; healthy when all are true."""

    def __init__(self) -> None:
        self._checks: dict[str, bool] = {}
        self._lock = threading.Lock()

    def set(self, name: str, ok: bool) -> None:
        with self._lock:
            self._checks[name] = ok

    def snapshot(self) -> dict[str, bool]:
        with self._lock:
            return dict(self._checks)

    @property
    def ok(self) -> bool:
        checks = self.snapshot()
        return bool(checks) and all(checks.values())


class _Handler(BaseHTTPRequestHandler):
    server: _MetricsServer

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._reply(200, CONTENT_TYPE_LATEST, generate_latest())
        elif path == "/healthz":
            checks = self.server.health.snapshot()
            ok = self.server.health.ok
            body = json.dumps({"status": "ok" if ok else "unavailable", "checks": checks}).encode()
            self._reply(200 if ok else 503, "application/json", body)
        else:
            self._reply(404, "text/plain", b"not found: try /metrics or /healthz\n")

    def _reply(self, code: int, content_type: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        # Scrapes every few seconds would drown the service log.
        return


class _MetricsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], health: Health) -> None:
        self.health = health
        super().__init__(address, _Handler)


def serve_metrics(host: str, port: int, health: Health) -> _MetricsServer:
    """Serve /metrics and /healthz on a daemon thread; port 0 picks a free port (see server_port)."""
    server = _MetricsServer((host, port), health)
    threading.Thread(target=server.serve_forever, name=f"metrics:{server.server_port}", daemon=True).start()
    log.info("metrics and health on http://%s:%d/metrics", host, server.server_port)
    return server
