"""Decoding of the Kubernetes protobuf request bodies kubectl's generators send.

`kubectl create namespace|deployment|configmap` POST their objects as
`application/vnd.kubernetes.protobuf`: the magic `k8s\\0`, then a runtime.Unknown envelope
(type meta plus the raw message). This module knows the field numbers (from the k8s.io/api
generated.proto files) of the messages those generators and `kubectl run` produce —
Namespace, Pod, Deployment, ConfigMap and what they contain — and turns them into the JSON
shape.

Go's gogo-protobuf writes every non-pointer field, zero values included; like the JSON
`omitempty` encoding, zero values are dropped here. A field number this table does not know,
with a non-zero value, makes the body undecodable (415) rather than silently lost.
"""

from __future__ import annotations

import base64
from typing import Any

MAGIC = b"k8s\x00"

# Field kinds: "s" string, "i" varint int, "b" bool, "m:<Msg>" message, "ss" map<string,string>,
# "sq" map<string,Quantity>, "sb" map<string,bytes> (base64 in JSON), "is" IntOrString,
# "t" Time. A trailing "*" means repeated.
STR, INT, BOOL, SMAP, QMAP, BMAP, INTSTR, TIME = "s", "i", "b", "ss", "sq", "sb", "is", "t"

MESSAGES: dict[str, dict[int, tuple[str, str]]] = {
    "Unknown": {
        1: ("typeMeta", "m:TypeMeta"),
        2: ("raw", "raw"),
        3: ("contentEncoding", STR),
        4: ("contentType", STR),
    },
    "TypeMeta": {1: ("apiVersion", STR), 2: ("kind", STR)},
    "ObjectMeta": {
        1: ("name", STR),
        2: ("generateName", STR),
        3: ("namespace", STR),
        4: ("selfLink", STR),
        5: ("uid", STR),
        6: ("resourceVersion", STR),
        7: ("generation", INT),
        8: ("creationTimestamp", TIME),
        9: ("deletionTimestamp", TIME),
        10: ("deletionGracePeriodSeconds", INT),
        11: ("labels", SMAP),
        12: ("annotations", SMAP),
        13: ("ownerReferences", "m:OwnerReference*"),
        14: ("finalizers", STR + "*"),
        17: ("managedFields", "skip"),
    },
    "OwnerReference": {
        1: ("kind", STR),
        3: ("name", STR),
        4: ("uid", STR),
        5: ("apiVersion", STR),
        6: ("controller", BOOL),
        7: ("blockOwnerDeletion", BOOL),
    },
    "Namespace": {
        1: ("metadata", "m:ObjectMeta"),
        2: ("spec", "m:NamespaceSpec"),
        3: ("status", "skip"),
    },
    "NamespaceSpec": {1: ("finalizers", STR + "*")},
    "ConfigMap": {
        1: ("metadata", "m:ObjectMeta"),
        2: ("data", SMAP),
        3: ("binaryData", BMAP),
        4: ("immutable", "b!"),  # a pointer: present means set, even when false
    },
    "Pod": {1: ("metadata", "m:ObjectMeta"), 2: ("spec", "m:PodSpec"), 3: ("status", "skip")},
    "Deployment": {
        1: ("metadata", "m:ObjectMeta"),
        2: ("spec", "m:DeploymentSpec"),
        3: ("status", "skip"),
    },
    "DeploymentSpec": {
        1: ("replicas", "i!"),  # a pointer: present means set, even when 0
        2: ("selector", "m:LabelSelector"),
        3: ("template", "m:PodTemplateSpec"),
        4: ("strategy", "m:DeploymentStrategy"),
        5: ("minReadySeconds", INT),
        6: ("revisionHistoryLimit", "i!"),
        7: ("paused", BOOL),
        9: ("progressDeadlineSeconds", "i!"),
    },
    "DeploymentStrategy": {1: ("type", STR), 2: ("rollingUpdate", "m:RollingUpdateDeployment")},
    "RollingUpdateDeployment": {1: ("maxUnavailable", INTSTR), 2: ("maxSurge", INTSTR)},
    "LabelSelector": {
        1: ("matchLabels", SMAP),
        2: ("matchExpressions", "m:LabelSelectorRequirement*"),
    },
    "LabelSelectorRequirement": {1: ("key", STR), 2: ("operator", STR), 3: ("values", STR + "*")},
    "PodTemplateSpec": {1: ("metadata", "m:ObjectMeta"), 2: ("spec", "m:PodSpec")},
    "PodSpec": {
        2: ("containers", "m:Container*"),
        3: ("restartPolicy", STR),
        4: ("terminationGracePeriodSeconds", "i!"),
        5: ("activeDeadlineSeconds", "i!"),
        6: ("dnsPolicy", STR),
        7: ("nodeSelector", SMAP),
        8: ("serviceAccountName", STR),
        9: ("serviceAccount", STR),
        10: ("nodeName", STR),
        11: ("hostNetwork", BOOL),
        12: ("hostPID", BOOL),
        13: ("hostIPC", BOOL),
        16: ("hostname", STR),
        17: ("subdomain", STR),
        19: ("schedulerName", STR),
        20: ("initContainers", "m:Container*"),
        21: ("automountServiceAccountToken", "b!"),
        24: ("priorityClassName", STR),
        30: ("enableServiceLinks", "b!"),
    },
    "Container": {
        1: ("name", STR),
        2: ("image", STR),
        3: ("command", STR + "*"),
        4: ("args", STR + "*"),
        5: ("workingDir", STR),
        6: ("ports", "m:ContainerPort*"),
        7: ("env", "m:EnvVar*"),
        8: ("resources", "m:ResourceRequirements"),
        13: ("terminationMessagePath", STR),
        14: ("imagePullPolicy", STR),
        16: ("stdin", BOOL),
        17: ("stdinOnce", BOOL),
        18: ("tty", BOOL),
        20: ("terminationMessagePolicy", STR),
    },
    "ContainerPort": {
        1: ("name", STR),
        2: ("hostPort", INT),
        3: ("containerPort", INT),
        4: ("protocol", STR),
        5: ("hostIP", STR),
    },
    "EnvVar": {1: ("name", STR), 2: ("value", STR)},
    "ResourceRequirements": {1: ("limits", QMAP), 2: ("requests", QMAP)},
}
ROOTS = {
    ("v1", "Namespace"): "Namespace",
    ("v1", "Pod"): "Pod",
    ("apps/v1", "Deployment"): "Deployment",
    ("v1", "ConfigMap"): "ConfigMap",
}


class Undecodable(ValueError):
    """The body is not a protobuf message this decoder can map faithfully."""


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(buf):
            raise Undecodable("truncated varint")
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i


def _fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    out: list[tuple[int, int | bytes]] = []
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
            out.append((number, value))
        elif wire == 2:
            length, i = _varint(buf, i)
            if i + length > len(buf):
                raise Undecodable("truncated field")
            out.append((number, buf[i : i + length]))
            i += length
        else:
            raise Undecodable(f"unexpected wire type {wire}")
    return out


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _map_entry(data: bytes, kind: str) -> tuple[str, str]:
    key, value = "", ""
    for number, raw in _fields(data):
        if number == 1 and isinstance(raw, bytes):
            key = raw.decode()
        elif number == 2 and isinstance(raw, bytes):
            if kind == QMAP:
                value = _message("Quantity", raw)
            elif kind == BMAP:
                value = base64.b64encode(raw).decode()
            else:
                value = raw.decode()
    return key, value


def _scalar(kind: str, raw: int | bytes) -> Any:
    base = kind.rstrip("*!")
    if base == STR:
        if not isinstance(raw, bytes):
            raise Undecodable("expected a string")
        return raw.decode()
    if base in (INT, BOOL):
        if not isinstance(raw, int):
            raise Undecodable("expected a varint")
        return bool(raw) if base == BOOL else _signed(raw)
    raise Undecodable(kind)  # pragma: no cover - table kinds are all handled


def _message(name: str, data: bytes) -> Any:
    if name == "Quantity":
        return next(
            (raw.decode() for n, raw in _fields(data) if n == 1 and isinstance(raw, bytes)), ""
        )
    table = MESSAGES[name]
    out: dict[str, Any] = {}
    for number, raw in _fields(data):
        spec = table.get(number)
        if spec is None:
            if raw in (0, b""):
                continue
            raise Undecodable(f"{name} field {number} is not known to kubesim")
        field, kind = spec
        if kind == "skip":
            continue
        if kind == "raw":
            out[field] = raw
            continue
        if kind in (SMAP, QMAP, BMAP):
            if not isinstance(raw, bytes):
                raise Undecodable("expected a map entry")
            k, v = _map_entry(raw, kind)
            out.setdefault(field, {})[k] = v
            continue
        if kind == TIME:
            if isinstance(raw, bytes) and raw:
                raise Undecodable("time stamps in request bodies are not supported")
            continue
        if kind == INTSTR:
            if not isinstance(raw, bytes):
                raise Undecodable("expected IntOrString")
            parts = dict(_fields(raw))
            out[field] = (
                parts.get(3, b"").decode() if parts.get(1) == 1 else _signed(int(parts.get(2, 0)))
            )
            continue
        repeated = kind.endswith("*")
        if kind.startswith("m:"):
            if not isinstance(raw, bytes):
                raise Undecodable("expected a message")
            value = _message(kind[2:].rstrip("*"), raw)
            if not repeated and not value:
                continue
        else:
            value = _scalar(kind, raw)
            if not repeated and not kind.endswith("!") and value in ("", 0, False):
                continue  # omitempty: zero values are absent in JSON
        if repeated:
            out.setdefault(field, []).append(value)
        else:
            out[field] = value
    return out


def decode(body: bytes) -> dict[str, Any]:
    """The JSON-shaped object in a `application/vnd.kubernetes.protobuf` request body."""
    if not body.startswith(MAGIC):
        raise Undecodable("the body does not start with the Kubernetes protobuf magic")
    envelope = _message("Unknown", body[len(MAGIC) :])
    type_meta = envelope.get("typeMeta") or {}
    root = ROOTS.get((type_meta.get("apiVersion", ""), type_meta.get("kind", "")))
    if root is None:
        raise Undecodable(
            f"kubesim cannot decode {type_meta.get('kind', 'this kind')} from protobuf"
        )
    obj = _message(root, envelope.get("raw", b""))
    return {"apiVersion": type_meta["apiVersion"], "kind": type_meta["kind"], **obj}
