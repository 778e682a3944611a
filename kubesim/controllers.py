"""The cluster's moving parts: StatefulSet, Deployment and HPA controllers, the garbage and
namespace collectors, the PV binder and PVC-protection controller, a scheduler, a kubelet,
and (for the clusters that opt in) Patroni's pod labelling (`patroni.py`).

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
import functools
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
from .errors import ApiError
from .store import Store
from .util import clone, parse_rfc3339, random_suffix, rfc3339, template_hash

log = logging.getLogger("kubesim.controllers")

NODE_NAME = "kubesim-node"
HOST_IP = "10.89.0.2"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
REVISION_LABEL = "controller-revision-hash"
TEMPLATE_HASH_LABEL = "pod-template-hash"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"


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
    stuck_finalizers: set[tuple[str, str]] = field(default_factory=set)
    slow_termination: dict[tuple[str, str], float] = field(default_factory=dict)


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    return obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def _terminating(obj: dict[str, Any]) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp"))


def _cond(obj: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


def is_ready(pod: dict[str, Any]) -> bool:
    """Running and with condition Ready=True (podutil.IsPodReady plus the phase check)."""
    c = _cond(pod, "Ready")
    return (
        (pod.get("status") or {}).get("phase") == "Running"
        and bool(c)
        and c.get("status") == "True"
    )


def _controller_ref(obj: dict[str, Any]) -> dict[str, Any] | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def _set_condition(
    conditions: list[dict[str, Any]],
    ctype: str,
    status: str,
    reason: str = "",
    message: str = "",
    probe: bool = True,
) -> list[dict[str, Any]]:
    """Conditions with `ctype` set; lastTransitionTime moves only when the status changes."""
    out = []
    found = False
    for c in conditions:
        if c.get("type") == ctype:
            found = True
            if (
                c.get("status") == status
                and c.get("reason", "") == reason
                and c.get("message", "") == message
            ):
                out.append(c)
                continue
            new = {"type": ctype, "status": status}
            if probe:
                new["lastProbeTime"] = None
            same = c.get("status") == status
            new["lastTransitionTime"] = c.get("lastTransitionTime") if same else rfc3339()
            if reason:
                new["reason"] = reason
            if message:
                new["message"] = message
            out.append(new)
        else:
            out.append(c)
    if not found:
        new = {"type": ctype, "status": status}
        if probe:
            new["lastProbeTime"] = None
        new["lastTransitionTime"] = rfc3339()
        if reason:
            new["reason"] = reason
        if message:
            new["message"] = message
        out.append(new)
    return out


class ErrorLog(collections.deque[str]):
    """The newest controller failures (a bounded deque that also takes slices, like a list)."""

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return list(self)[index]
        return super().__getitem__(index)


@functools.lru_cache(maxsize=4096)
def rs_uid(deployment_uid: str, pod_hash: str) -> str:
    """The uid of a Deployment's (unserved) ReplicaSet for one template hash: deterministic,
    so pods can be traced back to their Deployment without storing ReplicaSets."""
    return str(uuid.uuid5(uuid.UUID(deployment_uid), pod_hash))


class Controllers:
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
        self._deploy_revision: dict[str, tuple[str, int]] = {}
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
            ns, name = _key(obj)
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
        if _terminating(obj) and grace is None:
            return
        try:
            self.api._delete_locked(rt, obj, DeleteOptions(grace=grace))
        except ApiError as e:  # pragma: no cover - deleting a present object does not fail
            log.debug("delete %s refused: %s", obj["metadata"]["name"], e.message)

    # --- namespaces and garbage collection --------------------------------------------------

    def _namespaces(self) -> None:
        for ns in self.store.list("namespaces"):
            if not _terminating(ns):
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
                if not _terminating(owner) or not (FOREGROUND in fins or ORPHAN in fins):
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
                if not refs or _terminating(obj):
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
            conds = _set_condition(
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
            conds = _set_condition(
                conds,
                "ScalingActive",
                "False",
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero",
                probe=False,
            )
        else:
            desired = min(max(current, min_r), max_r)
            conds = _set_condition(
                conds,
                "AbleToScale",
                "True",
                "SucceededRescale" if desired != current else "ReadyForNewScale",
                f"the HPA controller was able to update the target scale to {desired}"
                if desired != current
                else "recommended size matches current size",
                probe=False,
            )
            conds = _set_condition(
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
            conds = _set_condition(
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

    # --- StatefulSet ------------------------------------------------------------------------

    @staticmethod
    def _ordinal(sts_name: str, pod: dict[str, Any]) -> int | None:
        name = pod["metadata"]["name"]
        prefix = sts_name + "-"
        if not name.startswith(prefix) or not name[len(prefix) :].isdigit():
            return None
        return int(name[len(prefix) :])

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
        """Drop what `_view` remembers of workloads that are gone."""
        if len(self._versions) < 256:
            return
        live = {o["metadata"]["uid"] for o in self.store.list("statefulsets")}
        live |= {o["metadata"]["uid"] for o in self.store.list("deployments")}
        for uid in [u for u in self._versions if u not in live]:
            del self._versions[uid]

    def _statefulset(self, current: dict[str, Any]) -> None:
        if _terminating(current):
            return
        sts = self._view(current)
        if sts is None:
            return  # the controller has not heard of this StatefulSet yet
        meta, spec = sts["metadata"], sts.get("spec") or {}
        ns, name, uid = meta["namespace"], meta["name"], meta["uid"]
        replicas = int(spec.get("replicas") if spec.get("replicas") is not None else 1)
        start = int((spec.get("ordinals") or {}).get("start") or 0)
        monotonic = spec.get("podManagementPolicy", "OrderedReady") != "Parallel"
        revision = f"{name}-{self._template_hash(sts)}"
        pods: dict[int, dict[str, Any]] = {}
        for pod in self.store.list("pods", ns):
            ref = _controller_ref(pod)
            if ref and ref.get("uid") == uid:
                ordinal = self._ordinal(name, pod)
                if ordinal is not None:
                    pods[ordinal] = pod
        wanted = range(start, start + replicas)
        healthy = True
        for i in wanted:
            pod = pods.get(i)
            if pod is None:
                self._sts_create_pod(sts, i, revision)
                healthy = False
                if monotonic:
                    break
                continue
            phase = (pod.get("status") or {}).get("phase")
            if phase in ("Failed", "Succeeded") and not _terminating(pod):
                self._delete(R.PODS, pod)  # replaced once gone, as the real controller does
                healthy = False
                if monotonic:
                    break
                continue
            if _terminating(pod) or not is_ready(pod):
                healthy = False
                if monotonic:
                    break
        condemned = sorted((i for i in pods if i not in wanted), reverse=True)
        if monotonic:
            if healthy:
                for i in condemned:
                    pod = pods[i]
                    if not _terminating(pod):
                        self._delete(R.PODS, pod)
                    break  # one at a time, highest ordinal first; wait until it is gone
        else:
            for i in condemned:
                self._delete(R.PODS, pods[i])
        if healthy and not condemned:
            self._sts_rolling_update(sts, pods, wanted, revision)
        self._sts_status(sts, revision)

    def _sts_rolling_update(
        self, sts: dict[str, Any], pods: dict[int, dict[str, Any]], wanted: range, revision: str
    ) -> None:
        strategy = (sts.get("spec") or {}).get("updateStrategy") or {}
        if strategy.get("type") == "OnDelete":
            return
        partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
        for i in sorted(wanted, reverse=True):
            pod = pods.get(i)
            if i < partition or pod is None:
                continue
            if (pod["metadata"].get("labels") or {}).get(REVISION_LABEL) != revision:
                self._delete(R.PODS, pod)
                return  # one pod at a time, from the highest ordinal

    def _sts_create_pod(self, sts: dict[str, Any], ordinal: int, revision: str) -> None:
        meta, spec = sts["metadata"], sts.get("spec") or {}
        ns, name = meta["namespace"], meta["name"]
        pod_name = f"{name}-{ordinal}"
        template = clone(spec.get("template") or {})
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
                    pvc["metadata"]["ownerReferences"] = [
                        {
                            "apiVersion": "apps/v1",
                            "kind": "StatefulSet",
                            "name": name,
                            "uid": meta["uid"],
                            "controller": True,
                            "blockOwnerDeletion": True,
                        }
                    ]
                if self._create(R.PVCS, ns, pvc) is None:
                    blocked = True
                    continue
            elif _terminating(existing):
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
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "StatefulSet",
                    "name": name,
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        }
        if tmeta.get("annotations"):
            pod_meta["annotations"] = dict(tmeta["annotations"])
        self._create(
            R.PODS, ns, {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": pod_spec}
        )

    def _sts_status(self, sts: dict[str, Any], revision: str) -> None:
        meta = sts["metadata"]
        pods = [
            p
            for p in self.store.list("pods", meta["namespace"])
            if (_controller_ref(p) or {}).get("uid") == meta["uid"]
        ]
        old_status = sts.get("status") or {}
        live = [p for p in pods if not _terminating(p)]
        replicas = int((sts.get("spec") or {}).get("replicas") or 0)
        updated_live = [
            p for p in live if (p["metadata"].get("labels") or {}).get(REVISION_LABEL) == revision
        ]
        current_rev = old_status.get("currentRevision") or revision
        if len(updated_live) == replicas and len(live) == replicas:
            current_rev = revision
        ready = sum(1 for p in pods if is_ready(p))
        status: dict[str, Any] = {
            "observedGeneration": meta.get("generation", 1),
            "replicas": len(pods),
            "readyReplicas": ready,
            "currentReplicas": sum(
                1
                for p in live
                if (p["metadata"].get("labels") or {}).get(REVISION_LABEL) == current_rev
            ),
            "updatedReplicas": len(updated_live),
            "currentRevision": current_rev,
            "updateRevision": revision,
            "collisionCount": 0,
            "availableReplicas": ready,
        }
        for key in ("readyReplicas", "currentReplicas", "updatedReplicas"):  # omitempty in Go
            if not status[key]:
                del status[key]
        if status != old_status:
            self._save_status(R.STATEFULSETS, sts, status)

    # --- Deployment -------------------------------------------------------------------------

    def _deployment(self, current: dict[str, Any]) -> None:
        if _terminating(current):
            return
        dep = self._view(current)
        if dep is None:
            return  # the controller has not heard of this Deployment yet
        meta, spec = dep["metadata"], dep.get("spec") or {}
        ns, uid = meta["namespace"], meta["uid"]
        replicas = int(spec.get("replicas") if spec.get("replicas") is not None else 1)
        collision = int((dep.get("status") or {}).get("collisionCount") or 0)
        pod_hash = self._template_hash(dep, collision)
        pods = [
            p
            for p in self.store.list("pods", ns)
            if (ref := _controller_ref(p))
            and ref.get("kind") == "ReplicaSet"
            and self._owned_by(ns, ref, p, uid)
        ]
        active = [
            p
            for p in pods
            if not _terminating(p)
            and (p.get("status") or {}).get("phase") not in ("Failed", "Succeeded")
        ]
        new_pods = [
            p
            for p in active
            if (p["metadata"].get("labels") or {}).get(TEMPLATE_HASH_LABEL) == pod_hash
        ]
        old_pods = [p for p in active if p not in new_pods]
        strategy = spec.get("strategy") or {}
        max_surge, max_unavailable = _rolling_bounds(strategy, replicas)
        if not spec.get("paused"):
            if strategy.get("type") == "Recreate" and old_pods:
                for p in old_pods:
                    self._delete(R.PODS, p)
            elif strategy.get("type") == "Recreate" and any(
                (p["metadata"].get("labels") or {}).get(TEMPLATE_HASH_LABEL) != pod_hash
                for p in pods
            ):
                pass  # wait until the old pods are gone
            else:
                room = replicas + (max_surge if old_pods else 0) - len(active)
                missing = max(0, min(replicas - len(new_pods), room))
                for _ in range(missing):
                    self._deploy_create_pod(dep, pod_hash)
                excess = len(new_pods) - replicas
                if excess > 0:
                    for p in _deletion_order(new_pods)[:excess]:
                        self._delete(R.PODS, p)
                if old_pods:
                    available = sum(1 for p in active if is_ready(p))
                    min_available = replicas - max_unavailable
                    removable = max(0, available - min_available) + sum(
                        1 for p in old_pods if not is_ready(p)
                    )
                    if removable > 0:
                        for p in _deletion_order(old_pods)[:removable]:
                            self._delete(R.PODS, p)
        self._deploy_status(dep, pod_hash, max_unavailable)

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

    def _deploy_status(self, dep: dict[str, Any], pod_hash: str, max_unavailable: int) -> None:
        meta, spec = dep["metadata"], dep.get("spec") or {}
        ns = meta["namespace"]
        pods = [
            p
            for p in self.store.list("pods", ns)
            if (ref := _controller_ref(p))
            and ref.get("kind") == "ReplicaSet"
            and self._owned_by(ns, ref, p, meta["uid"])
        ]
        active = [p for p in pods if not _terminating(p)]
        replicas = int(spec.get("replicas") or 0)
        updated = [
            p
            for p in active
            if (p["metadata"].get("labels") or {}).get(TEMPLATE_HASH_LABEL) == pod_hash
        ]
        ready = sum(1 for p in active if is_ready(p))
        old = dep.get("status") or {}
        conds = clone(old.get("conditions") or [])
        available_ok = ready >= replicas - max_unavailable
        conds = _set_condition(
            conds,
            "Available",
            "True" if available_ok else "False",
            "MinimumReplicasAvailable" if available_ok else "MinimumReplicasUnavailable",
            "Deployment has minimum availability."
            if available_ok
            else "Deployment does not have minimum availability.",
            probe=False,
        )
        complete = len(updated) == replicas and len(active) == replicas and ready == replicas
        rs_name = f"{meta['name']}-{pod_hash}"
        conds = _set_condition(
            conds,
            "Progressing",
            "True",
            "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
            f'ReplicaSet "{rs_name}" has successfully progressed.'
            if complete
            else f'ReplicaSet "{rs_name}" is progressing.',
            probe=False,
        )
        for c in conds:
            c.setdefault("lastUpdateTime", c["lastTransitionTime"])
            if c is not None and "lastProbeTime" in c:
                del c["lastProbeTime"]
        conds = [_deploy_condition_order(c) for c in conds]
        status: dict[str, Any] = {
            "observedGeneration": meta.get("generation", 1),
            "replicas": len(active),
            "updatedReplicas": len(updated),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "unavailableReplicas": max(0, replicas - ready),
            "conditions": sorted(conds, key=lambda c: c["type"] != "Available"),
        }
        for key in (
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas",
            "unavailableReplicas",
        ):
            if not status[key]:
                del status[key]
        uid = meta["uid"]
        last_hash, revision = self._deploy_revision.get(uid, ("", 0))
        if last_hash != pod_hash:
            revision = (
                max(revision, int((meta.get("annotations") or {}).get(REVISION_ANNOTATION) or 0))
                + 1
            )
            if not last_hash and (meta.get("annotations") or {}).get(REVISION_ANNOTATION):
                revision -= 1  # first sight after a restart of the controller: keep the number
            self._deploy_revision[uid] = (pod_hash, revision)
        if status != old or (meta.get("annotations") or {}).get(REVISION_ANNOTATION) != str(
            revision
        ):
            self._save_status(R.DEPLOYMENTS, dep, status, {REVISION_ANNOTATION: str(revision)})

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
        if _terminating(pvc):
            fins = meta.get("finalizers") or []
            releasable = (
                PVC_PROTECTION in fins
                and _key(pvc) not in self.knobs.stuck_finalizers
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
            if _terminating(pvc):
                return f'persistentvolumeclaim "{claim}" is being deleted'
            if (pvc.get("status") or {}).get("phase") != "Bound":
                return "pod has unbound immediate PersistentVolumeClaims"
        return None

    def _schedule_pod(self, pod: dict[str, Any]) -> None:
        spec = pod.get("spec") or {}
        if spec.get("nodeName") or _terminating(pod):
            return
        new = clone(pod)
        status = new.setdefault("status", {})
        reason = self._unschedulable_reason(pod)
        if reason:
            status["conditions"] = _set_condition(
                list(status.get("conditions") or []),
                "PodScheduled",
                "False",
                "Unschedulable",
                f"0/1 nodes are available: {reason}. preemption: 0/1 nodes are available: "
                "1 Preemption is not helpful for scheduling.",
            )
        else:
            new["spec"]["nodeName"] = NODE_NAME
            status["conditions"] = _set_condition(
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
            if _terminating(pod):
                self._guarded("kubelet", pod, self._kubelet_terminate, pod, now)
            else:
                self._guarded("kubelet", pod, self._kubelet_run, pod, now)
        for table in (self._scheduled_at, self._terminate_at):
            for uid in [u for u in table if u not in live_uids]:
                del table[uid]

    def _kubelet_terminate(self, pod: dict[str, Any], now: float) -> None:
        uid = pod["metadata"]["uid"]
        grace = float(pod["metadata"].get("deletionGracePeriodSeconds") or 0)
        delay = self.knobs.slow_termination.get(_key(pod), self.knobs.termination_delay)
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
                status["conditions"] = _set_condition(
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
        want_ready = _key(pod) not in self.knobs.never_ready
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
            conds = _set_condition(conds, "ContainersReady", "True")
            conds = _set_condition(conds, "Ready", "True")
        else:
            unready = "[" + " ".join(c.get("name", "") for c in containers) + "]"
            conds = _set_condition(
                conds,
                "ContainersReady",
                "False",
                "ContainersNotReady",
                f"containers with unready status: {unready}",
            )
            conds = _set_condition(
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
        conds = _set_condition(conds, "PodReadyToStartContainers", "True")
        conds = _set_condition(conds, "Initialized", "True")
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


def _deploy_condition_order(c: dict[str, Any]) -> dict[str, Any]:
    order = ["type", "status", "lastUpdateTime", "lastTransitionTime", "reason", "message"]
    return {k: c[k] for k in order if k in c}


def _resolve(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.endswith("%"):
        pct = int(value[:-1])
        exact = total * pct / 100
        return int(-(-exact // 1)) if round_up else int(exact)
    return int(value or 0)


def _rolling_bounds(strategy: dict[str, Any], replicas: int) -> tuple[int, int]:
    """maxSurge and maxUnavailable as absolute numbers (deploymentutil.ResolveFenceposts)."""
    if strategy.get("type") == "Recreate":
        return 0, replicas
    ru = strategy.get("rollingUpdate") or {}
    surge = _resolve(ru.get("maxSurge", "25%"), replicas, True)
    unavailable = _resolve(ru.get("maxUnavailable", "25%"), replicas, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def _deletion_order(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Which pods a ReplicaSet removes first (controller.ActivePods ordering)."""
    rank = {"Pending": 0, "Unknown": 1, "Running": 2}

    def key(p: dict[str, Any]) -> tuple[Any, ...]:
        return (
            bool((p.get("spec") or {}).get("nodeName")),
            rank.get((p.get("status") or {}).get("phase", "Pending"), 1),
            is_ready(p),
            # newer pods go first
            -_created(p),
        )

    return sorted(pods, key=key)


def _created(p: dict[str, Any]) -> float:
    ts = p["metadata"].get("creationTimestamp")
    return parse_rfc3339(ts) if ts else 0.0


__all__ = ["Controllers", "Knobs", "is_ready"]
