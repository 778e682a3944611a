"""The Deployment controller: a mixin of `controllers.Controllers`.

ReplicaSets are not served. The pods of one `pod-template-hash` stand for one ReplicaSet,
whose replicas are its active pods (neither terminating nor finished), created and deleted
at once as an instant ReplicaSet controller would. Over those groups the controller does
what pkg/controller/deployment does where a client can see it:

- RollingUpdate (rolling.go): scale the new group up to `replicas + maxSurge` active pods in
  all, scale old groups down (oldest first, unavailable pods first) as long as
  `replicas - maxUnavailable` pods stay available; a pass that scaled up scales nothing down.
- Recreate (recreate.go): delete every old pod, wait until none is left (terminating ones
  included), then create the new ones.
- Paused: no rollout; without old pods it still scales.
- Status (sync.go, progress.go): `replicas`, `updatedReplicas`, `readyReplicas`,
  `availableReplicas` (Ready for `minReadySeconds`), `unavailableReplicas`; conditions
  Available (MinimumReplicasAvailable) and Progressing (NewReplicaSetCreated,
  ReplicaSetUpdated on every sign of progress, NewReplicaSetAvailable when complete,
  ProgressDeadlineExceeded once `progressDeadlineSeconds` pass without progress; Unknown
  DeploymentPaused/DeploymentResumed); the `deployment.kubernetes.io/revision` annotation.
"""

from __future__ import annotations

import functools
import time
import uuid
from typing import Any

from . import resources as R
from .podutil import (
    REVISION_ANNOTATION,
    TEMPLATE_HASH_LABEL,
    controller_ref,
    finished,
    is_available,
    is_ready,
    next_available,
    ready_since,
    terminating,
)
from .util import clone, parse_rfc3339, random_suffix, rfc3339

NEW_RS_CREATED = "NewReplicaSetCreated"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"


@functools.lru_cache(maxsize=4096)
def rs_uid(deployment_uid: str, pod_hash: str) -> str:
    """The uid of a Deployment's (unserved) ReplicaSet for one template hash: deterministic,
    so pods can be traced back to their Deployment without storing ReplicaSets."""
    return str(uuid.uuid5(uuid.UUID(deployment_uid), pod_hash))


class DeploymentController:
    """The Deployment controller's part of `Controllers` (which provides the store, the
    knobs, `_view`, `_create`, `_delete`, `_save_status`, `_template_hash` and `_due`)."""

    def _deployment(self, current: dict[str, Any]) -> None:
        if terminating(current):
            return
        dep = self._view(current)
        if dep is None:
            return  # the controller has not heard of this Deployment yet
        spec = dep.get("spec") or {}
        collision = int((dep.get("status") or {}).get("collisionCount") or 0)
        pod_hash = self._template_hash(dep, collision)
        revision, new_rs = self._deploy_revision_of(dep, pod_hash)
        replicas = _replicas(spec)
        groups = self._deploy_groups(dep)
        new, old = groups.pop(pod_hash, []), groups
        now = time.time()
        if spec.get("paused"):
            if not old:
                self._deploy_scale_new(dep, pod_hash, new, replicas)
        elif (spec.get("strategy") or {}).get("type") == "Recreate":
            self._deploy_recreate(dep, pod_hash, new, old, replicas)
        else:
            self._deploy_rolling(dep, pod_hash, new, old, replicas, now)
        self._deploy_status(dep, pod_hash, revision, new_rs, now)

    def _deploy_revision_of(self, dep: dict[str, Any], pod_hash: str) -> tuple[int, bool]:
        """The revision number of the template hash and whether its (implicit) ReplicaSet is
        new: the first hash of a new Deployment or a template the controller has not had."""
        uid = dep["metadata"]["uid"]
        stored = int((dep["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION) or 0)
        last_hash, revision = self._deploy_revision.get(uid, ("", 0))
        if last_hash == pod_hash:
            return revision, False
        if not last_hash and stored:
            # First sight of a Deployment that already has a revision (the controller was
            # restarted, or the spec had been observed with observe_delay 0): keep it.
            self._deploy_revision[uid] = (pod_hash, stored)
            return stored, False
        revision = max(revision, stored) + 1
        self._deploy_revision[uid] = (pod_hash, revision)
        return revision, True

    def _deploy_groups(self, dep: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
        """The active pods of each (implicit) ReplicaSet, by template hash."""
        groups: dict[str, list[dict[str, Any]]] = {}
        for p in self._deploy_pods(dep):
            if not terminating(p) and not finished(p):
                h = (p["metadata"].get("labels") or {}).get(TEMPLATE_HASH_LABEL, "")
                groups.setdefault(h, []).append(p)
        return groups

    def _deploy_pods(self, dep: dict[str, Any]) -> list[dict[str, Any]]:
        """Every pod of the Deployment, terminating and finished ones included."""
        meta = dep["metadata"]
        ns = meta["namespace"]
        return [
            p
            for p in self.store.list("pods", ns)
            if (ref := controller_ref(p))
            and ref.get("kind") == "ReplicaSet"
            and self._owned_by(ns, ref, p, meta["uid"])
        ]

    def _deploy_scale_new(
        self,
        dep: dict[str, Any],
        pod_hash: str,
        new: list[dict[str, Any]],
        want: int,
    ) -> bool:
        """Create or delete new pods until there are `want`; whether anything changed."""
        for _ in range(want - len(new)):
            self._deploy_create_pod(dep, pod_hash)
        for p in _deletion_order(new)[: max(0, len(new) - want)]:
            self._delete(R.PODS, p)
        return want != len(new)

    def _deploy_recreate(
        self,
        dep: dict[str, Any],
        pod_hash: str,
        new: list[dict[str, Any]],
        old: dict[str, list[dict[str, Any]]],
        replicas: int,
    ) -> None:
        if old:
            for group in old.values():
                for p in group:
                    self._delete(R.PODS, p)
            return
        for p in self._deploy_pods(dep):
            labels = p["metadata"].get("labels") or {}
            if labels.get(TEMPLATE_HASH_LABEL) != pod_hash and not finished(p):
                return  # oldPodsRunning: wait until the old pods are gone
        self._deploy_scale_new(dep, pod_hash, new, replicas)

    def _deploy_rolling(
        self,
        dep: dict[str, Any],
        pod_hash: str,
        new: list[dict[str, Any]],
        old: dict[str, list[dict[str, Any]]],
        replicas: int,
        now: float,
    ) -> None:
        spec = dep.get("spec") or {}
        surge, unavailable = _rolling_bounds(spec.get("strategy") or {}, replicas)
        min_ready = int(spec.get("minReadySeconds") or 0)
        total = len(new) + sum(len(g) for g in old.values())
        # reconcileNewReplicaSet
        if len(new) > replicas:
            self._deploy_scale_new(dep, pod_hash, new, replicas)
            return
        scale_up = min(replicas + surge - total, replicas - len(new))
        if scale_up > 0:
            self._deploy_scale_new(dep, pod_hash, new, len(new) + scale_up)
            return  # a pass that scaled up does not scale down
        if not old:
            return
        # reconcileOldReplicaSets
        min_available = replicas - unavailable
        new_unavailable = sum(1 for p in new if not is_available(p, min_ready, now))
        max_scaled_down = total - min_available - new_unavailable
        if max_scaled_down <= 0:
            return
        oldest_first = sorted(old.values(), key=lambda g: min(_created(p) for p in g))
        gone: set[str] = set()
        for group in oldest_first:  # cleanupUnhealthyReplicas
            unhealthy = [p for p in group if not is_available(p, min_ready, now)]
            take = min(max_scaled_down - len(gone), len(unhealthy))
            for p in _deletion_order(unhealthy)[: max(0, take)]:
                self._delete(R.PODS, p)
                gone.add(p["metadata"]["uid"])
        available = sum(
            1
            for g in (new, *old.values())
            for p in g
            if p["metadata"]["uid"] not in gone and is_available(p, min_ready, now)
        )
        budget = available - min_available  # scaleDownOldReplicaSetsForRollingUpdate
        for group in oldest_first:
            if budget <= 0:
                break
            left = [p for p in group if p["metadata"]["uid"] not in gone]
            for p in _deletion_order(left)[:budget]:
                self._delete(R.PODS, p)
                budget -= 1

    def _deploy_create_pod(self, dep: dict[str, Any], pod_hash: str) -> None:
        meta, spec = dep["metadata"], dep.get("spec") or {}
        template = clone(spec.get("template") or {})
        tmeta = template.get("metadata") or {}
        rs_name = f"{meta['name']}-{pod_hash}"
        labels = dict(tmeta.get("labels") or {})
        labels[TEMPLATE_HASH_LABEL] = pod_hash
        pod_meta: dict[str, Any] = {
            "name": f"{rs_name}-{random_suffix()}",
            "generateName": f"{rs_name}-",
            "namespace": meta["namespace"],
            "labels": labels,
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": rs_name,
                    "uid": rs_uid(meta["uid"], pod_hash),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        }
        if tmeta.get("annotations"):
            pod_meta["annotations"] = dict(tmeta["annotations"])
        self._create(
            R.PODS,
            meta["namespace"],
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": pod_meta,
                "spec": template.get("spec") or {},
            },
        )

    def _deploy_status(
        self,
        dep: dict[str, Any],
        pod_hash: str,
        revision: int,
        new_rs: bool,
        now: float,
    ) -> None:
        """calculateStatus and syncRolloutStatus, on the pods as this pass left them."""
        meta, spec = dep["metadata"], dep.get("spec") or {}
        replicas = _replicas(spec)
        min_ready = int(spec.get("minReadySeconds") or 0)
        groups = self._deploy_groups(dep)
        active = [p for g in groups.values() for p in g]
        available = sum(1 for p in active if is_available(p, min_ready, now))
        if (wait := next_available(active, min_ready, now)) is not None:
            self._due(time.monotonic() + wait + 0.01)
        status: dict[str, Any] = {
            "observedGeneration": meta.get("generation", 1),
            "replicas": len(active),
            "updatedReplicas": len(groups.get(pod_hash, [])),
            "readyReplicas": sum(1 for p in active if is_ready(p)),
            "availableReplicas": available,
            "unavailableReplicas": max(0, len(active) - available),
        }
        old = dep.get("status") or {}
        if "collisionCount" in old:
            status["collisionCount"] = old["collisionCount"]
        conds = [dict(c) for c in old.get("conditions") or []]
        rs_name = f"{meta['name']}-{pod_hash}"
        deadline = spec.get("progressDeadlineSeconds")
        paused = bool(spec.get("paused"))
        progressing = _find(conds, "Progressing")
        if paused and (progressing or {}).get("reason") != PAUSED:
            conds = _set(conds, "Progressing", "Unknown", PAUSED, "Deployment is paused")
        elif not paused and (progressing or {}).get("reason") == PAUSED:
            conds = _set(conds, "Progressing", "Unknown", RESUMED, "Deployment is resumed")
        if new_rs and deadline is not None and not paused:
            conds = _set(
                conds, "Progressing", "True", NEW_RS_CREATED, f'Created new replica set "{rs_name}"'
            )
        if available >= replicas - _max_unavailable(spec, replicas):
            conds = _set(
                conds,
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
            )
        else:
            conds = _set(
                conds,
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        if deadline is None:
            conds = [c for c in conds if c["type"] != "Progressing"]
        elif not paused:
            conds = self._deploy_progress(dep, status, conds, rs_name, int(deadline), now)
        status["conditions"] = conds
        for key in (
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas",
            "unavailableReplicas",
        ):
            if not status[key]:  # omitempty in Go
                del status[key]
        annotations = meta.get("annotations") or {}
        if status != old or annotations.get(REVISION_ANNOTATION) != str(revision):
            self._save_status(R.DEPLOYMENTS, dep, status, {REVISION_ANNOTATION: str(revision)})

    def _deploy_progress(
        self,
        dep: dict[str, Any],
        status: dict[str, Any],
        conds: list[dict[str, Any]],
        rs_name: str,
        deadline: int,
        now: float,
    ) -> list[dict[str, Any]]:
        """The Progressing condition of syncRolloutStatus (progress.go)."""
        old = dep.get("status") or {}
        replicas = _replicas(dep.get("spec") or {})
        current = _find(conds, "Progressing")
        if (
            status["replicas"] == status["updatedReplicas"]
            and current
            and current.get("reason") == NEW_RS_AVAILABLE
        ):
            return conds  # a finished rollout: nothing to estimate
        complete = (
            status["updatedReplicas"] == replicas
            and status["replicas"] == replicas
            and status["availableReplicas"] == replicas
        )
        if complete:
            return _set(
                conds,
                "Progressing",
                "True",
                NEW_RS_AVAILABLE,
                f'ReplicaSet "{rs_name}" has successfully progressed.',
            )
        old_old = int(old.get("replicas") or 0) - int(old.get("updatedReplicas") or 0)
        if (
            status["updatedReplicas"] > int(old.get("updatedReplicas") or 0)
            or status["replicas"] - status["updatedReplicas"] < old_old
            or status["readyReplicas"] > int(old.get("readyReplicas") or 0)
            or status["availableReplicas"] > int(old.get("availableReplicas") or 0)
        ):
            # Progress: lastUpdateTime moves even when the reason stays ReplicaSetUpdated.
            stamp = rfc3339(now)
            transition = stamp
            if current and current.get("status") == "True":
                transition = current.get("lastTransitionTime", stamp)
            cond = _condition(
                "Progressing", "True", RS_UPDATED, f'ReplicaSet "{rs_name}" is progressing.'
            )
            cond["lastUpdateTime"], cond["lastTransitionTime"] = stamp, transition
            self._due(time.monotonic() + deadline + 1.0)
            return [c for c in conds if c["type"] != "Progressing"] + [cond]
        if current is None or current.get("reason") == TIMED_OUT:
            return conds
        since = parse_rfc3339(current.get("lastUpdateTime") or current["lastTransitionTime"])
        if since + deadline < now:
            return _set(
                conds,
                "Progressing",
                "False",
                TIMED_OUT,
                f'ReplicaSet "{rs_name}" has timed out progressing.',
            )
        # requeueStuckDeployment: look again when the deadline has passed.
        self._due(time.monotonic() + max(0.05, since + deadline - now + 0.05))
        return conds


def _replicas(spec: dict[str, Any]) -> int:
    return int(spec.get("replicas") if spec.get("replicas") is not None else 1)


def _find(conds: list[dict[str, Any]], ctype: str) -> dict[str, Any] | None:
    return next((c for c in conds if c.get("type") == ctype), None)


def _condition(ctype: str, status: str, reason: str, message: str) -> dict[str, Any]:
    stamp = rfc3339()
    return {
        "type": ctype,
        "status": status,
        "lastUpdateTime": stamp,
        "lastTransitionTime": stamp,
        "reason": reason,
        "message": message,
    }


def _set(
    conds: list[dict[str, Any]], ctype: str, status: str, reason: str, message: str
) -> list[dict[str, Any]]:
    """deploymentutil.SetDeploymentCondition: nothing changes when status and reason are the
    same; lastTransitionTime is kept when only the reason changes; the condition goes last."""
    current = _find(conds, ctype)
    if current and current.get("status") == status and current.get("reason") == reason:
        return conds
    cond = _condition(ctype, status, reason, message)
    if current and current.get("status") == status:
        cond["lastTransitionTime"] = current.get("lastTransitionTime", cond["lastTransitionTime"])
    return [c for c in conds if c.get("type") != ctype] + [cond]


def _resolve(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.endswith("%"):
        pct = int(value[:-1])
        exact = total * pct / 100
        return int(-(-exact // 1)) if round_up else int(exact)
    return int(value or 0)


def _rolling_bounds(strategy: dict[str, Any], replicas: int) -> tuple[int, int]:
    """maxSurge and maxUnavailable as absolute numbers (deploymentutil.ResolveFenceposts):
    25 % each by default, surge rounded up, unavailable down, never both 0."""
    ru = strategy.get("rollingUpdate") or {}
    surge = _resolve(ru.get("maxSurge", "25%"), replicas, True)
    unavailable = _resolve(ru.get("maxUnavailable", "25%"), replicas, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def _max_unavailable(spec: dict[str, Any], replicas: int) -> int:
    """deploymentutil.MaxUnavailable: 0 for Recreate and for no replicas, at most replicas."""
    strategy = spec.get("strategy") or {}
    if strategy.get("type") == "Recreate" or replicas == 0:
        return 0
    return min(_rolling_bounds(strategy, replicas)[1], replicas)


def _deletion_order(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Which pods a ReplicaSet removes first (controller.ActivePods ordering): unscheduled,
    then Pending, not Ready, Ready for a shorter time, and newer pods first."""
    rank = {"Pending": 0, "Unknown": 1, "Running": 2}

    def key(p: dict[str, Any]) -> tuple[Any, ...]:
        since = ready_since(p)
        return (
            bool((p.get("spec") or {}).get("nodeName")),
            rank.get((p.get("status") or {}).get("phase", "Pending"), 1),
            since is not None,
            -(since or 0.0),
            -_created(p),
        )

    return sorted(pods, key=key)


def _created(p: dict[str, Any]) -> float:
    ts = p["metadata"].get("creationTimestamp")
    return parse_rfc3339(ts) if ts else 0.0
