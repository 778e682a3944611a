"""A minimal OpenAPI v3 surface: enough for kubectl to validate fields server-side.

kubectl (`apply`, `create`, `replace`) downloads /openapi/v3 to learn whether the server
validates fields itself: when a resource's PATCH operation lists the `fieldValidation` query
parameter, kubectl sends `fieldValidation=Strict` and skips client-side schema validation.
The documents served here carry exactly that (paths with their group-version-kind and
parameters) and no schemas, so kubectl computes apply patches from its built-in types.

The checking itself is in schema.py.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from . import resources as R

_PARAMS = [
    {"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
    for name in ("dryRun", "fieldManager", "fieldValidation", "pretty")
]


def _gv_key(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _gv_doc(group: str, version: str) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for rt in R.TYPES:
        if (rt.group, rt.version) != (group, version):
            continue
        gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
        base = f"/{_gv_key(group, version)}"
        collection = (
            f"{base}/namespaces/{{namespace}}/{rt.plural}"
            if rt.namespaced
            else f"{base}/{rt.plural}"
        )

        def op(action: str, gvk: dict[str, str] = gvk) -> dict[str, Any]:
            return {
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
                "parameters": _PARAMS,
                "responses": {"200": {"description": "OK"}},
            }

        paths[collection] = {"get": op("list"), "post": op("post")}
        paths[f"{collection}/{{name}}"] = {
            "get": op("get"),
            "put": op("put"),
            "patch": op("patch"),
            "delete": op("delete"),
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": R.SERVER_VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": {}},
    }


_DOCS = {_gv_key(t.group, t.version): _gv_doc(t.group, t.version) for t in R.TYPES}
_HASHES = {
    key: hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:64]
    for key, doc in _DOCS.items()
}


def index() -> dict[str, Any]:
    """/openapi/v3: where each group-version's document lives."""
    return {
        "paths": {
            key: {"serverRelativeURL": f"/openapi/v3/{key}?hash={_HASHES[key]}"} for key in _DOCS
        }
    }


def document(key: str) -> dict[str, Any] | None:
    """/openapi/v3/<api/v1 | apis/group/version>, or None."""
    return _DOCS.get(key)
