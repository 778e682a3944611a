"""Patroni's pod labelling, emulated for the clusters that ask for it.

Patroni on Kubernetes keeps its leader lock in the annotations of the ConfigMap
`<scope>-leader` (or, with `use_endpoints`, of the Endpoints `<scope>`): `leader` names the
primary's pod, next to `acquireTime`, `renewTime`, `ttl`, `optime` and `transitions`. Every
member labels its own pod with its role: `role=primary` or `role=replica` (`master` before
Patroni 4.0). The pods of a cluster carry the scope label `cluster-name: <scope>`.

No Patroni runs in kubesim, so this controller does the labelling in its place — only for
clusters that opt in: a leader ConfigMap (or Endpoints) annotated
`kubesim.apiops.dev/patroni: "true"`. On every controller pass, for each such scope, every
Running pod of the namespace labelled `cluster-name=<scope>` is labelled `role=primary` if the
`leader` annotation names it and `role=replica` otherwise. A label is written only when it
differs, through the normal write path (a new resourceVersion, a MODIFIED event), so changing
the annotation (`kubectl annotate cm <scope>-leader leader=<pod> --overwrite`) moves the
labels, and a role set by hand on a pod of an opted-in scope is put back, as Patroni would.
Pods that are not Running (Patroni has not started) or are terminating are left as they are;
scopes without the opt-in are never touched, whatever labels people put on their pods.

Not emulated: leader elections, failover when the leader's pod goes away, TTL expiry,
`renewTime` updates, the `status` annotation Patroni writes on its pods.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .store import Store
from .util import clone

OPT_IN = "kubesim.apiops.dev/patroni"
SCOPE_LABEL = "cluster-name"
ROLE_LABEL = "role"
LEADER_ANNOTATION = "leader"
PRIMARY, REPLICA = "primary", "replica"

Save = Callable[[dict[str, Any], dict[str, Any]], None]


@dataclass(frozen=True)
class Scope:
    """One opted-in Patroni cluster: its namespace, scope name and current leader."""

    namespace: str
    name: str
    leader: str


def _opted_in(obj: dict[str, Any]) -> bool:
    return (obj["metadata"].get("annotations") or {}).get(OPT_IN) == "true"


def _scope(obj: dict[str, Any], name: str) -> Scope:
    meta = obj["metadata"]
    leader = (meta.get("annotations") or {}).get(LEADER_ANNOTATION) or ""
    return Scope(meta.get("namespace", ""), name, leader)


def scopes(store: Store) -> list[Scope]:
    """The opted-in clusters; a leader ConfigMap wins over an Endpoints of the same scope."""
    found: dict[tuple[str, str], Scope] = {}
    for ep in store.list("endpoints"):
        if _opted_in(ep):
            scope = _scope(ep, ep["metadata"]["name"])
            found[(scope.namespace, scope.name)] = scope
    for cm in store.list("configmaps"):
        name = cm["metadata"]["name"]
        if name.endswith("-leader") and _opted_in(cm):
            scope = _scope(cm, name.removesuffix("-leader"))
            found[(scope.namespace, scope.name)] = scope
    return list(found.values())


def role_of(pod: dict[str, Any], scope: Scope) -> str | None:
    """The role Patroni would give this pod of the scope, or None while it would not act."""
    if pod["metadata"].get("deletionTimestamp"):
        return None
    if (pod.get("status") or {}).get("phase") != "Running":
        return None
    return PRIMARY if pod["metadata"]["name"] == scope.leader else REPLICA


def label_pods(store: Store, save: Save) -> None:
    """Give every Running pod of every opted-in scope its role label, where it differs."""
    for scope in scopes(store):
        for pod in store.list("pods", scope.namespace):
            labels = pod["metadata"].get("labels") or {}
            if labels.get(SCOPE_LABEL) != scope.name:
                continue
            role = role_of(pod, scope)
            if role is None or labels.get(ROLE_LABEL) == role:
                continue
            new = clone(pod)
            new["metadata"]["labels"] = {**labels, ROLE_LABEL: role}
            save(pod, new)


def leader_configmap(
    scope: str,
    leader: str,
    namespace: str = "default",
    *,
    emulate: bool = True,
    acquire_time: str = "2025-01-01T00:00:00.000000+00:00",
    ttl: int = 30,
) -> dict[str, Any]:
    """A leader ConfigMap as Patroni writes it (annotations are strings), opted in to the
    labelling unless `emulate` is False."""
    annotations = {
        LEADER_ANNOTATION: leader,
        "acquireTime": acquire_time,
        "renewTime": acquire_time,
        "ttl": str(ttl),
        "optime": "50331648",
        "transitions": "0",
    }
    if emulate:
        annotations[OPT_IN] = "true"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"{scope}-leader",
            "namespace": namespace,
            "labels": {SCOPE_LABEL: scope},
            "annotations": annotations,
        },
    }
