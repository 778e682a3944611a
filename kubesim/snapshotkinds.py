"""VolumeSnapshots (snapshot.storage.k8s.io/v1) as their CustomResourceDefinitions serve them,
and a PersistentVolumeClaim's `dataSource`/`dataSourceRef` as the core API validates them.

`kinds.py` dispatches to `RULES` for the three snapshot kinds and calls the `pvc_*` helpers
for claims; `tables.py` prints `PRINTER_COLUMNS`. Nothing here touches stored objects (the
controller is `snapshots.py`).

- The CRDs are the external-snapshotter's (client/config/crd): their OpenAPI schemas give the
  422 messages (`spec.source: Required value`, `... in body must be of type string: "integer"`,
  `Unsupported value` for a `deletionPolicy` other than Delete/Retain) and their CEL rules the
  rest (exactly one source, no empty class name, immutable sources). Null fields are pruned.
  Unknown fields are kept (a real server prunes them, with a warning).
- A claim's `dataSource` and `dataSourceRef` mirror each other (NormalizeDataSources); each
  needs a kind and a name, an empty apiGroup only with kind PersistentVolumeClaim, and the two
  must match (ValidatePersistentVolumeClaimSpec).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from . import resources as R
from .errors import cause
from .validation import Cause, KindRules, dns_subdomain_errors, inv, req, unsupported

DEFAULT_CLASS_ANNOTATION = "snapshot.storage.kubernetes.io/is-default-class"
SNAPSHOT_KIND = "VolumeSnapshot"
_POLICIES = ["Delete", "Retain"]

# --- OpenAPI schemas with CEL rules --------------------------------------------------------

Rule = tuple[Callable[[dict[str, Any]], bool], str]
Transition = tuple[Callable[[Any, Any], bool], str]


def _exactly_one(a: str, b: str) -> Rule:
    return (
        lambda o: (a in o) != (b in o),
        f"exactly one of {a} and {b} must be set",
    )


def _kept(key: str) -> Transition:
    return (lambda old, new: key not in old or key in new, f"{key} is required once set")


def _immutable(key: str) -> Transition:
    return (lambda old, new: old == new, f"{key} is immutable")


_STR = {"type": "string"}
_ERROR = {"type": "object", "properties": {"message": _STR, "time": _STR}}
_SNAPSHOT = {
    "type": "object",
    "required": ["spec"],
    "properties": {
        "spec": {
            "type": "object",
            "required": ["source"],
            "properties": {
                "source": {
                    "type": "object",
                    "properties": {
                        "persistentVolumeClaimName": {
                            "type": "string",
                            "transitions": [_immutable("persistentVolumeClaimName")],
                        },
                        "volumeSnapshotContentName": {
                            "type": "string",
                            "transitions": [_immutable("volumeSnapshotContentName")],
                        },
                    },
                    "rules": [
                        _exactly_one("volumeSnapshotContentName", "persistentVolumeClaimName")
                    ],
                    "transitions": [
                        _kept("persistentVolumeClaimName"),
                        _kept("volumeSnapshotContentName"),
                    ],
                },
                "volumeSnapshotClassName": {
                    "type": "string",
                    "rules": [
                        (
                            lambda s: len(s) > 0,
                            "volumeSnapshotClassName must not be the empty string when set",
                        )
                    ],
                },
            },
        },
        "status": {
            "type": "object",
            "properties": {
                "boundVolumeSnapshotContentName": _STR,
                "creationTime": _STR,
                "error": _ERROR,
                "readyToUse": {"type": "boolean"},
                "restoreSize": {"type": "int-or-string"},
                "volumeGroupSnapshotName": _STR,
            },
        },
    },
}
_CLASS = {
    "type": "object",
    "required": ["deletionPolicy", "driver"],
    "properties": {
        "deletionPolicy": {"type": "string", "enum": _POLICIES},
        "driver": _STR,
        "parameters": {"type": "object", "values": _STR},
    },
}
_CONTENT = {
    "type": "object",
    "required": ["spec"],
    "properties": {
        "spec": {
            "type": "object",
            "required": ["deletionPolicy", "driver", "source", "volumeSnapshotRef"],
            "properties": {
                "deletionPolicy": {"type": "string", "enum": _POLICIES},
                "driver": _STR,
                "source": {
                    "type": "object",
                    "properties": {
                        "snapshotHandle": {
                            "type": "string",
                            "transitions": [_immutable("snapshotHandle")],
                        },
                        "volumeHandle": {
                            "type": "string",
                            "transitions": [_immutable("volumeHandle")],
                        },
                    },
                    "rules": [_exactly_one("volumeHandle", "snapshotHandle")],
                    "transitions": [_kept("volumeHandle"), _kept("snapshotHandle")],
                },
                "sourceVolumeMode": {
                    "type": "string",
                    "transitions": [_immutable("sourceVolumeMode")],
                },
                "volumeSnapshotClassName": _STR,
                "volumeSnapshotRef": {
                    "type": "object",
                    "rules": [
                        (
                            lambda r: "name" in r and "namespace" in r,
                            "both spec.volumeSnapshotRef.name and "
                            "spec.volumeSnapshotRef.namespace must be set",
                        )
                    ],
                },
            },
            "transitions": [_kept("sourceVolumeMode")],
        },
        "status": {
            "type": "object",
            "properties": {
                "creationTime": {"type": "integer"},
                "error": _ERROR,
                "readyToUse": {"type": "boolean"},
                "restoreSize": {"type": "integer"},
                "snapshotHandle": _STR,
                "volumeGroupSnapshotHandle": _STR,
            },
        },
    },
}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _type_ok(want: str, got: str) -> bool:
    if want == "int-or-string":
        return got in ("integer", "string")
    return got == want or (want == "number" and got == "integer")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _schema_causes(schema: dict[str, Any], value: Any, path: str) -> list[Cause]:
    """OpenAPI type, enum and required checks, then the x-kubernetes-validations rules."""
    got = _json_type(value)
    want = schema.get("type", "")
    if want and not _type_ok(want, got):
        shown = want if want != "int-or-string" else "integer,string"
        return [
            cause(
                "Invalid",
                path,
                f'Invalid value: "{got}": {path} in body must be of type {shown}: "{got}"',
            )
        ]
    if "enum" in schema and value not in schema["enum"]:
        return [unsupported(path, value, schema["enum"])]
    causes: list[Cause] = []
    if isinstance(value, dict):
        causes += [req(_join(path, k)) for k in schema.get("required", ()) if k not in value]
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                causes += _schema_causes(sub, value[key], _join(path, key))
        if "values" in schema:
            for key, item in value.items():
                causes += _schema_causes(schema["values"], item, f"{path}[{key}]")
    if not causes:
        for rule, message in schema.get("rules", ()):
            if not rule(value):
                causes.append(cause("Invalid", path, f'Invalid value: "{got}": {message}'))
    return causes


def _transition_causes(schema: dict[str, Any], old: Any, new: Any, path: str) -> list[Cause]:
    """The CEL rules with `oldSelf`: they run only where both versions have the field."""
    causes = [
        cause("Invalid", path, f'Invalid value: "{_json_type(new)}": {message}')
        for rule, message in schema.get("transitions", ())
        if not rule(old, new)
    ]
    if isinstance(old, dict) and isinstance(new, dict):
        for key, sub in schema.get("properties", {}).items():
            if key in old and key in new:
                causes += _transition_causes(sub, old[key], new[key], _join(path, key))
    return causes


def _prune_nulls(value: Any) -> None:
    """Null fields are dropped before validation (the CRDs have no nullable fields)."""
    if isinstance(value, dict):
        for key in [k for k, v in value.items() if v is None and k != "metadata"]:
            del value[key]
        for key, item in value.items():
            if key != "metadata":
                _prune_nulls(item)
    elif isinstance(value, list):
        for item in value:
            _prune_nulls(item)


def _rules(schema: dict[str, Any]) -> KindRules:
    def body(obj: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in obj.items() if k not in ("metadata", "apiVersion", "kind")}

    return KindRules(
        schema={},  # a CRD's type errors are 422s from its schema, not decoding errors
        default=lambda obj, creating: _prune_nulls(obj),
        validate=lambda obj: _schema_causes(schema, body(obj), ""),
        validate_update=lambda old, new: _transition_causes(schema, body(old), body(new), ""),
    )


RULES: dict[str, KindRules] = {
    R.VOLUMESNAPSHOTS.kind: _rules(_SNAPSHOT),
    R.VOLUMESNAPSHOTCLASSES.kind: _rules(_CLASS),
    R.VOLUMESNAPSHOTCONTENTS.kind: _rules(_CONTENT),
}

# --- printer columns (the CRDs' additionalPrinterColumns) ---------------------------------

# (name, type, JSON path as keys, description)
PRINTER_COLUMNS: dict[str, list[tuple[str, str, tuple[str, ...], str]]] = {
    "volumesnapshots": [
        (
            "ReadyToUse",
            "boolean",
            ("status", "readyToUse"),
            "Indicates if the snapshot is ready to be used to restore a volume.",
        ),
        (
            "SourcePVC",
            "string",
            ("spec", "source", "persistentVolumeClaimName"),
            "If a new snapshot needs to be created, this contains the name of the source PVC "
            "from which this snapshot was (or will be) created.",
        ),
        (
            "SourceSnapshotContent",
            "string",
            ("spec", "source", "volumeSnapshotContentName"),
            "If a snapshot already exists, this contains the name of the existing "
            "VolumeSnapshotContent object representing the existing snapshot.",
        ),
        (
            "RestoreSize",
            "string",
            ("status", "restoreSize"),
            "Represents the minimum size of volume required to rehydrate from this snapshot.",
        ),
        (
            "SnapshotClass",
            "string",
            ("spec", "volumeSnapshotClassName"),
            "The name of the VolumeSnapshotClass requested by the VolumeSnapshot.",
        ),
        (
            "SnapshotContent",
            "string",
            ("status", "boundVolumeSnapshotContentName"),
            "Name of the VolumeSnapshotContent object to which the VolumeSnapshot object "
            "intends to bind to. Please note that verification of binding actually requires "
            "checking both VolumeSnapshot and VolumeSnapshotContent to ensure both are "
            "pointing at each other. Binding MUST be verified prior to usage of this object.",
        ),
        (
            "CreationTime",
            "date",
            ("status", "creationTime"),
            "Timestamp when the point-in-time snapshot was taken by the underlying storage system.",
        ),
        ("Age", "date", ("metadata", "creationTimestamp"), ""),
    ],
    "volumesnapshotclasses": [
        ("Driver", "string", ("driver",), ""),
        (
            "DeletionPolicy",
            "string",
            ("deletionPolicy",),
            "Determines whether a VolumeSnapshotContent created through the "
            "VolumeSnapshotClass should be deleted when its bound VolumeSnapshot is deleted.",
        ),
        ("Age", "date", ("metadata", "creationTimestamp"), ""),
    ],
    "volumesnapshotcontents": [
        (
            "ReadyToUse",
            "boolean",
            ("status", "readyToUse"),
            "Indicates if the snapshot is ready to be used to restore a volume.",
        ),
        (
            "RestoreSize",
            "integer",
            ("status", "restoreSize"),
            "Represents the complete size of the snapshot in bytes",
        ),
        (
            "DeletionPolicy",
            "string",
            ("spec", "deletionPolicy"),
            "Determines whether this VolumeSnapshotContent and its physical snapshot on the "
            "underlying storage system should be deleted when its bound VolumeSnapshot is "
            "deleted.",
        ),
        (
            "Driver",
            "string",
            ("spec", "driver"),
            "Name of the CSI driver used to create the physical snapshot on the underlying "
            "storage system.",
        ),
        (
            "VolumeSnapshotClass",
            "string",
            ("spec", "volumeSnapshotClassName"),
            "Name of the VolumeSnapshotClass to which this snapshot belongs.",
        ),
        (
            "VolumeSnapshot",
            "string",
            ("spec", "volumeSnapshotRef", "name"),
            "Name of the VolumeSnapshot object to which this VolumeSnapshotContent object is "
            "bound.",
        ),
        (
            "VolumeSnapshotNamespace",
            "string",
            ("spec", "volumeSnapshotRef", "namespace"),
            "Namespace of the VolumeSnapshot object to which this VolumeSnapshotContent object "
            "is bound.",
        ),
        ("Age", "date", ("metadata", "creationTimestamp"), ""),
    ],
}

# --- quantities ---------------------------------------------------------------------------

_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$")
_BINARY = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")
_DECIMAL = ("", "k", "M", "G", "T", "P", "E")
_FACTORS: dict[str, Decimal] = {
    **{s: Decimal(1024**i) for i, s in enumerate(_BINARY)},
    **{s: Decimal(1000**i) for i, s in enumerate(_DECIMAL) if s},
    "m": Decimal("0.001"),
}


def quantity_bytes(text: str) -> int:
    """A resource.Quantity (`10Gi`, `500M`, `1.5Gi`) as a whole number, rounded up."""
    m = _QUANTITY.match(text.strip())
    if not m:
        raise ValueError(f"quantities must match the regular expression: {text!r}")
    try:
        value = Decimal(m.group(1)) * _FACTORS[m.group(2) or ""]
    except InvalidOperation:
        raise ValueError(f"not a quantity: {text!r}") from None
    whole = int(value)
    return whole + 1 if value > whole else whole


def binary_quantity(n: int) -> str:
    """resource.NewQuantity(n, BinarySI).String(): `1Gi`, `1536Mi`; else a decimal form."""
    if n and n % 1024 == 0:
        power = 0
        while n % 1024 == 0 and power < len(_BINARY) - 1:
            n //= 1024
            power += 1
        return f"{n}{_BINARY[power]}"
    power = 0
    while n and n % 1000 == 0 and power < len(_DECIMAL) - 1:
        n //= 1000
        power += 1
    return f"{n}{_DECIMAL[power]}"


# --- PersistentVolumeClaim data sources ---------------------------------------------------


def pvc_normalize_data_sources(spec: dict[str, Any]) -> None:
    """NormalizeDataSources: a claim's `dataSource` and `dataSourceRef` mirror each other."""
    source, ref = spec.get("dataSource"), spec.get("dataSourceRef")
    keys = ("apiGroup", "kind", "name")
    if isinstance(ref, dict):
        # DropDisabledFields: CrossNamespaceVolumeDataSource is an alpha gate, off in v1.32.
        ref.pop("namespace", None)
    if isinstance(source, dict) and ref is None:
        spec["dataSourceRef"] = {k: source[k] for k in keys if k in source}
    elif isinstance(ref, dict) and source is None:
        spec["dataSource"] = {k: ref[k] for k in keys if k in ref}


def _reference_causes(path: str, ref: dict[str, Any]) -> list[Cause]:
    """validateDataSource / validateDataSourceRef."""
    causes = []
    if not ref.get("name"):
        causes.append(req(f"{path}.name"))
    if not ref.get("kind"):
        causes.append(req(f"{path}.kind"))
    group = ref.get("apiGroup") or ""
    if not group and ref.get("kind") != "PersistentVolumeClaim":
        causes.append(
            inv(
                path,
                ref.get("kind") or "",
                "must be 'PersistentVolumeClaim' when referencing the default apiGroup",
            )
        )
    if group:
        causes += [inv(f"{path}.apiGroup", group, why) for why in dns_subdomain_errors(group)]
    return causes


def pvc_data_source_causes(path: str, spec: dict[str, Any]) -> list[Cause]:
    """The data-source part of ValidatePersistentVolumeClaimSpec."""
    source, ref = spec.get("dataSource"), spec.get("dataSourceRef")
    causes: list[Cause] = []
    if isinstance(source, dict):
        causes += _reference_causes(f"{path}.dataSource", source)
    if isinstance(ref, dict):
        causes += _reference_causes(f"{path}.dataSourceRef", ref)
    if isinstance(source, dict) and isinstance(ref, dict):
        keys = ("apiGroup", "kind", "name")
        if any(source.get(k) != ref.get(k) for k in keys):
            causes.append(
                cause(
                    "Invalid", path, f"Invalid value: {path}.dataSource: must match dataSourceRef"
                )
            )
    return causes


def snapshot_source(spec: dict[str, Any]) -> str | None:
    """The name of the VolumeSnapshot a claim is to be restored from, if it names one."""
    ref = spec.get("dataSourceRef") or spec.get("dataSource") or {}
    if ref.get("kind") == SNAPSHOT_KIND and ref.get("apiGroup") == R.SNAPSHOT_GROUP:
        return ref.get("name")
    return None
