"""Field validation against the real Kubernetes schemas, as the apiserver's decoder does it.

A typed API server cannot store a field its Go types lack: unknown fields are dropped with
a `Warning` header (`fieldValidation=Warn`, the default), refused with a 400 when the client
asks for `fieldValidation=Strict` (kubectl does), and silently dropped for `Ignore`. A value
of the wrong JSON type anywhere is a 400 whatever the mode.

The schemas are the v1.32 JSON schemas shipped by the `kubernetes-validate` package (a dev
requirement). Validators are built once per kind and cost about a millisecond per object.
Without the package these checks are skipped and unknown fields are kept.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from . import resources as R
from .errors import bad_request

KUBE_VERSION = f"{R.SERVER_VERSION['major']}.{R.SERVER_VERSION['minor']}"
MODES = ("Ignore", "Warn", "Strict")


@functools.cache
def _validator(kind: str, api_version: str) -> Any | None:
    try:
        import jsonschema
        from kubernetes_validate import utils as kv
        from referencing import Registry, Resource
    except ImportError:  # pragma: no cover - optional dev dependency
        return None
    versions = [v for v in kv.all_versions() if kv.major_minor(v) <= KUBE_VERSION]
    if not versions:  # pragma: no cover
        return None
    schema_dir = f"v{versions[-1]}-local-strict"
    group_version = api_version.replace("/", "-") if "/" in api_version else api_version
    try:
        schema = kv.schema_contents(
            f"kubernetes-json-schema/{schema_dir}/{kind.lower()}-{group_version}.json", KUBE_VERSION
        )
        defs = kv.schema_contents(
            f"kubernetes-json-schema/{schema_dir}/_definitions.json", KUBE_VERSION
        )
    except FileNotFoundError:  # pragma: no cover - every served kind has a schema
        return None
    registry = Resource.from_contents(defs) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.validators.validator_for(schema)(schema, registry=registry)


def _field_path(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def check_fields(kind: str, api_version: str, obj: dict[str, Any], mode: str) -> list[str]:
    """Drop unknown fields from `obj` in place and return the warnings to send.

    Raises ApiError 400 for a mistyped field, and for unknown fields when `mode` is Strict.
    """
    validator = _validator(kind, api_version)
    if validator is None:
        return []
    prefix = f'{kind} in version "{api_version.rsplit("/", 1)[-1]}" cannot be handled as a {kind}: '
    unknown: list[tuple[Any, str, str]] = []  # (container, key, field path)
    for err in validator.iter_errors(obj):
        if err.validator == "type":
            expected = err.validator_value
            if isinstance(expected, list):
                expected = "/".join(t for t in expected if t != "null")
            raise bad_request(
                f"{prefix}json: cannot unmarshal {_json_type(err.instance)} into Go struct field "
                f".{_field_path(err.absolute_path)} of type {expected}"
            )
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            known = set((err.schema.get("properties") or {}).keys())
            base = _field_path(err.absolute_path)
            for key in err.instance:
                if key not in known:
                    unknown.append((err.instance, key, f"{base}.{key}" if base else key))
    if not unknown:
        return []
    fields = sorted({path for _, _, path in unknown})
    if mode == "Strict":
        shown = ", ".join(f'unknown field "{f}"' for f in fields)
        raise bad_request(f"{prefix}strict decoding error: {shown}")
    for container, key, _ in unknown:
        container.pop(key, None)
    return [] if mode == "Ignore" else [f'unknown field "{f}"' for f in fields]


def mode_of(values: list[str] | None) -> str:
    """The fieldValidation mode of a request; an unknown value is a 400 as on a real server."""
    value = values[-1] if values else ""
    if value == "":
        return "Warn"
    if value not in MODES:
        raise bad_request(
            f"fieldValidation parameter unsupported: {value}; "
            f"supported values: {', '.join(json.dumps(m) for m in MODES)}"
        )
    return value


def warning_header(warnings: list[str]) -> dict[str, str]:
    """Warnings as the `Warning: 299 - "..."` header kubectl prints."""
    if not warnings:
        return {}
    return {"Warning": ", ".join("299 - " + json.dumps(w) for w in warnings)}
