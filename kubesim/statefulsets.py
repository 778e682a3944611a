"""The StatefulSet controller: a mixin of `controllers.Controllers`.

As pkg/controller/statefulset/stateful_set_control.go where a client can see it:

- Members `<sts>-<i>` for the ordinals `[start, start + replicas)`; claims before pods.
  OrderedReady creates the lowest missing ordinal and waits for it to be Ready, and removes
  the highest condemned one and waits until it is gone; Parallel does all at once.
- Revisions: `updateRevision` is `<sts>-<hash of the template>` (a ControllerRevision's
  name; the objects themselves are not served); each pod carries its revision in
  `controller-revision-hash`. A pod is created from the update revision, except below the
  partition of a RollingUpdate, where it is made again from the current revision's template
  (which the controller remembers as a ControllerRevision would keep it).
- RollingUpdate: once every member exists and (OrderedReady) is Ready, the pod with the
  highest ordinal >= `start + partition` that is not at the update revision is deleted, one
  at a time, and the next only once the replacement is Running and Ready. OnDelete replaces
  nothing: a pod deleted by someone comes back at the update revision.
- Status: `replicas` and `readyReplicas` count terminating pods, `currentReplicas` and
  `updatedReplicas` do not; `availableReplicas` are Ready for `minReadySeconds`. Once a
  RollingUpdate has every pod updated and Ready, `currentRevision` becomes `updateRevision`
  (never under OnDelete, as on a real cluster).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from . import resources as R
from .podutil import (
    POD_INDEX_LABEL,
    POD_NAME_LABEL,
    REVISION_LABEL,
    controller_ref,
    finished,
    is_available,
    is_ready,
    next_available,
    terminating,
)
from .util import clone

log = logging.getLogger("kubesim.controllers")


class StatefulSetController:
    """The StatefulSet controller's part of `Controllers` (which provides the store, the
    knobs, `_view`, `_create`, `_delete`, `_save_status`, `_template_hash` and `_due`)."""

    @staticmethod
    def _ordinal(sts_name: str, pod: dict[str, Any]) -> int | None:
        name = pod["metadata"]["name"]
        prefix = sts_name + "-"
        if not name.startswith(prefix) or not name[len(prefix) :].isdigit():
            return None
        return int(name[len(prefix) :])

    def _statefulset(self, current: dict[str, Any]) -> None:
        if terminating(current):
            return
        sts = self._view(current)
        if sts is None:
            return  # the controller has not heard of this StatefulSet yet
        meta, spec = sts["metadata"], sts.get("spec") or {}
        name, uid = meta["name"], meta["uid"]
        replicas = int(spec.get("replicas") if spec.get("replicas") is not None else 1)
        start = int((spec.get("ordinals") or {}).get("start") or 0)
        monotonic = spec.get("podManagementPolicy", "OrderedReady") != "Parallel"
        update_rev = f"{name}-{self._template_hash(sts)}"
        current_rev = (sts.get("status") or {}).get("currentRevision") or update_rev
        templates = self._sts_templates.setdefault(uid, {})
        templates[update_rev] = spec.get("template") or {}
        for rev in [r for r in templates if r not in (update_rev, current_rev)]:
            del templates[rev]  # only the current and the update revision are ever used
        pods: dict[int, dict[str, Any]] = {}
        for pod in self.store.list("pods", meta["namespace"]):
            ref = controller_ref(pod)
            if ref and ref.get("uid") == uid:
                ordinal = self._ordinal(name, pod)
                if ordinal is not None:
                    pods[ordinal] = pod
        wanted = range(start, start + replicas)
        strategy = spec.get("updateStrategy") or {}
        rolling = strategy.get("type", "RollingUpdate") == "RollingUpdate"
        update_min = start + int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
        if not rolling:
            update_min = start  # OnDelete: every pod is made from the update revision
        members_done = self._sts_members(
            sts, pods, wanted, monotonic, update_min, current_rev, update_rev
        )
        if members_done and rolling:
            self._sts_rolling_update(pods, wanted, update_min, update_rev)
        self._sts_status(sts, current_rev, update_rev, rolling)

    def _sts_members(
        self,
        sts: dict[str, Any],
        pods: dict[int, dict[str, Any]],
        wanted: range,
        monotonic: bool,
        update_min: int,
        current_rev: str,
        update_rev: str,
    ) -> bool:
        """Create missing members and remove condemned ones; whether the rolling update may
        run in this pass (OrderedReady: only with every member there and Ready)."""
        templates = self._sts_templates[sts["metadata"]["uid"]]
        for i in wanted:
            pod = pods.get(i)
            if pod is None:
                # newVersionedStatefulSetPod: below the partition, the current revision.
                rev = current_rev if i < update_min and current_rev in templates else update_rev
                self._sts_create_pod(sts, i, rev, templates[rev])
                if monotonic:
                    return False
                continue
            if finished(pod) and not terminating(pod):
                self._delete(R.PODS, pod)  # replaced once gone, as the real controller does
                if monotonic:
                    return False
                continue
            if monotonic and (terminating(pod) or not is_ready(pod)):
                return False
        condemned = sorted((i for i in pods if i not in wanted), reverse=True)
        for i in condemned:
            pod = pods[i]
            if not terminating(pod):
                self._delete(R.PODS, pod)
            if monotonic:
                return False  # one at a time, highest ordinal first; wait until it is gone
        return True

    def _sts_rolling_update(
        self,
        pods: dict[int, dict[str, Any]],
        wanted: range,
        update_min: int,
        update_rev: str,
    ) -> None:
        """Delete the highest member at or above the partition that is not at the update
        revision, and only once every member above it is Running and Ready."""
        for i in reversed(wanted):
            if i < update_min:
                return
            pod = pods.get(i)
            if pod is None:
                return  # just created: not healthy yet
            if (pod["metadata"].get("labels") or {}).get(REVISION_LABEL) != update_rev:
                if not terminating(pod):
                    self._delete(R.PODS, pod)
                return
            if terminating(pod) or not is_ready(pod):
                return  # wait for unhealthy pods on update

    def _sts_create_pod(
        self,
        sts: dict[str, Any],
        ordinal: int,
        revision: str,
        template: dict[str, Any],
    ) -> None:
        """Create the member `ordinal` from `template` (the revision's), its claims first."""
        meta, spec = sts["metadata"], sts.get("spec") or {}
        ns, name = meta["namespace"], meta["name"]
        pod_name = f"{name}-{ordinal}"
        template = clone(template)
        tmeta = template.get("metadata") or {}
        claim_volumes = []
        blocked = False  # a claim could not be created or is being deleted: no pod yet
        retention = spec.get("persistentVolumeClaimRetentionPolicy") or {}
        for tpl in spec.get("volumeClaimTemplates") or []:
            tname = tpl["metadata"]["name"]
            claim = f"{tname}-{name}-{ordinal}"
            existing = self.store.get("persistentvolumeclaims", ns, claim)
            if existing is None:
                labels = dict((tpl.get("metadata") or {}).get("labels") or {})
                labels.update((spec.get("selector") or {}).get("matchLabels") or {})
                pvc: dict[str, Any] = {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "metadata": {"name": claim, "namespace": ns, "labels": labels},
                    "spec": clone(tpl.get("spec") or {}),
                }
                if (tpl.get("metadata") or {}).get("annotations"):
                    pvc["metadata"]["annotations"] = dict(tpl["metadata"]["annotations"])
                if retention.get("whenDeleted") == "Delete":
                    pvc["metadata"]["ownerReferences"] = [_owner_reference(meta)]
                if self._create(R.PVCS, ns, pvc) is None:
                    blocked = True
                    continue
            elif terminating(existing):
                # As createPersistentVolumeClaims: "pvc ... is being deleted" is an error, the
                # other claims are still created, the pod is not, and the set is retried.
                log.debug("pvc %s/%s is being deleted; not creating pod %s", ns, claim, pod_name)
                blocked = True
                continue
            claim_volumes.append({"name": tname, "persistentVolumeClaim": {"claimName": claim}})
        if blocked:
            return
        labels = dict(tmeta.get("labels") or {})
        labels[REVISION_LABEL] = revision
        labels[POD_NAME_LABEL] = pod_name
        labels[POD_INDEX_LABEL] = str(ordinal)
        pod_spec = template.get("spec") or {}
        volumes = [
            v
            for v in pod_spec.get("volumes") or []
            if v.get("name") not in {c["name"] for c in claim_volumes}
        ]
        pod_spec["volumes"] = claim_volumes + volumes
        if not pod_spec["volumes"]:
            del pod_spec["volumes"]
        pod_spec["hostname"] = pod_name
        if spec.get("serviceName"):
            pod_spec["subdomain"] = spec["serviceName"]
        pod_meta: dict[str, Any] = {
            "name": pod_name,
            "generateName": f"{name}-",
            "namespace": ns,
            "labels": labels,
            "ownerReferences": [_owner_reference(meta)],
        }
        if tmeta.get("annotations"):
            pod_meta["annotations"] = dict(tmeta["annotations"])
        self._create(
            R.PODS, ns, {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": pod_spec}
        )

    def _sts_status(
        self, sts: dict[str, Any], current_rev: str, update_rev: str, rolling: bool
    ) -> None:
        """computeReplicaStatus and completeRollingUpdate, on the pods this pass left."""
        meta, spec = sts["metadata"], sts.get("spec") or {}
        pods = [
            p
            for p in self.store.list("pods", meta["namespace"])
            if (controller_ref(p) or {}).get("uid") == meta["uid"]
        ]
        min_ready = int(spec.get("minReadySeconds") or 0)
        now = time.time()
        live = [p for p in pods if not terminating(p)]

        def at(rev: str) -> int:
            return sum(
                1 for p in live if (p["metadata"].get("labels") or {}).get(REVISION_LABEL) == rev
            )

        ready = [p for p in pods if is_ready(p)]
        current, updated = at(current_rev), at(update_rev)
        if rolling and updated == len(pods) and len(ready) == len(pods):
            current_rev, current = update_rev, updated
        if (wait := next_available(ready, min_ready, now)) is not None:
            self._due(time.monotonic() + wait + 0.01)
        status: dict[str, Any] = {
            "observedGeneration": meta.get("generation", 1),
            "replicas": len(pods),
            "readyReplicas": len(ready),
            "currentReplicas": current,
            "updatedReplicas": updated,
            "currentRevision": current_rev,
            "updateRevision": update_rev,
            "collisionCount": 0,
            "availableReplicas": sum(1 for p in ready if is_available(p, min_ready, now)),
        }
        for key in ("readyReplicas", "currentReplicas", "updatedReplicas"):  # omitempty in Go
            if not status[key]:
                del status[key]
        if status != (sts.get("status") or {}):
            self._save_status(R.STATEFULSETS, sts, status)


def _owner_reference(meta: dict[str, Any]) -> dict[str, Any]:
    """The controller reference a StatefulSet puts on its pods (and, to delete them with
    it, its claims)."""
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
