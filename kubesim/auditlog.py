"""The API server's audit log: one ``audit.k8s.io/v1`` ``Event`` a line, stage
``ResponseComplete``, as kube-apiserver's log backend writes them at level ``Metadata``.

The ``auditID`` is the client's ``Audit-ID`` header when it sent one (kube-apiserver honours
it too), else a fresh UUID; it is echoed in the ``Audit-Id`` response header. ``user`` comes
from the bearer token (:data:`TOKEN_USERS`, extendable per simulator), ``impersonatedUser``
from ``Impersonate-User`` / ``Impersonate-Group``.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from typing import Any

from .requestinfo import RequestInfo

#: The kubeconfig kubesim writes authenticates with this token, as this user.
TOKEN_USERS = {"kubesim": "kubesim"}
ANONYMOUS = "system:anonymous"


def user_of(authorization: str | None, users: dict[str, str]) -> dict[str, Any]:
    """The ``user`` of an event: the bearer token's user, else the anonymous one."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return {"username": ANONYMOUS, "groups": ["system:unauthenticated"]}
    name = users.get(token.strip(), "system:unknown-token")
    return {"username": name, "groups": ["system:authenticated"]}


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event(
    *,
    audit_id: str,
    info: RequestInfo,
    uri: str,
    headers: Any,
    source_ip: str,
    status: int,
    received: float,
    done: float,
    users: dict[str, str],
) -> dict[str, Any]:
    """One ``Event`` for a request answered with ``status`` (0: no answer was sent)."""
    record: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": audit_id,
        "stage": "ResponseComplete",
        "requestURI": uri,
        "verb": info.verb,
        "user": user_of(headers.get("Authorization"), users),
        "sourceIPs": [source_ip],
        "userAgent": headers.get("User-Agent") or "",
        "responseStatus": {"metadata": {}, "code": status},
        "requestReceivedTimestamp": _stamp(received),
        "stageTimestamp": _stamp(done),
    }
    impersonated = headers.get("Impersonate-User")
    if impersonated:
        record["impersonatedUser"] = {"username": impersonated}
        groups = headers.get_all("Impersonate-Group") if hasattr(headers, "get_all") else None
        if groups:
            record["impersonatedUser"]["groups"] = list(groups)
    if info.resource:
        ref = {
            "resource": info.resource,
            "namespace": info.namespace,
            "name": info.name,
            "apiGroup": info.api_group,
            "apiVersion": info.api_version,
            "subresource": info.subresource,
        }
        record["objectRef"] = {k: v for k, v in ref.items() if v}
    return record


class AuditLog:
    """Appends events to a file, one JSON line each, flushed as written (thread-safe)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - kept open, closed by close()

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self._lock:
            if not self._file.closed:
                self._file.write(line)
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()
