"""``python -m jobs.worker --metrics-port N``: the worker's own ``/metrics``, for pods of their own.

Under ``make run`` (and wherever web and worker share a host) the web server's ``/metrics``
already sums the worker's processes: they write to the same ``PROMETHEUS_MULTIPROC_DIR``. In
Kubernetes the worker is a Deployment of its own with its own ``/tmp``, so its supervisor
serves what its processes counted (jobs, steps, pick-up delays, their Kubernetes requests,
notification deliveries), with the same bearer token, for Prometheus to scrape beside the
API pods; the values read from the database come from the API pods alone.

The token is the ``metrics-token`` secret file in ``OPS_SECRETS_DIR`` or ``OPS_METRICS_TOKEN``
(the supervisor runs without Django, so without Vault: mount the file). Plain Python.
"""

from __future__ import annotations

import hmac
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

DEFAULT_SECRETS_DIR = "/vault/secrets"


def metrics_token(environ: dict[str, str] | None = None) -> str | None:
    """The bearer token: the secret file first, then the environment; None when neither."""
    environ = dict(os.environ) if environ is None else environ
    path = Path(environ.get("OPS_SECRETS_DIR") or DEFAULT_SECRETS_DIR) / "metrics-token"
    if path.is_file():
        value = path.read_text(encoding="utf-8").strip()
        if value:
            return value
    return environ.get("OPS_METRICS_TOKEN", "").strip() or None


def _handler(directory: str, token: str | None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/metrics":
                return self._json(404, "not_found", "Only /metrics is served here.")
            if not token:
                return self._json(403, "metrics_disabled", "Set OPS_METRICS_TOKEN.")
            scheme, _, given = self.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), token.encode()
            ):
                return self._json(401, "not_authenticated", "Send the metrics bearer token.")
            registry = CollectorRegistry(auto_describe=False)
            MultiProcessCollector(registry, path=directory)
            body = generate_latest(registry)
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, code: str, detail: str) -> None:
            body = json.dumps({"detail": detail, "code": code}).encode()
            self.send_response(status)
            if status == 401:
                self.send_header("WWW-Authenticate", 'Bearer realm="apiops-metrics"')
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass  # scrapes every few seconds would flood the worker's log

    return Handler


def serve(port: int, host: str = "0.0.0.0") -> ThreadingHTTPServer:  # noqa: S104 - a pod's port
    """Serve ``/metrics`` on ``host:port`` from a daemon thread; returns the server."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        raise SystemExit("--metrics-port needs PROMETHEUS_MULTIPROC_DIR")
    Path(directory).mkdir(parents=True, exist_ok=True)
    server = ThreadingHTTPServer((host, port), _handler(directory, metrics_token()))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True, name="metrics").start()
    return server
