"""What every kind's checks are built from: name rules, `details.causes` entries worded as
the apiserver's field errors, the Go types the decoder checks, and the ObjectMeta rules
(labels, annotations, finalizers, ownerReferences) that apply to every object.

The messages follow k8s.io/apimachinery/pkg/util/validation and pkg/api/validation
(objectmeta.go); `kinds.py` and the modules of the newer kinds (`configkinds.py`) use them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import resources as R
from .errors import cause
from .selectors import label_key_error, label_value_error

Cause = dict[str, str]


def _no_default(obj: dict[str, Any], creating: bool) -> None:
    return None


def _no_causes(*objs: dict[str, Any]) -> list[Cause]:
    return []


def _as_is(obj: dict[str, Any]) -> None:
    return None


@dataclass(frozen=True)
class KindRules:
    """How the apiserver decodes, defaults, validates and stores one kind, for kinds that
    live in modules of their own (`configkinds.RULES`); `kinds.py` dispatches to them.

    `schema` is the decoding schema (see `kinds.check_decodable`); `default` fills defaults
    in place; `validate` and `validate_update` return `details.causes` beyond the ObjectMeta
    rules; `canonicalize` rewrites a valid object into the form the registry stores.
    """

    schema: dict[str, Any]
    default: Callable[[dict[str, Any], bool], None] = _no_default
    validate: Callable[[dict[str, Any]], list[Cause]] = _no_causes
    validate_update: Callable[[dict[str, Any], dict[str, Any]], list[Cause]] = _no_causes
    canonicalize: Callable[[dict[str, Any]], None] = _as_is


# --- names ---------------------------------------------------------------------------------

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
DNS_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


def dns_label_errors(value: str) -> list[str]:
    """Reasons `value` is not a DNS-1123 label (namespace and container names)."""
    errs = []
    if len(value) > 63:
        errs.append("must be no more than 63 characters")
    if not _DNS_LABEL.match(value):
        errs.append(DNS_LABEL_MSG)
    return errs


def dns_subdomain_errors(value: str) -> list[str]:
    """Reasons `value` is not a DNS-1123 subdomain (most object names)."""
    errs = []
    if len(value) > 253:
        errs.append("must be no more than 253 characters")
    if not _DNS_SUBDOMAIN.match(value):
        errs.append(DNS_SUBDOMAIN_MSG)
    return errs


def path_segment_errors(value: str) -> list[str]:
    """Reasons `value` cannot be a path segment name (HPA names)."""
    if value in (".", ".."):
        return [f"may not be '{value}'"]
    for bad in ("/", "%"):
        if bad in value:
            return [f"may not contain '{bad}'"]
    return []


def name_errors(rt: R.ResourceType, name: str) -> list[str]:
    """The name rule of each kind (pkg/apis/*/validation Validate*Name)."""
    if rt is R.NAMESPACES:
        return dns_label_errors(name)
    if rt is R.HPAS:
        return path_segment_errors(name)
    return dns_subdomain_errors(name)


# --- causes --------------------------------------------------------------------------------


def q(value: Any) -> str:
    """A value as field.Invalid prints it (Go %#v for the common cases)."""
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        inner = ", ".join(f"{q(k)}:{q(v)}" for k, v in sorted(value.items()))
        return "map[string]string{" + inner + "}"
    if value is None:
        return "null"
    return str(value)


def go_pointer(gotype: str, value: Any) -> str:
    """A pointer field inside a %#v: `(*T)(nil)`, or an address (never the same twice in Go)."""
    return f"(*{gotype})(nil)" if value is None else f"(*{gotype})(0xc000100000)"


def inv(field: str, value: Any, why: str) -> Cause:
    """field.Invalid."""
    return cause("Invalid", field, f"Invalid value: {q(value)}: {why}")


def req(field: str, detail: str = "") -> Cause:
    """field.Required."""
    return cause("Required", field, f"Required value: {detail}" if detail else "Required value")


def unsupported(field: str, value: Any, supported: list[str]) -> Cause:
    """field.NotSupported."""
    allowed = ", ".join(q(s) for s in supported)
    return cause(
        "NotSupported", field, f"Unsupported value: {q(value)}: supported values: {allowed}"
    )


def forbid(field: str, why: str) -> Cause:
    """field.Forbidden."""
    return cause("Forbidden", field, f"Forbidden: {why}")


# --- decoding ------------------------------------------------------------------------------

# Go types of the fields we model: a str is a leaf type; a dict is a struct (with "_" naming
# the Go struct); a one-item list is a slice of that element type.
INT32, INT64, STR, BOOL, SMAP, SLIST = "int32", "int64", "string", "bool", "smap", "slist"
# intstr.IntOrString: a JSON string, or a number that fits an int32.
INTSTR = "intstr"

META = {
    "_": "ObjectMeta",
    "name": STR,
    "generateName": STR,
    "namespace": STR,
    "uid": STR,
    "resourceVersion": STR,
    "labels": SMAP,
    "annotations": SMAP,
    "finalizers": SLIST,
    "ownerReferences": [
        {
            "_": "OwnerReference",
            "apiVersion": STR,
            "kind": STR,
            "name": STR,
            "uid": STR,
            "controller": BOOL,
            "blockOwnerDeletion": BOOL,
        }
    ],
    "deletionGracePeriodSeconds": INT64,
}

# --- ObjectMeta ----------------------------------------------------------------------------

# Kinds that may not own anything (apimachinery validation.BannedOwners): group/version, kind.
_BANNED_OWNERS = {("", "v1", "Event"), ("events.k8s.io", "v1", "Event")}


def _group_version(api_version: str) -> tuple[str, str]:
    """schema.ParseGroupVersion, with an unparseable value as ("", "")."""
    if api_version in ("", "/"):
        return "", ""
    slashes = api_version.count("/")
    if slashes == 0:
        return "", api_version
    if slashes == 1:
        group, version = api_version.split("/")
        return group, version
    return "", ""


def _go_owner_reference(ref: dict[str, Any]) -> str:
    """A metav1.OwnerReference as Go's %#v prints it."""
    return (
        f"v1.OwnerReference{{APIVersion:{q(ref.get('apiVersion') or '')}, "
        f"Kind:{q(ref.get('kind') or '')}, Name:{q(ref.get('name') or '')}, "
        f"UID:{q(ref.get('uid') or '')}, "
        f"Controller:{go_pointer('bool', ref.get('controller'))}, "
        f"BlockOwnerDeletion:{go_pointer('bool', ref.get('blockOwnerDeletion'))}}}"
    )


def owner_reference_causes(refs: list[Any]) -> list[Cause]:
    """ValidateOwnerReferences: apiVersion (with a version), kind, name and uid on each, no
    banned owner kind, and at most one reference with `controller: true`."""
    path = "metadata.ownerReferences"
    causes: list[Cause] = []
    first_controller = ""
    for ref in refs:
        if not isinstance(ref, dict):
            continue
        api_version, kind = ref.get("apiVersion") or "", ref.get("kind") or ""
        group, version = _group_version(api_version)
        if not version:
            causes.append(inv(f"{path}.apiVersion", api_version, "version must not be empty"))
        if not kind:
            causes.append(inv(f"{path}.kind", kind, "kind must not be empty"))
        for key in ("name", "uid"):
            if not ref.get(key):
                causes.append(inv(f"{path}.{key}", ref.get(key) or "", f"{key} must not be empty"))
        if (group, version, kind) in _BANNED_OWNERS:
            causes.append(
                cause(
                    "Invalid",
                    path,
                    f"Invalid value: {_go_owner_reference(ref)}: "
                    f"{group}/{version}, Kind={kind} is disallowed from being an owner",
                )
            )
        if ref.get("controller") is True:
            current = f"{kind}/{ref.get('name') or ''}"
            if first_controller:
                shown = ", ".join(_go_owner_reference(r) for r in refs if isinstance(r, dict))
                causes.append(
                    cause(
                        "Invalid",
                        path,
                        f"Invalid value: []v1.OwnerReference{{{shown}}}: Only one reference "
                        'can have Controller set to true. Found "true" in references for '
                        f"{first_controller} and {current}",
                    )
                )
            else:
                first_controller = current
    return causes


def meta_causes(rt: R.ResourceType, meta: dict[str, Any]) -> list[Cause]:
    """ValidateObjectMeta: the name rule of the kind, labels, annotations, owner references
    and finalizers, in that order."""
    causes: list[Cause] = []
    name = meta.get("name") or ""
    if not name:
        causes.append(req("metadata.name", "name or generateName is required"))
    else:
        for why in name_errors(rt, name):
            causes.append(inv("metadata.name", name, why))
    for key, value in (meta.get("labels") or {}).items():
        kerr = label_key_error(key)
        if kerr:
            causes.append(inv("metadata.labels", key, kerr))
        verr = label_value_error(value)
        if verr:
            causes.append(inv("metadata.labels", value, verr))
    for key in meta.get("annotations") or {}:
        kerr = label_key_error(key.lower())
        if kerr:
            causes.append(inv("metadata.annotations", key, kerr))
    causes += owner_reference_causes(meta.get("ownerReferences") or [])
    for i, fin in enumerate(meta.get("finalizers") or []):
        ferr = label_key_error(fin)
        if ferr:
            causes.append(inv(f"metadata.finalizers[{i}]", fin, ferr))
    return causes
