"""Server-side printing: meta.k8s.io/v1 Tables, which `kubectl get` asks for.

The columns and cell values follow pkg/printers/internalversion/printers.go, so `kubectl get
pods` shows READY, STATUS, RESTARTS and AGE as against a real cluster.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from . import resources as R
from .selectors import format_label_selector
from .snapshotkinds import PRINTER_COLUMNS
from .util import human_duration, parse_rfc3339

Row = list[Any]


def _col(
    name: str, description: str = "", priority: int = 0, fmt: str = "", typ: str = "string"
) -> dict[str, Any]:
    return {
        "name": name,
        "type": typ,
        "format": fmt,
        "description": description,
        "priority": priority,
    }


_NAME = _col("Name", "Name must be unique within a namespace.", fmt="name")
_AGE = _col(
    "Age",
    "CreationTimestamp is a timestamp representing the server time when this object was created.",
)


def _age(obj: dict[str, Any]) -> str:
    ts = obj["metadata"].get("creationTimestamp")
    if not ts:
        return "<unknown>"
    return human_duration(time.time() - parse_rfc3339(ts))


def _containers(obj: dict[str, Any]) -> tuple[str, str]:
    spec = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    cs = spec.get("containers") or []
    return ",".join(c.get("name", "") for c in cs), ",".join(c.get("image", "") for c in cs)


def pod_status_reason(pod: dict[str, Any]) -> str:
    """The STATUS column of `kubectl get pods`."""
    status = pod.get("status") or {}
    if pod["metadata"].get("deletionTimestamp"):
        return "Terminating"
    phase = status.get("phase") or "Pending"
    if phase == "Pending" and (pod.get("spec") or {}).get("nodeName"):
        return "ContainerCreating"
    if phase == "Succeeded":
        return "Completed"
    if phase == "Failed":
        return "Error"
    return phase


def _pod_row(pod: dict[str, Any]) -> Row:
    status = pod.get("status") or {}
    cs = status.get("containerStatuses") or []
    total = len((pod.get("spec") or {}).get("containers") or [])
    ready = sum(1 for c in cs if c.get("ready"))
    restarts = sum(int(c.get("restartCount") or 0) for c in cs)
    return [
        pod["metadata"]["name"],
        f"{ready}/{total}",
        pod_status_reason(pod),
        str(restarts),
        _age(pod),
        status.get("podIP") or "<none>",
        (pod.get("spec") or {}).get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        "<none>",
    ]


_MODES = {
    "ReadWriteOnce": "RWO",
    "ReadOnlyMany": "ROX",
    "ReadWriteMany": "RWX",
    "ReadWriteOncePod": "RWOP",
}


def _pvc_row(pvc: dict[str, Any]) -> Row:
    spec, status = pvc.get("spec") or {}, pvc.get("status") or {}
    phase = (
        "Terminating"
        if pvc["metadata"].get("deletionTimestamp")
        else status.get("phase", "Pending")
    )
    bound = status.get("phase") == "Bound"
    return [
        pvc["metadata"]["name"],
        phase,
        spec.get("volumeName", ""),
        (status.get("capacity") or {}).get("storage", "") if bound else "",
        ",".join(_MODES.get(m, m) for m in (status.get("accessModes") or [])) if bound else "",
        spec.get("storageClassName") or "<unset>",
        spec.get("volumeAttributesClassName") or "<unset>",
        _age(pvc),
        spec.get("volumeMode", ""),
    ]


def _sts_row(sts: dict[str, Any]) -> Row:
    spec, status = sts.get("spec") or {}, sts.get("status") or {}
    names, images = _containers(sts)
    return [
        sts["metadata"]["name"],
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
        _age(sts),
        names,
        images,
    ]


def _deploy_row(dep: dict[str, Any]) -> Row:
    spec, status = dep.get("spec") or {}, dep.get("status") or {}
    names, images = _containers(dep)
    return [
        dep["metadata"]["name"],
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
        status.get("updatedReplicas", 0),
        status.get("availableReplicas", 0),
        _age(dep),
        names,
        images,
        format_label_selector(spec.get("selector")),
    ]


def _ns_row(ns: dict[str, Any]) -> Row:
    return [ns["metadata"]["name"], (ns.get("status") or {}).get("phase", ""), _age(ns)]


def _node_row(node: dict[str, Any]) -> Row:
    ready = next(
        (c for c in (node.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"),
        {},
    )
    status = "Ready" if ready.get("status") == "True" else "NotReady"
    if (node.get("spec") or {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    labels = node["metadata"].get("labels") or {}
    roles = sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/"))
    info = (node.get("status") or {}).get("nodeInfo") or {}
    return [
        node["metadata"]["name"],
        status,
        ",".join(roles) or "<none>",
        _age(node),
        info.get("kubeletVersion", ""),
    ]


def _hpa_row(hpa: dict[str, Any]) -> Row:
    spec, status = hpa.get("spec") or {}, hpa.get("status") or {}
    ref = spec.get("scaleTargetRef") or {}
    return [
        hpa["metadata"]["name"],
        f"{ref.get('kind', '')}/{ref.get('name', '')}",
        "cpu: <unknown>/80%",
        str(spec.get("minReplicas", 1)),
        spec.get("maxReplicas", 0),
        status.get("currentReplicas", 0),
        _age(hpa),
    ]


def _configmap_row(cm: dict[str, Any]) -> Row:
    return [
        cm["metadata"]["name"],
        len(cm.get("data") or {}) + len(cm.get("binaryData") or {}),
        _age(cm),
    ]


def _host_port(ip: str, port: Any) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"  # net.JoinHostPort


def format_endpoints(ep: dict[str, Any], most: int = 3) -> str:
    """The ENDPOINTS column: ready `ip:port`s, the first three, then `+ N more...`."""
    subsets = ep.get("subsets") or []
    if not subsets:
        return "<none>"
    shown: list[str] = []
    count = 0
    for ss in subsets:
        addresses = [a.get("ip", "") for a in ss.get("addresses") or []]
        ports = ss.get("ports") or []
        for port in ports or [None]:  # a headless service's subset may have no ports
            count += len(addresses)
            for ip in addresses:
                if len(shown) == most:
                    break
                shown.append(ip if port is None else _host_port(ip, port.get("port")))
    text = ",".join(shown)
    return f"{text} + {count - most} more..." if count > most else text


def _endpoints_row(ep: dict[str, Any]) -> Row:
    return [ep["metadata"]["name"], format_endpoints(ep), _age(ep)]


_LAYOUTS: dict[str, tuple[list[dict[str, Any]], Callable[[dict[str, Any]], Row]]] = {
    "pods": (
        [
            _NAME,
            _col("Ready", "The aggregate readiness state of this pod for accepting traffic."),
            _col("Status", "The aggregate status of the containers in this pod."),
            _col(
                "Restarts",
                "The number of times the containers in this pod have been "
                "restarted and when the last container in this pod has restarted.",
            ),
            _AGE,
            _col("IP", "IP address allocated to the pod. Routable at least within the cluster.", 1),
            _col("Node", "Name of the node this pod is assigned to.", 1),
            _col("Nominated Node", "Name of the node where the pod is nominated.", 1),
            _col("Readiness Gates", "Readiness gates of the pod.", 1),
        ],
        _pod_row,
    ),
    "persistentvolumeclaims": (
        [
            _NAME,
            _col("Status", "Phase represents the current phase of PersistentVolumeClaim."),
            _col(
                "Volume",
                "VolumeName is the binding reference to the PersistentVolume backing this claim.",
            ),
            _col("Capacity", "Represents the actual resources of the underlying volume."),
            _col(
                "Access Modes",
                "AccessModes contains the desired access modes the volume should have.",
            ),
            _col("StorageClass", "StorageClassName of the claim."),
            _col("VolumeAttributesClass", "VolumeAttributesClassName of the claim."),
            _AGE,
            _col("VolumeMode", "Defines what type of volume is required by the claim.", 1),
        ],
        _pvc_row,
    ),
    "statefulsets": (
        [
            _NAME,
            _col("Ready", "Number of the pod with ready state"),
            _AGE,
            _col("Containers", "Names of each container in the template.", 1),
            _col("Images", "Images referenced by each container in the template.", 1),
        ],
        _sts_row,
    ),
    "deployments": (
        [
            _NAME,
            _col("Ready", "Number of the pod with ready state"),
            _col(
                "Up-to-date",
                "Total number of non-terminated pods targeted by "
                "this deployment that have the desired template spec.",
                typ="integer",
            ),
            _col(
                "Available",
                "Total number of available pods (ready for "
                "at least minReadySeconds) targeted by this deployment.",
                typ="integer",
            ),
            _AGE,
            _col("Containers", "Names of each container in the template.", 1),
            _col("Images", "Images referenced by each container in the template.", 1),
            _col(
                "Selector",
                "Label selector for pods. Existing ReplicaSets whose pods are selected "
                "by this will be the ones affected by this deployment.",
                1,
            ),
        ],
        _deploy_row,
    ),
    "namespaces": (
        [_NAME, _col("Status", "The status of the namespace"), _AGE],
        _ns_row,
    ),
    "configmaps": (
        [
            _NAME,
            _col(
                "Data",
                "Data contains the configuration data. Each key must consist of alphanumeric "
                "characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the "
                "BinaryData field. The keys stored in Data must not overlap with the keys in the "
                "BinaryData field, this is enforced during validation process.",
            ),
            _AGE,
        ],
        _configmap_row,
    ),
    "endpoints": (
        [
            _NAME,
            _col(
                "Endpoints",
                "The set of all endpoints is the union of all subsets. Addresses are placed into "
                "subsets according to the IPs they share. A single address with multiple ports, "
                "some of which are ready and some of which are not (because they come from "
                "different containers) will result in the address being displayed in different "
                "subsets for the different ports. No address will appear in both Addresses and "
                "NotReadyAddresses in the same subset. Sets of addresses and ports that comprise "
                "a service.",
            ),
            _AGE,
        ],
        _endpoints_row,
    ),
    "nodes": (
        [
            _NAME,
            _col("Status", "The status of the node"),
            _col("Roles", "The roles of the node"),
            _AGE,
            _col("Version", "Kubelet Version reported by the node."),
        ],
        _node_row,
    ),
    "horizontalpodautoscalers": (
        [
            _NAME,
            _col("Reference", "Reference to the target object"),
            _col("Targets", "Current and desired state of the metrics"),
            _col("MinPods", "Minimum number of replicas"),
            _col("MaxPods", "Maximum number of replicas", typ="integer"),
            _col("Replicas", "Current number of replicas", typ="integer"),
            _AGE,
        ],
        _hpa_row,
    ),
}


def _printer_cell(obj: dict[str, Any], typ: str, path: tuple[str, ...]) -> Any:
    """A cell of an additionalPrinterColumn: nil where the path finds nothing, a date as
    its age (the CRD table convertor's cellForJSONValue)."""
    value: Any = obj
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    if value is None:
        return None
    if typ == "date":
        try:
            return human_duration(time.time() - parse_rfc3339(value))
        except (TypeError, ValueError):
            return None
    if typ == "string":
        return value if isinstance(value, str) else str(value)
    return value


def _printer_layout(plural: str) -> tuple[list[dict[str, Any]], Callable[..., Row]]:
    columns = PRINTER_COLUMNS[plural]
    defs = [_NAME] + [_col(name, desc, typ=typ) for name, typ, _, desc in columns]

    def row(obj: dict[str, Any]) -> Row:
        return [obj["metadata"]["name"]] + [
            _printer_cell(obj, typ, path) for _, typ, path, _ in columns
        ]

    return defs, row


_LAYOUTS.update({plural: _printer_layout(plural) for plural in PRINTER_COLUMNS})


def _row_object(obj: dict[str, Any], include: str | None) -> dict[str, Any] | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj["metadata"],
    }


def table(
    rt: R.ResourceType,
    objs: list[dict[str, Any]],
    resource_version: str,
    include_object: str | None,
    headers: bool = True,
) -> dict[str, Any]:
    """A Table of `objs` with the columns `kubectl get` shows for the resource type."""
    columns, row_of = _LAYOUTS.get(
        rt.plural, ([_NAME, _AGE], lambda o: [o["metadata"]["name"], _age(o)])
    )
    rows = []
    for obj in objs:
        row: dict[str, Any] = {"cells": row_of(obj)}
        ro = _row_object(obj, include_object)
        if ro is not None:
            row["object"] = ro
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": columns if headers else [],
        "rows": rows,
    }
