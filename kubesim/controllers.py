"""The cluster's moving parts: StatefulSet and Deployment controllers (their rollouts in
`statefulsets.py` and `deployments.py`), the HPA controller, the garbage and namespace
collectors, the PV binder and PVC-protection controller, a scheduler, a kubelet, and (for the
clusters that opt in) Patroni's pod labelling (`patroni.py`).

They run in one thread that wakes when the store changes, when a timer is due (readiness,
termination, HPA interval), when a test or a knob asks for a pass, and otherwise only every
`tick` as a safety net; an idle cluster therefore costs (almost) nothing. Each pass holds the store
lock, reads the current state and writes only what differs, like a level-triggered
controller; status therefore lags the spec by at least one pass, as on a real cluster.

Behaviour follows pkg/controller/{statefulset,deployment,podautoscaler,garbagecollector,
namespace,volume/pvcprotection} closely where callers can observe it: ordinal order and
readiness gating, claims created before pods and a Terminating claim blocking its pod,
reverse-order scale-down that waits for each pod to be gone, replicas/readyReplicas counting
terminating pods, pvc-protection released only when no scheduled pod references the claim.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import patroni, snapshots
from . import resources as R
from .api import FOREGROUND, ORPHAN, PVC_PROTECTION, Api, DeleteOptions, _gone_when_free
from .deployments import DeploymentController, rs_uid
from .errors import ApiError
from .podutil import (
    TEMPLATE_HASH_LABEL,
    is_ready,
    obj_key,
    set_condition,
    terminating,
)
from .selectors import Requirement, labels_match
from .statefulsets import StatefulSetController
from .store import Store
from .util import clone, rfc3339, template_hash

log = logging.getLogger("kubesim.controllers")

NODE_NAME = "kubesim-node"
HOST_IP = "10.89.0.2"


@dataclass
class Knobs:
    """Timing and fault knobs the controllers read on every pass."""

    ready_delay: float = 1.0
    termination_delay: float = 1.0
    tick: float = 1.0
    hpa_interval: float = 1.0
    # How long after a spec change (a new generation) the workload controllers first act on
    # it: a real controller hears of it through an informer and a work queue, so a client's
    # next request still sees observedGeneration < generation. 0: at the next pass.
    observe_delay: float = 0.0
    never_ready: set[tuple[str, str]] = field(default_factory=set)
    # (namespace, label selector) -> its parsed requirements: the pods it matches never
    # become Ready (for pods whose names are not known in advance, a Deployment's).
    never_ready_selectors: dict[tuple[str, str], list[Requirement]] = field(default_factory=dict)
    stuck_finalizers: set[tuple[str, str]] = field(default_factory=set)
    slow_termination: dict[tuple[str, str], float] = field(default_factory=dict)


class ErrorLog(collections.deque[str]):
    """The newest controller failures (a bounded deque that also takes slices, like a list)."""

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return list(self)[index]
        return super().__getitem__(index)


class Controllers(StatefulSetController, DeploymentController):
    """All controllers, driven by one thread."""

    def __init__(self, store: Store, api: Api, knobs: Knobs, error_log_size: int = 1000) -> None:
        self.store = store
        self.api = api
        self.knobs = knobs
        self._paused = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._scheduled_at: dict[str, float] = {}
        self._terminate_at: dict[str, float] = {}
        self._hpa_next: dict[str, float] = {}
        # Deployment uid -> (the template hash it rolls out, its revision number).
        self._deploy_revision: dict[str, tuple[str, int]] = {}
        # StatefulSet uid -> {revision: template}: its current and update revisions, as
        # ControllerRevisions keep them (a member below the partition is made from the first).
        self._sts_templates: dict[str, dict[str, Any]] = {}
        self._hashes: dict[tuple[str, int, int], str] = {}
        # uid -> the workload's versions as the controllers first saw them, oldest first:
        # (generation, when seen, the stored object). See `_view` and Knobs.observe_delay.
        self._versions: dict[str, list[tuple[int, float, dict[str, Any]]]] = {}
        self._next_due: float | None = None
        self._ip_counter = 10
        self.passes = 0
        self._wanted_passes = 0  # `wait_passes` asks for passes even when nothing changed
        self._kicked = False  # a knob changed or the controllers resumed: run a pass
        self._passed = threading.Condition(self.store.lock)
        # One line per distinct failure (controller, object, error), newest last; bounded.
        self.errors = ErrorLog(maxlen=error_log_size)
        self._failing: dict[tuple[str, str], str] = {}
        self.snapshots = snapshots.SnapshotController(store, api, self._save, self._due)

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()  # restartable after `stop`
        self._thread = threading.Thread(target=self._run, name="kubesim-controllers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.store.touch()
        if self._thread:
            self._thread.join(timeout=5)

    def pause(self) -> None:
        """Freeze the cluster: no controller, scheduler or kubelet acts until `resume`."""
        self._paused.set()

    def resume(self) -> None:
        with self.store.lock:
            self._paused.clear()
            self._kicked = True
            self.store.changed.notify_all()

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    def kick(self) -> None:
        """Run a pass soon (settings changed)."""
        with self.store.lock:
            self._kicked = True
            self.store.changed.notify_all()

    def wait_passes(self, count: int = 1, timeout: float = 5.0) -> int:
        """Block until `count` complete passes have run that all started after this call.

        A test that has just written something and wants to assert what the controllers did
        NOT do (a claim still Terminating, a pod still Pending) waits here first, so the
        assertion is about a pass that saw the write, not about timing. Returns the pass
        counter. Raises AssertionError when the controllers are paused or `timeout` passes.
        """
        deadline = time.monotonic() + timeout
        with self.store.lock:
            # A pass holds the lock from start to end, so none is half-way now.
            target = self.passes + count
            self._wanted_passes = max(self._wanted_passes, target)
            self.store.changed.notify_all()
            while self.passes < target:
                if self.paused:
                    raise AssertionError("the controllers are paused: no pass will run")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"{count} controller passes did not run in {timeout} s")
                self._passed.wait(min(remaining, 0.1))
            return self.passes

    def _run(self) -> None:
        seen = -1
        last_pass = time.monotonic()
        with self.store.lock:
            while not self._stop.is_set():
                now = time.monotonic()
                due = self._next_due
                if self._paused.is_set():
                    self.store.changed.wait(max(self.knobs.tick, 0.05))
                    continue
                run = (
                    self.store.rv != seen
                    or self._kicked
                    or self.passes < self._wanted_passes
                    or (due is not None and now >= due)
                    or now - last_pass >= self.knobs.tick
                )
                if not run:
                    # Nothing changed and nothing is due: sleep until something is (a write
                    # or a kick wakes us earlier) instead of running empty passes.
                    wake = last_pass + self.knobs.tick
                    if due is not None:
                        wake = min(wake, due)
                    self.store.changed.wait(max(0.0, wake - now))
                    continue
                seen = self.store.rv
                self._kicked = False
                self._next_due = None
                last_pass = now
                try:
                    self.reconcile()
                except Exception as e:  # pragma: no cover - reconcile guards every step
                    self._failed("reconcile", "", e)
                self._passed.notify_all()

    def _template_hash(self, obj: dict[str, Any], collision_count: int = 0) -> str:
        """The workload's template hash, computed once per (uid, generation): the template
        changes only with the spec, and hashing is the costliest part of a pass."""
        meta = obj["metadata"]
        key = (meta["uid"], int(meta.get("generation") or 0), collision_count)
        cached = self._hashes.get(key)
        if cached is None:
            if len(self._hashes) > 4096:
                self._hashes.clear()
            cached = self._hashes[key] = template_hash(
                (obj.get("spec") or {}).get("template"), collision_count
            )
        return cached

    def _due(self, when: float) -> None:
        if self._next_due is None or when < self._next_due:
            self._next_due = when

    # --- one pass ---------------------------------------------------------------------------

    def reconcile(self) -> None:
        """One pass of every controller (the caller holds the store lock).

        Every controller runs on every object separately: an object a controller chokes on
        (whatever got it into the store) is reported once in `errors` and the log, and
        every other object, and every other controller, carries on as on a real cluster.
        """
        self.passes += 1
        self._guarded("namespace", None, self._namespaces)
        self._guarded("garbagecollector", None, self._garbage_collect)
        now = time.monotonic()
        for hpa in self.store.list("horizontalpodautoscalers"):
            self._guarded("horizontalpodautoscaler", hpa, self._hpa_due, hpa, now)
        for sts in self.store.list("statefulsets"):
            self._guarded("statefulset", sts, self._statefulset, sts)
        for dep in self.store.list("deployments"):
            self._guarded("deployment", dep, self._deployment, dep)
        self.snapshots.reconcile(self._guarded)
        for pvc in self.store.list("persistentvolumeclaims"):
            self._guarded("persistentvolume", pvc, self._pvc, pvc)
        for pod in self.store.list("pods"):
            self._guarded("scheduler", pod, self._schedule_pod, pod)
        self._guarded("kubelet", None, self._kubelet)
        self._guarded("patroni", None, patroni.label_pods, self.store, self._save_pod)
        self._forget_versions()

    def _guarded(
        self, controller: str, obj: dict[str, Any] | None, fn: Callable[..., None], *args: Any
    ) -> None:
        """Run one controller step; a failure is recorded once and stops only that step."""
        where = ""
        if obj is not None:
            ns, name = obj_key(obj)
            where = f"{ns}/{name}" if ns else name
        try:
            fn(*args)
        except Exception as e:
            self._failed(controller, where, e)
        else:
            if self._failing and (controller, where) in self._failing:
                del self._failing[(controller, where)]  # recovered: report a relapse again

    def _failed(self, controller: str, where: str, exc: Exception) -> None:
        what = repr(exc)
        if self._failing.get((controller, where)) == what:
            return  # already reported; the object fails the same way on every pass
        if len(self._failing) > 10000:
            self._failing.clear()
        self._failing[(controller, where)] = what
        log.error("%s controller failed on %s: %s", controller, where or "-", what, exc_info=exc)
        self.errors.append(f"{controller} {where}: {what}" if where else f"{controller}: {what}")

    def _save(self, rt: R.ResourceType, old: dict[str, Any], new: dict[str, Any]) -> None:
        """Store a controller's change, if there is one."""
        if new == old:
            return
        meta = new["metadata"]
        if (
            meta.get("deletionTimestamp")
            and not meta.get("finalizers")
            and _gone_when_free(rt, new)
        ):
            self.store.remove(rt.plural, meta.get("namespace", ""), meta["name"])
        else:
            self.store.put(rt.plural, new)

    def _save_pod(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        self._save(R.PODS, old, new)

    def _save_status(
        self,
        rt: R.ResourceType,
        seen: dict[str, Any],
        status: dict[str, Any],
        annotations: dict[str, str] | None = None,
    ) -> None:
        """Write a workload's status (and annotations) onto the stored object, whatever spec
        the controller acted on (its `_view` may be an earlier one), as UpdateStatus does."""
        meta = seen["metadata"]
        current = self.store.get(rt.plural, meta.get("namespace", ""), meta["name"])
        if current is None or current["metadata"]["uid"] != meta["uid"]:
            return
        new = clone(current)
        new["status"] = status
        for key, value in (annotations or {}).items():
            new["metadata"].setdefault("annotations", {})[key] = value
        self._save(rt, current, new)

    def _create(
        self, rt: R.ResourceType, namespace: str, obj: dict[str, Any]
    ) -> dict[str, Any] | None:
        try:
            return self.api.create(rt, namespace, obj, {}).body
        except ApiError as e:
            log.debug("create %s in %s refused: %s", rt.plural, namespace, e.message)
            return None

    def _delete(self, rt: R.ResourceType, obj: dict[str, Any], grace: int | None = None) -> None:
        if terminating(obj) and grace is None:
            return
        try:
            self.api._delete_locked(rt, obj, DeleteOptions(grace=grace))
        except ApiError as e:  # pragma: no cover - deleting a present object does not fail
            log.debug("delete %s refused: %s", obj["metadata"]["name"], e.message)

    # --- namespaces and garbage collection --------------------------------------------------

    def _namespaces(self) -> None:
        for ns in self.store.list("namespaces"):
            if not terminating(ns):
                continue
            name = ns["metadata"]["name"]
            remaining = 0
            for rt in R.TYPES:
                if not rt.namespaced:
                    continue
                for obj in self.store.list(rt.plural, name):
                    remaining += 1
                    self._delete(rt, obj)
            if remaining == 0 and (ns.get("spec") or {}).get("finalizers"):
                new = clone(ns)
                new["spec"]["finalizers"] = []
                self._save(R.NAMESPACES, ns, new)

    def _owner_state(self, namespace: str, ref: dict[str, Any], dependent: dict[str, Any]) -> str:
        """Whether an owner reference's object is "present" (that name with that uid),
        "absent", or "unknown": of a kind the cluster does not serve.

        The real garbage collector resolves the reference's apiVersion and kind through
        discovery; for a kind it cannot resolve (a CRD that is not installed, such as
        CloudNativePG's Cluster here) it logs the error and retries for ever, leaving the
        dependent alone.
        """
        api_version, kind = ref.get("apiVersion") or "", ref.get("kind") or ""
        if (api_version, kind) == ("apps/v1", "ReplicaSet"):  # not stored: derived
            return "present" if self._deployment_of(namespace, ref, dependent) else "absent"
        rt = R.BY_KIND.get((api_version, kind))
        if rt is None or (rt.namespaced and not namespace):
            return "unknown"  # (a namespaced owner of a cluster-scoped object is an error)
        owner = self.store.get(rt.plural, namespace if rt.namespaced else "", ref.get("name", ""))
        return "present" if owner and owner["metadata"]["uid"] == ref.get("uid") else "absent"

    def _deployment_of(
        self, namespace: str, ref: dict[str, Any], dependent: dict[str, Any]
    ) -> dict[str, Any] | None:
        pod_hash = (dependent["metadata"].get("labels") or {}).get(TEMPLATE_HASH_LABEL, "")
        dep_name = ref.get("name", "")[: -(len(pod_hash) + 1)] if pod_hash else ""
        dep = self.store.get("deployments", namespace, dep_name) if dep_name else None
        if dep and ref.get("uid") == rs_uid(dep["metadata"]["uid"], pod_hash):
            return dep
        return None

    def _owned_by(
        self, namespace: str, ref: dict[str, Any], pod: dict[str, Any], deployment_uid: str
    ) -> bool:
        dep = self._deployment_of(namespace, ref, pod)
        return dep is not None and dep["metadata"]["uid"] == deployment_uid

    def _dependents(
        self, owner_rt: R.ResourceType, owner: dict[str, Any]
    ) -> list[tuple[R.ResourceType, dict[str, Any]]]:
        ns, uid = owner["metadata"].get("namespace", ""), owner["metadata"]["uid"]
        found = []
        for rt in R.TYPES:
            if not rt.namespaced:
                continue
            for obj in self.store.list(rt.plural, ns):
                for ref in obj["metadata"].get("ownerReferences") or []:
                    if ref.get("uid") == uid or (
                        owner_rt is R.DEPLOYMENTS
                        and ref.get("kind") == "ReplicaSet"
                        and self._owned_by(ns, ref, obj, uid)
                    ):
                        found.append((rt, obj))
                        break
        return found

    def _garbage_collect(self) -> None:
        # Owners being deleted in the foreground or with orphaning.
        for owner_rt in (R.STATEFULSETS, R.DEPLOYMENTS):
            for owner in self.store.list(owner_rt.plural):
                fins = owner["metadata"].get("finalizers") or []
                if not terminating(owner) or not (FOREGROUND in fins or ORPHAN in fins):
                    continue
                deps = self._dependents(owner_rt, owner)
                if ORPHAN in fins:
                    for rt, obj in deps:
                        new = clone(obj)
                        new["metadata"]["ownerReferences"] = [
                            r
                            for r in obj["metadata"].get("ownerReferences") or []
                            if r.get("uid") != owner["metadata"]["uid"]
                            and r.get("kind") != "ReplicaSet"
                        ]
                        if not new["metadata"]["ownerReferences"]:
                            del new["metadata"]["ownerReferences"]
                        self._save(rt, obj, new)
                    deps = []
                for rt, obj in deps:
                    self._delete(rt, obj)
                if not deps:
                    new = clone(owner)
                    new["metadata"]["finalizers"] = [
                        f for f in fins if f not in (FOREGROUND, ORPHAN)
                    ]
                    if not new["metadata"]["finalizers"]:
                        del new["metadata"]["finalizers"]
                    self._save(owner_rt, owner, new)
        # Dependents whose owners are gone (attemptToDeleteItem): deleted when every owner
        # is absent; dangling references dropped when another owner is present.
        for rt in R.TYPES:
            for obj in self.store.list(rt.plural):
                refs = obj["metadata"].get("ownerReferences") or []
                if not refs or terminating(obj):
                    continue
                ns = obj["metadata"].get("namespace", "")
                states = [self._owner_state(ns, ref, obj) for ref in refs]
                if "absent" not in states or "unknown" in states:
                    continue
                if "present" not in states:
                    self._delete(rt, obj)
                    continue
                new = clone(obj)
                new["metadata"]["ownerReferences"] = [
                    ref for ref, state in zip(refs, states, strict=True) if state == "present"
                ]
                self._save(rt, obj, new)

    # --- HPA --------------------------------------------------------------------------------

    def _hpa_due(self, hpa: dict[str, Any], now: float) -> None:
        uid = hpa["metadata"]["uid"]
        due = self._hpa_next.get(uid, 0.0)
        if now < due:
            self._due(due)
            return
        self._hpa_next[uid] = now + self.knobs.hpa_interval
        self._due(now + self.knobs.hpa_interval)
        self._hpa(hpa)

    def _hpa(self, hpa: dict[str, Any]) -> None:
        ns = hpa["metadata"]["namespace"]
        spec = hpa.get("spec") or {}
        ref = spec.get("scaleTargetRef") or {}
        rt = {"Deployment": R.DEPLOYMENTS, "StatefulSet": R.STATEFULSETS}.get(ref.get("kind", ""))
        target = self.store.get(rt.plural, ns, ref.get("name", "")) if rt else None
        new = clone(hpa)
        status = new.setdefault("status", {})
        conds = list(status.get("conditions") or [])
        if target is None:
            target_res = f"{rt.plural}.{rt.group}" if rt else ref.get("kind", "")
            conds = set_condition(
                conds,
                "AbleToScale",
                "False",
                "FailedGetScale",
                "the HPA controller was unable to get the target's current scale: "
                f'{target_res} "{ref.get("name", "")}" not found',
                probe=False,
            )
            status["conditions"] = conds
            self._save(R.HPAS, hpa, new)
            return
        current = int((target.get("spec") or {}).get("replicas") or 0)
        min_r, max_r = int(spec.get("minReplicas") or 1), int(spec.get("maxReplicas") or 1)
        desired = current
        if current == 0:
            conds = set_condition(
                conds,
                "ScalingActive",
                "False",
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero",
                probe=False,
            )
        else:
            desired = min(max(current, min_r), max_r)
            conds = set_condition(
                conds,
                "AbleToScale",
                "True",
                "SucceededRescale" if desired != current else "ReadyForNewScale",
                f"the HPA controller was able to update the target scale to {desired}"
                if desired != current
                else "recommended size matches current size",
                probe=False,
            )
            conds = set_condition(
                conds,
                "ScalingActive",
                "False",
                "FailedGetResourceMetric",
                "the HPA was unable to compute the replica count: failed to get cpu "
                "utilization: unable to get metrics for resource cpu: no metrics returned "
                "from resource metrics API",
                probe=False,
            )
            limited = desired != current
            conds = set_condition(
                conds,
                "ScalingLimited",
                "True" if limited else "False",
                ("TooManyReplicas" if current > max_r else "TooFewReplicas")
                if limited
                else "DesiredWithinRange",
                (
                    "the desired replica count is more than the maximum replica count"
                    if current > max_r
                    else "the desired replica count is less than the minimum replica count"
                )
                if limited
                else "the desired count is within the acceptable range",
                probe=False,
            )
        if desired != current:
            tnew = clone(target)
            tnew["spec"]["replicas"] = desired
            tnew["metadata"]["generation"] = int(target["metadata"].get("generation") or 1) + 1
            self._save(rt, target, tnew)
            status["lastScaleTime"] = rfc3339()
        status["currentReplicas"] = int((target.get("status") or {}).get("replicas") or 0)
        status["desiredReplicas"] = desired
        status["conditions"] = conds
        new["status"] = {
            k: status[k]
            for k in ("lastScaleTime", "currentReplicas", "desiredReplicas", "conditions")
            if k in status
        }
        self._save(R.HPAS, hpa, new)

    # --- workloads: what the controllers know of them ---

    def _view(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """The workload as its controller knows it: with the newest spec (and generation)
        that has been in the store for `observe_delay`, or None while it knows of none.

        A real controller hears of a change through an informer and a work queue, so it
        acts on the spec it last heard of and reports that spec's generation as
        `observedGeneration`: a client reading straight after its own write always sees
        `observedGeneration < generation`. Stored objects are never mutated, so keeping
        references to earlier versions is safe.
        """
        meta = obj["metadata"]
        uid, gen = meta["uid"], int(meta.get("generation") or 1)
        delay = self.knobs.observe_delay
        versions = self._versions.get(uid)
        if delay <= 0:
            if versions is not None:
                del self._versions[uid]
            return obj
        now = time.monotonic()
        if versions is None:
            observed = (obj.get("status") or {}).get("observedGeneration")
            # Already observed (before a restart, or before the delay was set): known.
            versions = self._versions[uid] = [(gen, -delay if observed == gen else now, obj)]
        elif versions[-1][0] != gen:
            versions.append((gen, now, obj))
        known = None
        for i, (_, seen, _) in enumerate(versions):
            if seen + delay <= now:
                known = i
        if known is None:
            self._due(versions[0][1] + delay)
            return None
        del versions[:known]  # older versions are of no use once a newer one is known
        if len(versions) > 1:
            self._due(versions[1][1] + delay)
        known_gen, _, known_obj = versions[0]
        if known_gen == gen:
            return obj
        return {
            **obj,
            "spec": known_obj.get("spec"),
            "metadata": {**meta, "generation": known_gen},
        }

    def _forget_versions(self) -> None:
        """Drop what `_view` and the workload controllers remember of workloads that are gone."""
        tables = (self._versions, self._sts_templates, self._deploy_revision)
        if max(len(t) for t in tables) < 256:
            return
        live = {o["metadata"]["uid"] for o in self.store.list("statefulsets")}
        live |= {o["metadata"]["uid"] for o in self.store.list("deployments")}
        for table in tables:
            for uid in [u for u in table if u not in live]:
                del table[uid]

    # --- volumes ----------------------------------------------------------------------------

    def _claim_in_use(self, namespace: str, claim: str) -> bool:
        for pod in self.store.list("pods", namespace):
            if not (pod.get("spec") or {}).get("nodeName"):
                continue
            for v in (pod.get("spec") or {}).get("volumes") or []:
                if (v.get("persistentVolumeClaim") or {}).get("claimName") == claim:
                    return True
        return False

    def _pvc(self, pvc: dict[str, Any]) -> None:
        """PVC protection (release the finalizer of a free Terminating claim) and the binder."""
        meta = pvc["metadata"]
        if terminating(pvc):
            fins = meta.get("finalizers") or []
            releasable = (
                PVC_PROTECTION in fins
                and obj_key(pvc) not in self.knobs.stuck_finalizers
                and not self._claim_in_use(meta["namespace"], meta["name"])
            )
            if releasable:
                new = clone(pvc)
                new["metadata"]["finalizers"] = [f for f in fins if f != PVC_PROTECTION]
                if not new["metadata"]["finalizers"]:
                    del new["metadata"]["finalizers"]
                self._save(R.PVCS, pvc, new)
            return
        pending = (pvc.get("status") or {}).get("phase") == "Pending"
        if pending and self.snapshots.can_provision(pvc):
            new = clone(pvc)
            spec = new.setdefault("spec", {})
            spec.setdefault("volumeName", f"pvc-{meta['uid']}")
            ann = new["metadata"].setdefault("annotations", {})
            ann["pv.kubernetes.io/bind-completed"] = "yes"
            ann["pv.kubernetes.io/bound-by-controller"] = "yes"
            storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
            new["status"] = {
                "phase": "Bound",
                "accessModes": list(spec.get("accessModes") or []),
                "capacity": {"storage": storage},
            }
            self._save(R.PVCS, pvc, new)

    # --- scheduler and kubelet --------------------------------------------------------------

    def _unschedulable_reason(self, pod: dict[str, Any]) -> str | None:
        ns = pod["metadata"]["namespace"]
        for v in (pod.get("spec") or {}).get("volumes") or []:
            claim = (v.get("persistentVolumeClaim") or {}).get("claimName")
            if not claim:
                continue
            pvc = self.store.get("persistentvolumeclaims", ns, claim)
            if pvc is None:
                return f'persistentvolumeclaim "{claim}" not found'
            if terminating(pvc):
                return f'persistentvolumeclaim "{claim}" is being deleted'
            if (pvc.get("status") or {}).get("phase") != "Bound":
                return "pod has unbound immediate PersistentVolumeClaims"
        return None

    def _schedule_pod(self, pod: dict[str, Any]) -> None:
        spec = pod.get("spec") or {}
        if spec.get("nodeName") or terminating(pod):
            return
        new = clone(pod)
        status = new.setdefault("status", {})
        reason = self._unschedulable_reason(pod)
        if reason:
            status["conditions"] = set_condition(
                list(status.get("conditions") or []),
                "PodScheduled",
                "False",
                "Unschedulable",
                f"0/1 nodes are available: {reason}. preemption: 0/1 nodes are available: "
                "1 Preemption is not helpful for scheduling.",
            )
        else:
            new["spec"]["nodeName"] = NODE_NAME
            status["conditions"] = set_condition(
                list(status.get("conditions") or []), "PodScheduled", "True"
            )
            self._scheduled_at[pod["metadata"]["uid"]] = time.monotonic()
        self._save(R.PODS, pod, new)

    def _kubelet(self) -> None:
        now = time.monotonic()
        live_uids = set()
        for pod in self.store.list("pods"):
            uid = pod["metadata"]["uid"]
            live_uids.add(uid)
            if not (pod.get("spec") or {}).get("nodeName"):
                continue
            if terminating(pod):
                self._guarded("kubelet", pod, self._kubelet_terminate, pod, now)
            else:
                self._guarded("kubelet", pod, self._kubelet_run, pod, now)
        for table in (self._scheduled_at, self._terminate_at):
            for uid in [u for u in table if u not in live_uids]:
                del table[uid]

    def _kubelet_terminate(self, pod: dict[str, Any], now: float) -> None:
        uid = pod["metadata"]["uid"]
        grace = float(pod["metadata"].get("deletionGracePeriodSeconds") or 0)
        delay = self.knobs.slow_termination.get(obj_key(pod), self.knobs.termination_delay)
        due = self._terminate_at.setdefault(uid, now + min(delay, grace))
        if now < due:
            self._due(due)
            return
        new = clone(pod)
        new["metadata"]["deletionGracePeriodSeconds"] = 0
        if new["metadata"].get("finalizers"):
            # Containers are stopped; the object waits for its finalizers.
            status = new.setdefault("status", {})
            status["phase"] = (
                "Failed"
                if (pod.get("status") or {}).get("phase") == "Running"
                else status.get("phase", "Failed")
            )
            for ctype in ("Ready", "ContainersReady"):
                status["conditions"] = set_condition(
                    list(status.get("conditions") or []), ctype, "False", "PodCompleted"
                )
            for cs in status.get("containerStatuses") or []:
                if "terminated" in (cs.get("state") or {}):
                    continue
                cs["ready"] = False
                cs["started"] = False
                cs["state"] = {
                    "terminated": {
                        "exitCode": 143,
                        "reason": "Error",
                        "startedAt": (cs.get("state") or {}).get("running", {}).get("startedAt"),
                        "finishedAt": rfc3339(),
                    }
                }
        self._save(R.PODS, pod, new)

    def _kubelet_run(self, pod: dict[str, Any], now: float) -> None:
        uid = pod["metadata"]["uid"]
        sched = self._scheduled_at.setdefault(uid, now)
        status = pod.get("status") or {}
        phase = status.get("phase")
        if phase in ("Succeeded", "Failed"):
            return
        run_at = sched + self.knobs.ready_delay / 2
        ready_at = sched + self.knobs.ready_delay
        want_ready = obj_key(pod) not in self.knobs.never_ready and not any(
            ns == pod["metadata"]["namespace"] and labels_match(reqs, pod["metadata"].get("labels"))
            for (ns, _), reqs in self.knobs.never_ready_selectors.items()
        )
        if phase == "Running" and want_ready and is_ready(pod):
            return  # the common steady state: nothing to do, nothing to copy
        new = clone(pod)
        nstatus = new.setdefault("status", {})
        if phase != "Running":
            if now < run_at:
                self._due(run_at)
                return
            self._start_containers(new)
        elif want_ready and not is_ready(pod) and now < ready_at:
            self._due(ready_at)
            return
        ready = want_ready and now >= ready_at
        containers = (new.get("spec") or {}).get("containers") or []
        for cs in nstatus.get("containerStatuses") or []:
            cs["ready"] = ready
        conds = list(nstatus.get("conditions") or [])
        if ready:
            conds = set_condition(conds, "ContainersReady", "True")
            conds = set_condition(conds, "Ready", "True")
        else:
            unready = "[" + " ".join(c.get("name", "") for c in containers) + "]"
            conds = set_condition(
                conds,
                "ContainersReady",
                "False",
                "ContainersNotReady",
                f"containers with unready status: {unready}",
            )
            conds = set_condition(
                conds,
                "Ready",
                "False",
                "ContainersNotReady",
                f"containers with unready status: {unready}",
            )
            if want_ready:
                self._due(ready_at)
        nstatus["conditions"] = _pod_condition_order(conds)
        self._save(R.PODS, pod, new)

    def _start_containers(self, pod: dict[str, Any]) -> None:
        status = pod.setdefault("status", {})
        now_ts = rfc3339()
        self._ip_counter += 1
        ip = f"10.244.{(self._ip_counter // 250) % 250}.{self._ip_counter % 250 + 2}"
        status["phase"] = "Running"
        status["hostIP"] = HOST_IP
        status["hostIPs"] = [{"ip": HOST_IP}]
        status["podIP"] = ip
        status["podIPs"] = [{"ip": ip}]
        status["startTime"] = now_ts
        conds = list(status.get("conditions") or [])
        conds = set_condition(conds, "PodReadyToStartContainers", "True")
        conds = set_condition(conds, "Initialized", "True")
        status["conditions"] = conds
        status["containerStatuses"] = [
            {
                "name": c.get("name", ""),
                "state": {"running": {"startedAt": now_ts}},
                "lastState": {},
                "ready": False,
                "restartCount": 0,
                "image": c.get("image", ""),
                "imageID": f"docker.io/library/{c.get('image', '')}@sha256:" + "0" * 64,
                "containerID": "containerd://" + uuid.uuid4().hex + uuid.uuid4().hex,
                "started": True,
            }
            for c in (pod.get("spec") or {}).get("containers") or []
        ]


_POD_CONDITION_ORDER = [
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodScheduled",
]


def _pod_condition_order(conds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(
        conds,
        key=lambda c: (
            _POD_CONDITION_ORDER.index(c["type"]) if c["type"] in _POD_CONDITION_ORDER else 99
        ),
    )


__all__ = ["Controllers", "Knobs", "is_ready"]
