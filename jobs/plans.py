"""The plans of job requests: every step of the job, computed from the live cluster.

A dry run of ``POST /ops/jobs/{type}`` and a job request held for approval answer one
(SPEC "Change control"). It is read, never written: the objects the steps will change are
read now (their uid, and generation or resourceVersion), and each step of the job's plan (its
strategy's steps, in order) says what it will do to which of them — what will be scaled from
what to what, which claims and pods by uid, which objects it creates. Steps that only check
or wait are listed too, so the plan reads as the job will run.

Only the state at request time can be read: what a step creates (a restored claim, a
snapshot) has no uid yet (``uid`` null), and the steps themselves re-check everything right
before they act. An approved job also carries the uids of its plan (``approved_uids`` in its
result), and its destructive steps refuse an object that is not the one approved
(:func:`jobs.types.pg_steps.check_approved`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property

from jobs.registry import JobType
from ops import k8s
from ops.errors import from_k8s
from ops.plans import Plan, PlanObject, PlanStep

ACTION_CHECK = "check"
ACTION_WAIT = "wait"


def target_pod(params: dict) -> str:
    """The pod of a StatefulSet replica: ``<statefulset>-<ordinal>``."""
    return f"{params['statefulset']}-{params['ordinal']}"


@dataclass
class Reads:
    """What the plan of one request reads, each object once."""

    params: dict
    result: dict

    @property
    def namespace(self) -> str:
        return self.params["namespace"]

    def meta(self, kind: str, name: str) -> PlanObject:
        """The object now; uid None when it does not exist (a step that creates it)."""
        meta = k8s.object_meta(kind=kind, namespace=self.namespace, name=name)
        if meta is None:
            return PlanObject(kind=kind, namespace=self.namespace, name=name, uid=None)
        return PlanObject(
            kind=kind,
            namespace=self.namespace,
            name=name,
            uid=meta.uid,
            generation=meta.generation,
            resource_version=meta.resource_version,
        )

    @cached_property
    def sts(self) -> k8s.StatefulSetInfo:
        return k8s.statefulset_read(namespace=self.namespace, name=self.params["statefulset"])

    @cached_property
    def sts_object(self) -> PlanObject:
        return self.meta("StatefulSet", self.params["statefulset"])

    @cached_property
    def claims(self) -> list[PlanObject]:
        """The target replica's claims, as they are now."""
        return [
            self.meta("PersistentVolumeClaim", name)
            for name in self.sts.pvc_names(self.params["ordinal"])
        ]

    @cached_property
    def pod(self) -> PlanObject:
        return self.meta("Pod", target_pod(self.params))


def _scale(r: Reads, frm: int, to: int) -> list[PlanStep]:
    return [PlanStep("scale", r.sts_object, {"replicas": {"from": frm, "to": to}})]


def _delete_claims(r: Reads, note: str = "") -> list[PlanStep]:
    change = {"exists": {"from": True, "to": False}}
    if note:
        change["note"] = note
    return [PlanStep("delete", claim, change) for claim in r.claims if claim.uid]


def _restore(r: Reads) -> list[PlanStep]:
    template = r.result.get("restore_template") or r.sts.claim_templates[0]
    name = f"{template}-{r.params['statefulset']}-{r.params['ordinal']}"
    claim = PlanObject(kind="PersistentVolumeClaim", namespace=r.namespace, name=name, uid=None)
    source = {
        "kind": "VolumeSnapshot",
        "name": r.params["from_snapshot"],
        "uid": r.result.get("from_snapshot_uid"),
    }
    return [PlanStep("create", claim, {"dataSource": source})]


def _wait(obj: PlanObject, what: dict) -> list[PlanStep]:
    return [PlanStep(ACTION_WAIT, obj, what)]


#: Each step's plan entries, by step name (pg-rebuild's plans and pg-restore's).
PG_REBUILD_STEPS: dict[str, Callable[[Reads], list[PlanStep]]] = {
    "scale_sts_to_zero": lambda r: _scale(r, r.sts.replicas, 0),
    "wait_pods_down": lambda r: _wait(r.sts_object, {"pods": {"from": r.sts.replicas, "to": 0}}),
    "delete_pvc": lambda r: _delete_claims(r),
    "restore_pvc": _restore,
    "scale_sts_to_target": lambda r: _scale(r, 0, r.params["target_replicas"]),
    "wait_pods_ready": lambda r: _wait(
        r.sts_object, {"readyReplicas": {"to": r.params["target_replicas"]}}
    ),
    # in-place
    "check_target": lambda r: [
        PlanStep(ACTION_CHECK, r.pod, {"role": "not the primary; the other replicas Ready"})
    ],
    "delete_pod": lambda r: (
        [PlanStep("delete", r.pod, {"exists": {"from": True, "to": False}})] if r.pod.uid else []
    ),
    "wait_pvc_gone": lambda r: [
        PlanStep(ACTION_WAIT, claim, {"exists": {"to": False}}) for claim in r.claims
    ],
    "wait_pod_ready": lambda r: _wait(r.pod, {"ready": {"to": True}, "uid": {"to": "new"}}),
    # in-place restore on the highest ordinal
    "scale_down_one": lambda r: _scale(r, r.sts.replicas, r.params["ordinal"]),
    "wait_pod_gone": lambda r: _wait(r.pod, {"exists": {"to": False}}),
    "scale_back": lambda r: _scale(r, r.params["ordinal"], r.params["ordinal"] + 1),
}


#: What an in-place rebuild's claim delete does first (its pod still uses the claim).
IN_PLACE_DELETE_NOTE = "stays Terminating until its pod is deleted"


def pg_rebuild_plan(job_type: JobType, params: dict, result: dict) -> Plan:
    r = Reads(params, result)
    steps: list[PlanStep] = []
    in_place = params.get("strategy") == "in-place" and not params.get("from_snapshot")
    for step in job_type.steps_for(params):
        if step.name == "delete_pvc" and in_place:
            entries = _delete_claims(r, IN_PLACE_DELETE_NOTE)
        else:
            entries = PG_REBUILD_STEPS[step.name](r)
        steps += [replace(e, step=step.name) for e in entries]
    return Plan(tuple(steps))


def pg_backup_plan(job_type: JobType, params: dict, result: dict) -> Plan:
    source = result.get("planned_source") or f"{params['statefulset']}-{params.get('ordinal', 0)}"
    r = Reads({**params, "ordinal": int(source.rsplit("-", 1)[1])}, result)
    claim = r.claims[0]
    snapshot = PlanObject(
        kind="VolumeSnapshot", namespace=r.namespace, name=f"{claim.name}-<job>", uid=None
    )
    source = {"kind": claim.kind, "name": claim.name, "uid": claim.uid}
    return Plan(
        (
            PlanStep(
                ACTION_CHECK, r.pod, {"source": "a Ready replica, not the primary"}, "choose_source"
            ),
            PlanStep("create", snapshot, {"source": source}, "create_snapshot"),
            PlanStep(ACTION_WAIT, snapshot, {"readyToUse": {"to": True}}, "wait_snapshot_ready"),
        )
    )


def rollout_restart_plan(job_type: JobType, params: dict, result: dict) -> Plan:
    kinds = {k8s.DEPLOYMENT: "Deployment", k8s.STATEFULSET: "StatefulSet"}
    r = Reads(params, result)
    workload = r.meta(kinds[params["kind"]], params["name"])
    info = k8s.workload_read(kind=params["kind"], namespace=r.namespace, name=params["name"])
    pods = k8s.pod_list(namespace=r.namespace, label_selector=info.label_selector)
    change = {
        "template.metadata.annotations": {
            k8s.RESTARTED_AT: {"from": info.restarted_at, "to": "the time of the step"}
        },
        "pods_replaced": sorted(p.name for p in pods if not p.terminating),
    }
    return Plan(
        (
            PlanStep("restart", workload, change, "restart"),
            PlanStep(
                ACTION_WAIT, workload, {"updatedReplicas": {"to": info.replicas}}, "wait_rollout"
            ),
        )
    )


def job_plan(job_type: JobType, params: dict, result: dict) -> Plan:
    """The plan of a request for a job of ``job_type`` (its checks already passed): the
    type's own (``JobType.plan``), else each of its steps on the job's target as read now.
    API errors raised as ours."""
    try:
        if job_type.plan is not None:
            return job_type.plan(job_type, params, result)
        on = job_type.target(params)
        obj = Reads(params, result).meta(on.kind, on.name)
        return Plan(tuple(PlanStep(s.name, obj, {}, s.name) for s in job_type.steps_for(params)))
    except k8s.K8sError as e:
        raise from_k8s(e) from e
