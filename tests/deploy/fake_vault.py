"""A small HTTP server on 127.0.0.1 that answers Vault's Kubernetes login and KV v2 read.

Paths, headers and JSON follow Vault's API documentation (``POST /v1/auth/<mount>/login`` with
``{"role", "jwt"}`` answering ``{"auth": {"client_token", ...}}``; ``GET
/v1/<mount>/data/<path>`` with ``X-Vault-Token`` answering ``{"data": {"data": {...},
"metadata": {...}}}``; errors as ``{"errors": [...]}`` with Vault's status codes: 400 bad login
input, 403 permission denied, 404 no such secret, 503 sealed). It exists so the real hvac
client in ``apiops_site.vault`` is exercised over real HTTP, not through a mock.
"""

from __future__ import annotations

import json
import socket
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    token: str | None
    body: dict | None


@dataclass
class VaultState:
    """What the fake Vault knows; tests change it between calls."""

    role: str = "apiops"
    jwt: str = ""
    auth_mount: str = "kubernetes"
    kv_mount: str = "secret"
    # path -> data map of the latest version
    secrets: dict[str, dict[str, object]] = field(default_factory=dict)
    # token -> the KV paths it may read
    policies: dict[str, set[str]] = field(default_factory=dict)
    # paths the token issued by a Kubernetes login may read
    login_policy: set[str] = field(default_factory=set)
    sealed: bool = False
    # seal once this many requests have been answered (e.g. 1: right after the login)
    seal_after: int | None = None
    # while set, every request waits for `release` before answering (a hung Vault)
    hang: bool = False
    # a misbehaving server that echoes the JWT it was sent into its error message
    echo_jwt_in_errors: bool = False
    # answer reads with a KV version 1 shape (no nested data.data)
    kv_v1_shape: bool = False
    requests: list[Recorded] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


class FakeVault:
    """Runs the server in a thread; ``url`` is its address."""

    def __init__(self) -> None:
        self.state = VaultState()
        state = self.state

        class Handler(_VaultHandler):
            vault = state

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # A short poll interval so shutdown() returns promptly at the end of each test.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeVault:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.state.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def grant(self, token: str, *paths: str) -> None:
        """Let ``token`` read the given KV paths (like a Vault policy with ``read``)."""
        self.state.policies.setdefault(token, set()).update(paths)


class _VaultHandler(BaseHTTPRequestHandler):
    vault: VaultState
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Without it a Python server stalls each request on delayed ACKs (see KUBESIM.md).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output quiet."""

    def do_POST(self) -> None:
        self._handle("POST")

    def do_GET(self) -> None:
        self._handle("GET")

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        token = self.headers.get("X-Vault-Token")
        path = self.path.split("?", 1)[0]
        self.vault.requests.append(Recorded(method, path, token, body))
        if self.vault.hang:
            self.vault.release.wait(timeout=30)
            return
        if self.vault.seal_after is not None and len(self.vault.requests) > self.vault.seal_after:
            self.vault.sealed = True
        if self.vault.sealed:
            self._send(503, {"errors": ["Vault is sealed"]})
            return
        login = f"/v1/auth/{self.vault.auth_mount}/login"
        data_prefix = f"/v1/{self.vault.kv_mount}/data/"
        if method == "POST" and path == login:
            self._login(body)
        elif method == "GET" and path.startswith(data_prefix):
            self._read(path.removeprefix(data_prefix), token)
        else:
            self._send(404, {"errors": []})

    def _login(self, body: dict | None) -> None:
        if not isinstance(body, dict) or not body.get("role") or not body.get("jwt"):
            self._send(400, {"errors": ["missing role or jwt"]})
            return
        if body["role"] != self.vault.role:
            self._send(400, {"errors": [f'invalid role name "{body["role"]}"']})
            return
        if body["jwt"] != self.vault.jwt:
            message = "permission denied"
            if self.vault.echo_jwt_in_errors:
                message = f"permission denied for jwt {body['jwt']}"
            self._send(403, {"errors": [message]})
            return
        client_token = f"hvs.{uuid.uuid4().hex}"
        self.vault.policies[client_token] = set(self.vault.login_policy)
        self._send(
            200,
            {
                "request_id": str(uuid.uuid4()),
                "lease_id": "",
                "renewable": False,
                "lease_duration": 0,
                "data": None,
                "wrap_info": None,
                "warnings": None,
                "auth": {
                    "client_token": client_token,
                    "accessor": str(uuid.uuid4()),
                    "policies": ["default", "apiops"],
                    "token_policies": ["default", "apiops"],
                    "metadata": {
                        "role": body["role"],
                        "service_account_name": "apiops",
                        "service_account_namespace": "ops",
                        "service_account_secret_name": "",
                        "service_account_uid": str(uuid.uuid4()),
                    },
                    "lease_duration": 2764800,
                    "renewable": True,
                    "entity_id": str(uuid.uuid4()),
                    "token_type": "service",
                    "orphan": True,
                },
            },
        )

    def _read(self, secret_path: str, token: str | None) -> None:
        allowed = self.vault.policies.get(token or "")
        if allowed is None or secret_path not in allowed:
            self._send(403, {"errors": ["permission denied"]})
            return
        if secret_path not in self.vault.secrets:
            self._send(404, {"errors": []})
            return
        data = self.vault.secrets[secret_path]
        if self.vault.kv_v1_shape:
            payload: dict[str, object] = dict(data)
        else:
            payload = {
                "data": data,
                "metadata": {
                    "created_time": "2025-01-15T10:30:00.000000Z",
                    "custom_metadata": None,
                    "deletion_time": "",
                    "destroyed": False,
                    "version": 1,
                },
            }
        self._send(
            200,
            {
                "request_id": str(uuid.uuid4()),
                "lease_id": "",
                "renewable": False,
                "lease_duration": 0,
                "data": payload,
                "wrap_info": None,
                "warnings": None,
                "auth": None,
            },
        )

    def _send(self, status: int, payload: dict) -> None:
        raw = json.dumps(payload).encode()
        self.send_response(status)
        # Exactly this value: hvac parses an error's "errors" only for application/json.
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)
