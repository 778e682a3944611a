"""The resource types kubesim serves, and the discovery documents that describe them.

kubectl resolves `sts`, `pvc`, `deploy`, `cm`, `ep` and the `/scale` subresources from these
documents, so names, short names, verbs and kinds match a v1.32 API server's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
SERVER_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-kubesim",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2024-12-11T00:00:00Z",
    "goVersion": "go1.23.3",
    "compiler": "gc",
    "platform": "linux/amd64",
}


@dataclass(frozen=True)
class ResourceType:
    """One served resource: where it lives and what it is called."""

    plural: str
    singular: str
    kind: str
    group: str
    version: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = tuple(ALL_VERBS)
    subresources: tuple[str, ...] = ("status",)
    has_generation: bool = False
    # Served from a CustomResourceDefinition: list items keep kind and apiVersion, every
    # non-metadata change bumps the generation, strategic merge patch is 415.
    custom: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version

    @property
    def list_kind(self) -> str:
        return self.kind + "List"


NAMESPACES = ResourceType(
    "namespaces",
    "namespace",
    "Namespace",
    "",
    "v1",
    namespaced=False,
    short_names=("ns",),
    verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
    subresources=("status", "finalize"),
)
NODES = ResourceType(
    "nodes",
    "node",
    "Node",
    "",
    "v1",
    namespaced=False,
    short_names=("no",),
    subresources=("status",),
)
PODS = ResourceType(
    "pods",
    "pod",
    "Pod",
    "",
    "v1",
    namespaced=True,
    short_names=("po",),
    categories=("all",),
)
PVCS = ResourceType(
    "persistentvolumeclaims",
    "persistentvolumeclaim",
    "PersistentVolumeClaim",
    "",
    "v1",
    namespaced=True,
    short_names=("pvc",),
)
CONFIGMAPS = ResourceType(
    "configmaps",
    "configmap",
    "ConfigMap",
    "",
    "v1",
    namespaced=True,
    short_names=("cm",),
    subresources=(),
)
ENDPOINTS = ResourceType(
    "endpoints",
    "endpoints",
    "Endpoints",
    "",
    "v1",
    namespaced=True,
    short_names=("ep",),
    subresources=(),
)
DEPLOYMENTS = ResourceType(
    "deployments",
    "deployment",
    "Deployment",
    "apps",
    "v1",
    namespaced=True,
    short_names=("deploy",),
    categories=("all",),
    subresources=("scale", "status"),
    has_generation=True,
)
STATEFULSETS = ResourceType(
    "statefulsets",
    "statefulset",
    "StatefulSet",
    "apps",
    "v1",
    namespaced=True,
    short_names=("sts",),
    categories=("all",),
    subresources=("scale", "status"),
    has_generation=True,
)
HPAS = ResourceType(
    "horizontalpodautoscalers",
    "horizontalpodautoscaler",
    "HorizontalPodAutoscaler",
    "autoscaling",
    "v2",
    namespaced=True,
    short_names=("hpa",),
    categories=("all",),
    has_generation=False,
)
SNAPSHOT_GROUP = "snapshot.storage.k8s.io"
# The external-snapshotter's CRDs (client/config/crd): v1 is the only served version.
VOLUMESNAPSHOTS = ResourceType(
    "volumesnapshots",
    "volumesnapshot",
    "VolumeSnapshot",
    SNAPSHOT_GROUP,
    "v1",
    namespaced=True,
    short_names=("vs",),
    has_generation=True,
    custom=True,
)
VOLUMESNAPSHOTCLASSES = ResourceType(
    "volumesnapshotclasses",
    "volumesnapshotclass",
    "VolumeSnapshotClass",
    SNAPSHOT_GROUP,
    "v1",
    namespaced=False,
    short_names=("vsclass", "vsclasses"),
    subresources=(),
    has_generation=True,
    custom=True,
)
VOLUMESNAPSHOTCONTENTS = ResourceType(
    "volumesnapshotcontents",
    "volumesnapshotcontent",
    "VolumeSnapshotContent",
    SNAPSHOT_GROUP,
    "v1",
    namespaced=False,
    short_names=("vsc", "vscs"),
    has_generation=True,
    custom=True,
)

TYPES: tuple[ResourceType, ...] = (
    NAMESPACES,
    NODES,
    PODS,
    PVCS,
    CONFIGMAPS,
    ENDPOINTS,
    DEPLOYMENTS,
    STATEFULSETS,
    HPAS,
    VOLUMESNAPSHOTS,
    VOLUMESNAPSHOTCLASSES,
    VOLUMESNAPSHOTCONTENTS,
)
BY_PATH: dict[tuple[str, str, str], ResourceType] = {
    (t.group, t.version, t.plural): t for t in TYPES
}
BY_KIND: dict[tuple[str, str], ResourceType] = {(t.api_version, t.kind): t for t in TYPES}
BY_PLURAL: dict[str, ResourceType] = {t.plural: t for t in TYPES}

# Groups as /apis lists them: (group, versions, preferred).
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("apps", ("v1",)),
    ("autoscaling", ("v2",)),
    (SNAPSHOT_GROUP, ("v1",)),
)


def lookup(group: str, version: str, plural: str) -> ResourceType | None:
    """The resource type served at /apis/{group}/{version}/{plural}, if any."""
    return BY_PATH.get((group, version, plural))


def resolve(name: str) -> ResourceType:
    """A resource type from a plural, singular, short name or kind (for the Python API)."""
    low = name.lower()
    for t in TYPES:
        if low in (t.plural, t.singular, t.kind.lower()) or low in t.short_names:
            return t
    raise KeyError(f"kubesim does not serve a resource called {name!r}")


def _resource_entry(t: ResourceType) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": t.plural,
        "singularName": t.singular,
        "namespaced": t.namespaced,
        "kind": t.kind,
        "verbs": list(t.verbs),
    }
    if t.short_names:
        entry["shortNames"] = list(t.short_names)
    if t.categories:
        entry["categories"] = list(t.categories)
    return entry


def _subresource_entry(t: ResourceType, sub: str) -> dict[str, Any]:
    if sub == "scale":
        return {
            "name": f"{t.plural}/scale",
            "singularName": t.singular,
            "namespaced": t.namespaced,
            "group": "autoscaling",
            "version": "v1",
            "kind": "Scale",
            "verbs": ["get", "patch", "update"],
        }
    if sub == "finalize":
        return {
            "name": f"{t.plural}/finalize",
            "singularName": t.singular,
            "namespaced": t.namespaced,
            "kind": t.kind,
            "verbs": ["update"],
        }
    return {
        "name": f"{t.plural}/{sub}",
        "singularName": t.singular,
        "namespaced": t.namespaced,
        "kind": t.kind,
        "verbs": ["get", "patch", "update"],
    }


def resource_list(group: str, version: str) -> dict[str, Any] | None:
    """The APIResourceList for /api/v1 or /apis/{group}/{version}, or None if not served."""
    types = [t for t in TYPES if t.group == group and t.version == version]
    if not types:
        return None
    resources: list[dict[str, Any]] = []
    for t in types:
        resources.append(_resource_entry(t))
        for sub in t.subresources:
            resources.append(_subresource_entry(t, sub))
    gv = f"{group}/{version}" if group else version
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }


def api_versions(server_address: str) -> dict[str, Any]:
    """The /api document (APIVersions)."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _group_entry(name: str, versions: tuple[str, ...]) -> dict[str, Any]:
    vs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": vs, "preferredVersion": vs[0]}


def api_group_list() -> dict[str, Any]:
    """The /apis document (APIGroupList)."""
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group_entry(name, versions) for name, versions in GROUPS],
    }


def api_group(name: str) -> dict[str, Any] | None:
    """The /apis/{group} document (APIGroup), or None if not served."""
    for group, versions in GROUPS:
        if group == name:
            return {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(group, versions)}
    return None
