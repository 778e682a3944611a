"""The primitive operations: every write to the cluster goes through one of these functions.

Views, management commands and job steps call the same functions, so the checks and the
audit row cannot be skipped through a side door. Each call writes exactly one ``ops_log`` row:

1. input rules (DNS-1123 names, replica bounds) — refusal: 400, row ``error``;
2. namespace policy (allowed list and the key's scope) — refusal: 403, row ``denied``;
3. an active job holding the target (a StatefulSet, its pods, its claims; :mod:`ops.holds`)
   — refusal: 409 ``job_target_busy``, row ``error`` (as for a second job on a busy target:
   nothing is wrong with the caller's rights, the object is busy; ``denied`` is for what the
   caller may never do). A job's own steps pass its ``job_id`` and are let through;
4. a ``pending`` row is written *before* the cluster is touched (no row, no operation: 503);
5. the Kubernetes calls through :mod:`ops.k8s`, each carrying the row's ``audit_id`` as its
   ``Audit-ID`` header; the row gets the outcome.

The key's operations (``operation_not_allowed``, 403 ``denied``) are checked with the
namespace, except for a job's own steps (the job was the operation asked for). Two more ways
to ask, after the same checks (SPEC "Change control"): ``dry_run`` answers a :class:`Planned`
(the plan read from the live cluster, mutations sent only with ``dryRun=All``; the row has
``dry_run``), and a ``gated`` request (from a person: the API, a command) that
``OPS_APPROVAL_REQUIRED`` names answers :class:`Held` — an approval bound to the plan, nothing
changed (:mod:`ops.approvals`).

Errors are :mod:`ops.errors` classes (``status_code``, ``default_code``, ``detail``), raised
``from`` the gateway error when the cluster failed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TypeVar

from django.conf import settings

from ops import approvals, holds, k8s, policy
from ops.actors import ORIGIN_API, ORIGIN_CLI, ORIGIN_JOB, Actor
from ops.audit import Target, TargetHeld, attempt, record_error
from ops.errors import (
    InvalidInput,
    NamespaceDenied,
    ObjectNotFound,
    OperationNotAllowed,
    OpsError,
    TargetHeldByJob,
    from_k8s,
)
from ops.models import Approval, OpsLogStatus
from ops.plans import Plan, PlanObject, PlanStep
from ops.validation import name_problem, namespace_problem, replicas_problem

__all__ = [
    "ORIGIN_API",
    "ORIGIN_CLI",
    "ORIGIN_JOB",
    "Actor",
    "DeleteResult",
    "Held",
    "Planned",
    "ScaleResult",
    "deployment_scale",
    "pod_delete",
    "pvc_create_from_snapshot",
    "pvc_delete",
    "snapshot_create",
    "statefulset_scale",
    "workload_restart",
]

T = TypeVar("T")

KIND_DEPLOYMENT = "deployment"
KIND_STATEFULSET = "statefulset"
KIND_POD = "pod"
KIND_PVC = "persistentvolumeclaim"
ACTION_SCALE = "scale"
ACTION_DELETE = "delete"
ACTION_RESTART = "restart"
ACTION_CREATE = "create"
KIND_SNAPSHOT = "volumesnapshot"
#: Operation names (key permissions, approval patterns) of the primitives.
OPERATION_SCALE = "scale"
OPERATION_DELETE_POD = "delete-pod"
OPERATION_DELETE_PVC = "delete-pvc"
#: Kubernetes kind of each audit kind, as plans name objects.
K8S_KINDS = {
    KIND_DEPLOYMENT: "Deployment",
    KIND_STATEFULSET: "StatefulSet",
    KIND_POD: "Pod",
    KIND_PVC: "PersistentVolumeClaim",
    KIND_SNAPSHOT: "VolumeSnapshot",
}


@dataclass(frozen=True)
class ScaleResult:
    """Outcome of a scale: the answer body of the scale endpoints."""

    namespace: str
    kind: str
    name: str
    replicas: int
    previous_replicas: int


@dataclass(frozen=True)
class DeleteResult:
    """Outcome of a delete: the answer body of the delete endpoints (with ``status: ok``)."""

    namespace: str
    kind: str
    name: str
    status: str = "ok"


@dataclass(frozen=True)
class Planned:
    """A dry run's answer: what the request would change (nothing was)."""

    plan: Plan


@dataclass(frozen=True)
class Held:
    """A request held for approval (202): nothing was changed."""

    approval: Approval


def _refuse_invalid(
    *, actor: Actor, target: Target, job_id: str | None, problems: dict[str, str | None]
) -> None:
    errors = {field: [msg] for field, msg in problems.items() if msg}
    if errors:
        error = InvalidInput(errors)
        record_error(
            actor=actor, target=target, error=error, status=OpsLogStatus.ERROR, job_id=job_id
        )
        raise error


def _refuse_denied(
    *, actor: Actor, target: Target, job_id: str | None, operation: str | None
) -> None:
    reason = policy.namespace_refusal(actor, target.namespace)
    error: OpsError | None = NamespaceDenied(reason) if reason else None
    if error is None and operation and job_id is None:  # a job's steps: the job was asked for
        reason = policy.operation_refusal(actor, operation)
        error = OperationNotAllowed(reason) if reason else None
    if error is not None:
        record_error(
            actor=actor, target=target, error=error, status=OpsLogStatus.DENIED, job_id=job_id
        )
        raise error


def _held_targets(kind: str, name: str) -> tuple[str, list[str]]:
    """The kind and candidate names of what a job would hold for an operation on this object."""
    if kind == KIND_SNAPSHOT:
        return holds.KIND_STATEFULSET, []  # a snapshot is nobody's target
    if kind == KIND_POD:
        return holds.KIND_STATEFULSET, holds.statefulsets_of_pod(name)
    if kind == KIND_PVC:
        return holds.KIND_STATEFULSET, holds.statefulsets_of_claim(name)
    if kind == KIND_STATEFULSET:
        return holds.KIND_STATEFULSET, [name]
    return holds.KIND_DEPLOYMENT, [name]


def _holder_query(target: Target) -> holds.HolderQuery | None:
    held_kind, names = _held_targets(target.resource_kind, target.resource_name)
    return holds.holder_query(kind=held_kind, namespace=target.namespace, names=names)


def _refuse_held_by(
    holder: str | None, *, actor: Actor, target: Target, job_id: str | None
) -> None:
    if holder and holder != job_id:
        held_kind, _ = _held_targets(target.resource_kind, target.resource_name)
        what = f"{target.resource_kind} {target.namespace}/{target.resource_name}"
        if target.resource_kind in (KIND_POD, KIND_PVC):
            what += f" (of a {held_kind} it holds)"
        error = TargetHeldByJob(f"Active job {holder} holds {what}; wait for it or cancel it.")
        record_error(
            actor=actor, target=target, error=error, status=OpsLogStatus.ERROR, job_id=job_id
        )
        raise error


def _perform(
    *,
    actor: Actor,
    target: Target,
    job_id: str | None,
    problems: dict[str, str | None],
    call: Callable[[], T],
    operation: str | None = None,
    plan: Callable[[], Plan] | None = None,
    gated: bool = False,
    params: dict | None = None,
) -> T | Planned | Held:
    """One operation: input rules, namespace and operation policy, a job's hold; then, for a
    real request, the pending audit row, ``call`` (its Kubernetes calls), the row getting the
    outcome. A dry run (``target.dry_run``) or a ``gated`` request the approval policy names
    computes ``plan`` instead (reads and ``dryRun=All`` calls; its refusals audited like the
    real request's): the dry run answers it, the gated request is held for approval."""
    _refuse_invalid(actor=actor, target=target, job_id=job_id, problems=problems)
    _refuse_denied(actor=actor, target=target, job_id=job_id, operation=operation)
    held_by = _holder_query(target)
    hold = gated and operation and policy.approval_required(target.namespace, operation)
    if (target.dry_run or hold) and (plan is None or operation is None):
        raise ValueError(f"{target.action} {target.resource_kind} cannot be planned")
    if hold and not target.dry_run:
        _refuse_held_by(holds.holder(held_by), actor=actor, target=target, job_id=job_id)
        try:
            try:
                planned = plan()
            except k8s.K8sError as e:
                raise from_k8s(e) from e
        except OpsError as error:
            record_error(
                actor=actor, target=target, error=error, status=OpsLogStatus.ERROR, job_id=job_id
            )
            raise
        return Held(
            approvals.hold(
                actor=actor, operation=operation, target=target, params=params or {}, plan=planned
            )
        )
    # Audit first, a dry run too, the hold checked in the same statement; every request (a
    # dry run's dryRun=All ones included) names its row to the API server (its audit log).
    try:
        with (
            attempt(actor=actor, target=target, job_id=job_id, unless_held=held_by) as row,
            k8s.audited(audit_id=row.audit_id, actor=actor.name),
        ):
            try:
                return Planned(plan()) if target.dry_run else call()
            except k8s.K8sError as e:
                raise from_k8s(e) from e
    except TargetHeld as held:
        _refuse_held_by(held.holder, actor=actor, target=target, job_id=job_id)
        raise  # not reached: another job holds it


def plan_object(kind: str, namespace: str, name: str) -> PlanObject:
    """The object ``kind`` (an audit kind: ``pod``) as a plan names it, read now (404 when
    it does not exist, raised as the gateway's error)."""
    k8s_kind = K8S_KINDS[kind]
    meta = k8s.object_meta(kind=k8s_kind, namespace=namespace, name=name)
    if meta is None:
        raise ObjectNotFound(f'{kind}s "{name}" not found in namespace {namespace}')
    return PlanObject(
        kind=k8s_kind,
        namespace=namespace,
        name=name,
        uid=meta.uid,
        generation=meta.generation,
        resource_version=meta.resource_version,
    )


def _scale(
    *,
    kind: str,
    actor: Actor,
    namespace: str,
    name: str,
    replicas: int,
    job_id: str | None,
    resource_version: str | None = None,
    dry_run: bool = False,
    gated: bool = False,
    approval_id: str | None = None,
) -> ScaleResult | Planned | Held:
    body: dict = {"replicas": replicas}
    if resource_version is not None:  # the caller's precondition is part of what it asked
        body["preconditions"] = {"resourceVersion": resource_version}
    if approval_id is not None:
        body["approval_id"] = approval_id

    def read_then_patch() -> tuple[k8s.ScaleInfo, k8s.ScaleInfo]:
        before = k8s.scale_read(kind=kind, namespace=namespace, name=name)
        return before, k8s.scale_patch(
            kind=kind,
            namespace=namespace,
            name=name,
            replicas=replicas,
            resource_version=resource_version,
        )

    def plan() -> Plan:
        before = k8s.scale_read(kind=kind, namespace=namespace, name=name)
        obj = plan_object(kind, namespace, name)
        # The API server's own checks (validation, admission), nothing stored. No
        # resourceVersion: the plan names the version read, and a status update landing
        # between two reads must not turn a dry run into a conflict.
        k8s.scale_patch(kind=kind, namespace=namespace, name=name, replicas=replicas, dry_run=True)
        change = {"replicas": {"from": before.spec_replicas, "to": replicas}}
        return Plan((PlanStep(ACTION_SCALE, obj, change),))

    outcome = _perform(
        actor=actor,
        target=Target(ACTION_SCALE, kind, namespace, name, body, dry_run=dry_run),
        job_id=job_id,
        problems={
            "namespace": namespace_problem(namespace),
            "name": name_problem(name),
            "replicas": replicas_problem(replicas, maximum=settings.APIOPS["MAX_REPLICAS"]),
        },
        call=read_then_patch,
        operation=OPERATION_SCALE,
        plan=plan,
        gated=gated,
        params={"kind": kind, "namespace": namespace, "name": name, "replicas": replicas},
    )
    if isinstance(outcome, Planned | Held):
        return outcome
    before, after = outcome
    return ScaleResult(
        namespace=namespace,
        kind=kind,
        name=name,
        replicas=after.spec_replicas,
        previous_replicas=before.spec_replicas,
    )


def deployment_scale(
    *,
    actor: Actor,
    namespace: str,
    name: str,
    replicas: int,
    job_id: str | None = None,
    resource_version: str | None = None,
    dry_run: bool = False,
    gated: bool = False,
    approval_id: str | None = None,
) -> ScaleResult | Planned | Held:
    """Set a Deployment's replicas; answers the previous and the new count (or, for a dry run
    or a request held for approval, :class:`Planned` / :class:`Held`). ``resource_version``
    as for :func:`statefulset_scale`."""
    return _scale(
        kind=KIND_DEPLOYMENT,
        actor=actor,
        namespace=namespace,
        name=name,
        replicas=replicas,
        job_id=job_id,
        resource_version=resource_version,
        dry_run=dry_run,
        gated=gated,
        approval_id=approval_id,
    )


def statefulset_scale(
    *,
    actor: Actor,
    namespace: str,
    name: str,
    replicas: int,
    job_id: str | None = None,
    resource_version: str | None = None,
    dry_run: bool = False,
    gated: bool = False,
    approval_id: str | None = None,
) -> ScaleResult | Planned | Held:
    """Set a StatefulSet's replicas; answers the previous and the new count.

    With ``resource_version`` (the set's, as the caller read it when it decided) the change
    is made only if the set has not changed since: 409 otherwise (see :func:`k8s.scale_patch`).
    ``dry_run`` / ``gated``: see :func:`_perform`.
    """
    return _scale(
        kind=KIND_STATEFULSET,
        actor=actor,
        namespace=namespace,
        name=name,
        replicas=replicas,
        job_id=job_id,
        resource_version=resource_version,
        dry_run=dry_run,
        gated=gated,
        approval_id=approval_id,
    )


def _delete(
    *,
    kind: str,
    actor: Actor,
    namespace: str,
    name: str,
    job_id: str | None,
    uid: str | None,
    dry_run: bool = False,
    gated: bool = False,
    approval_id: str | None = None,
) -> DeleteResult | Planned | Held:
    # A caller's own uid precondition is part of what it asked for: the row records it.
    body: dict | None = {"preconditions": {"uid": uid}} if uid is not None else None
    if approval_id is not None:
        body = {**(body or {}), "approval_id": approval_id}
    delete = k8s.pod_delete if kind == KIND_POD else k8s.pvc_delete

    def plan() -> Plan:
        obj = plan_object(kind, namespace, name)
        if uid is not None and obj.uid != uid:
            raise from_k8s(
                k8s.K8sConflict(
                    f"delete {kind} {namespace}/{name}: Precondition failed: UID in precondition: "
                    f"{uid}, UID in object meta: {obj.uid}",
                    status=409,
                )
            )
        delete(namespace=namespace, name=name, uid=obj.uid, dry_run=True)
        return Plan((PlanStep(ACTION_DELETE, obj, {"exists": {"from": True, "to": False}}),))

    outcome = _perform(
        actor=actor,
        target=Target(ACTION_DELETE, kind, namespace, name, body, dry_run=dry_run),
        job_id=job_id,
        problems={"namespace": namespace_problem(namespace), "name": name_problem(name)},
        call=lambda: delete(namespace=namespace, name=name, uid=uid),
        operation=OPERATION_DELETE_POD if kind == KIND_POD else OPERATION_DELETE_PVC,
        plan=plan,
        gated=gated,
        params={"kind": kind, "namespace": namespace, "name": name},
    )
    if isinstance(outcome, Planned | Held):
        return outcome
    return DeleteResult(namespace=namespace, kind=kind, name=name)


def pod_delete(
    *,
    actor: Actor,
    namespace: str,
    name: str,
    job_id: str | None = None,
    uid: str | None = None,
    dry_run: bool = False,
    gated: bool = False,
    approval_id: str | None = None,
) -> DeleteResult | Planned | Held:
    """Delete a pod (its controller, if any, recreates it).

    Only the pod that exists now, or the one with ``uid`` when given (a caller that read it
    already): 409 if that pod has been replaced under the same name. ``dry_run`` / ``gated``:
    see :func:`_perform`.
    """
    return _delete(
        kind=KIND_POD,
        actor=actor,
        namespace=namespace,
        name=name,
        job_id=job_id,
        uid=uid,
        dry_run=dry_run,
        gated=gated,
        approval_id=approval_id,
    )


def pvc_delete(
    *,
    actor: Actor,
    namespace: str,
    name: str,
    job_id: str | None = None,
    uid: str | None = None,
    dry_run: bool = False,
    gated: bool = False,
    approval_id: str | None = None,
) -> DeleteResult | Planned | Held:
    """Delete a PersistentVolumeClaim (it may stay Terminating while a pod still mounts it).

    Only the claim that exists now, or the one with ``uid`` when given: 409 if replaced.
    ``dry_run`` / ``gated``: see :func:`_perform`.
    """
    return _delete(
        kind=KIND_PVC,
        actor=actor,
        namespace=namespace,
        name=name,
        job_id=job_id,
        uid=uid,
        dry_run=dry_run,
        gated=gated,
        approval_id=approval_id,
    )


def workload_restart(
    *,
    actor: Actor,
    kind: str,
    namespace: str,
    name: str,
    restarted_at: str,
    job_id: str | None = None,
    resource_version: str | None = None,
) -> k8s.WorkloadInfo:
    """Restart every pod of a Deployment or StatefulSet as ``kubectl rollout restart`` does:
    the pod template's ``kubectl.kubernetes.io/restartedAt`` set to ``restarted_at``; with
    ``resource_version``, only if the workload has not changed since that read (else 409)."""
    body: dict = {"restartedAt": restarted_at}
    if resource_version is not None:  # the caller's precondition is part of what it asked
        body["preconditions"] = {"resourceVersion": resource_version}
    return _perform(
        actor=actor,
        target=Target(ACTION_RESTART, kind, namespace, name, body),
        job_id=job_id,
        problems={"namespace": namespace_problem(namespace), "name": name_problem(name)},
        call=lambda: k8s.workload_restart(
            kind=kind,
            namespace=namespace,
            name=name,
            restarted_at=restarted_at,
            resource_version=resource_version,
        ),
    )


def snapshot_create(
    *,
    actor: Actor,
    namespace: str,
    name: str,
    claim: str,
    class_name: str | None,
    annotations: dict[str, str] | None = None,
    job_id: str | None = None,
) -> k8s.SnapshotInfo:
    """Take a VolumeSnapshot ``name`` of the claim ``claim`` (the default class when
    ``class_name`` is None); 409 if one of that name exists."""
    return _perform(
        actor=actor,
        target=Target(
            ACTION_CREATE, KIND_SNAPSHOT, namespace, name, {"source": claim, "class": class_name}
        ),
        job_id=job_id,
        problems={
            "namespace": namespace_problem(namespace),
            "name": name_problem(name),
            "claim": name_problem(claim),
        },
        call=lambda: k8s.snapshot_create(
            namespace=namespace,
            name=name,
            claim=claim,
            class_name=class_name,
            annotations=annotations,
        ),
    )


def pvc_create_from_snapshot(
    *,
    actor: Actor,
    namespace: str,
    name: str,
    template: dict,
    snapshot: str,
    job_id: str | None = None,
) -> k8s.PvcInfo:
    """Create the claim ``name`` (shaped by a volumeClaimTemplate) restored from the
    VolumeSnapshot ``snapshot``; 409 if a claim of that name exists."""
    return _perform(
        actor=actor,
        target=Target(ACTION_CREATE, KIND_PVC, namespace, name, {"dataSource": snapshot}),
        job_id=job_id,
        problems={
            "namespace": namespace_problem(namespace),
            "name": name_problem(name),
            "snapshot": name_problem(snapshot),
        },
        call=lambda: k8s.pvc_create_from_snapshot(
            namespace=namespace, name=name, template=template, snapshot=snapshot
        ),
    )


# --- approvals: how the primitives run once approved ----------------------------------------


def _read_now(kind: str, namespace: str, name: str) -> PlanObject | None:
    meta = k8s.object_meta(kind=kind, namespace=namespace, name=name)
    if meta is None:
        return None
    return PlanObject(
        kind=kind,
        namespace=namespace,
        name=name,
        uid=meta.uid,
        generation=meta.generation,
        resource_version=meta.resource_version,
    )


def _read_for_approval(kind: str, namespace: str, name: str) -> PlanObject | None:
    try:
        return _read_now(kind, namespace, name)
    except k8s.K8sError as e:
        raise from_k8s(e) from e


def _approved_scale(
    approval: Approval, actor: Actor, now: dict[tuple[str, str, str], PlanObject]
) -> approvals.Outcome:
    p = approval.params
    obj = now[(K8S_KINDS[p["kind"]], p["namespace"], p["name"])]
    result = _scale(
        kind=p["kind"],
        actor=actor,
        namespace=p["namespace"],
        name=p["name"],
        replicas=p["replicas"],
        job_id=None,
        resource_version=obj.resource_version,  # read in this approval's check
        approval_id=approval.approval_id,
    )
    return approvals.Outcome(status=200, body=asdict(result))


def _approved_delete(
    approval: Approval, actor: Actor, now: dict[tuple[str, str, str], PlanObject]
) -> approvals.Outcome:
    p = approval.params
    planned = next(e["object"] for e in approval.plan if e["action"] == ACTION_DELETE)
    result = _delete(
        kind=p["kind"],
        actor=actor,
        namespace=p["namespace"],
        name=p["name"],
        job_id=None,
        uid=planned["uid"],  # the object the plan showed, never a successor
        approval_id=approval.approval_id,
    )
    return approvals.Outcome(status=200, body=asdict(result))


approvals.register_reader(_read_for_approval)
approvals.register(OPERATION_SCALE, _approved_scale)
approvals.register(OPERATION_DELETE_POD, _approved_delete)
approvals.register(OPERATION_DELETE_PVC, _approved_delete)
