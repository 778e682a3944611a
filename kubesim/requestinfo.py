"""What a request is, in RBAC terms: verb, API group, resource, subresource, namespace, name.

Mirrors k8s.io/apiserver/pkg/endpoints/request.RequestInfoFactory so the request log says
exactly what an RBAC Role would have to allow.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

_NAMESPACE_SUBRESOURCES = {"status", "finalize"}
_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "GET": "get", "HEAD": "get"}


@dataclass(frozen=True)
class RequestInfo:
    """The parsed target of one request."""

    is_resource: bool
    verb: str
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    prefix: str = ""  # "api", "apis" or "" for non-resource paths


def _truthy(values: list[str] | None) -> bool:
    return bool(values) and values[-1].lower() in ("true", "1")


def parse(method: str, path: str, query: dict[str, list[str]]) -> RequestInfo:
    """Classify a request the way the apiserver's authorizer sees it."""
    parts = [unquote(p) for p in path.strip("/").split("/") if p != ""]
    non_resource = RequestInfo(False, _VERBS.get(method, method.lower()))
    if not parts or parts[0] not in ("api", "apis"):
        return non_resource
    prefix = parts[0]
    if prefix == "api":
        if len(parts) < 2:
            return non_resource
        group, version, rest = "", parts[1], parts[2:]
    else:
        if len(parts) < 3:
            return non_resource
        group, version, rest = parts[1], parts[2], parts[3:]
    if not rest:
        return non_resource
    verb = ""
    if rest[0] == "watch":
        verb, rest = "watch", rest[1:]
    namespace = ""
    if rest and rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0] if rest else ""
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    if not verb:
        if method == "DELETE":
            verb = "delete" if name else "deletecollection"
        elif method in ("GET", "HEAD"):
            verb = "get" if name else "watch" if _truthy(query.get("watch")) else "list"
        else:
            verb = _VERBS.get(method, method.lower())
    return RequestInfo(True, verb, group, version, namespace, resource, sub, name, prefix)
