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

Errors are :mod:`ops.errors` classes (``status_code``, ``default_code``, ``detail``), raised
``from`` the gateway error when the cluster failed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from django.conf import settings

from ops import holds, k8s, policy
from ops.actors import ORIGIN_API, ORIGIN_CLI, ORIGIN_JOB, Actor
from ops.audit import Target, attempt, record_error
from ops.errors import InvalidInput, NamespaceDenied, TargetHeldByJob, from_k8s
from ops.models import OpsLogStatus
from ops.validation import name_problem, namespace_problem, replicas_problem

__all__ = [
    "ORIGIN_API",
    "ORIGIN_CLI",
    "ORIGIN_JOB",
    "Actor",
    "DeleteResult",
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


def _refuse_denied(*, actor: Actor, target: Target, job_id: str | None) -> None:
    reason = policy.namespace_refusal(actor, target.namespace)
    if reason:
        error = NamespaceDenied(reason)
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


def _refuse_held(*, actor: Actor, target: Target, job_id: str | None) -> None:
    held_kind, names = _held_targets(target.resource_kind, target.resource_name)
    holder = holds.holder_of(kind=held_kind, namespace=target.namespace, names=names)
    if holder and holder != job_id:
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
) -> T:
    """One operation: input rules, namespace policy, a job's hold, then the pending audit row,
    then ``call`` (its Kubernetes calls), the row getting the outcome."""
    _refuse_invalid(actor=actor, target=target, job_id=job_id, problems=problems)
    _refuse_denied(actor=actor, target=target, job_id=job_id)
    _refuse_held(actor=actor, target=target, job_id=job_id)
    # Every request of the operation names its row to the API server (its audit log).
    with (
        attempt(actor=actor, target=target, job_id=job_id) as row,
        k8s.audited(audit_id=row.audit_id, actor=actor.name),
    ):
        try:
            return call()
        except k8s.K8sError as e:
            raise from_k8s(e) from e


def _scale(
    *,
    kind: str,
    actor: Actor,
    namespace: str,
    name: str,
    replicas: int,
    job_id: str | None,
    resource_version: str | None = None,
) -> ScaleResult:
    body: dict = {"replicas": replicas}
    if resource_version is not None:  # the caller's precondition is part of what it asked
        body["preconditions"] = {"resourceVersion": resource_version}

    def read_then_patch() -> tuple[k8s.ScaleInfo, k8s.ScaleInfo]:
        before = k8s.scale_read(kind=kind, namespace=namespace, name=name)
        return before, k8s.scale_patch(
            kind=kind,
            namespace=namespace,
            name=name,
            replicas=replicas,
            resource_version=resource_version,
        )

    before, after = _perform(
        actor=actor,
        target=Target(ACTION_SCALE, kind, namespace, name, body),
        job_id=job_id,
        problems={
            "namespace": namespace_problem(namespace),
            "name": name_problem(name),
            "replicas": replicas_problem(replicas, maximum=settings.APIOPS["MAX_REPLICAS"]),
        },
        call=read_then_patch,
    )
    return ScaleResult(
        namespace=namespace,
        kind=kind,
        name=name,
        replicas=after.spec_replicas,
        previous_replicas=before.spec_replicas,
    )


def deployment_scale(
    *, actor: Actor, namespace: str, name: str, replicas: int, job_id: str | None = None
) -> ScaleResult:
    """Set a Deployment's replicas; answers the previous and the new count."""
    return _scale(
        kind=KIND_DEPLOYMENT,
        actor=actor,
        namespace=namespace,
        name=name,
        replicas=replicas,
        job_id=job_id,
    )


def statefulset_scale(
    *,
    actor: Actor,
    namespace: str,
    name: str,
    replicas: int,
    job_id: str | None = None,
    resource_version: str | None = None,
) -> ScaleResult:
    """Set a StatefulSet's replicas; answers the previous and the new count.

    With ``resource_version`` (the set's, as the caller read it when it decided) the change
    is made only if the set has not changed since: 409 otherwise (see :func:`k8s.scale_patch`).
    """
    return _scale(
        kind=KIND_STATEFULSET,
        actor=actor,
        namespace=namespace,
        name=name,
        replicas=replicas,
        job_id=job_id,
        resource_version=resource_version,
    )


def _delete(
    *, kind: str, actor: Actor, namespace: str, name: str, job_id: str | None, uid: str | None
) -> DeleteResult:
    # A caller's own uid precondition is part of what it asked for: the row records it.
    body = {"preconditions": {"uid": uid}} if uid is not None else None
    delete = k8s.pod_delete if kind == KIND_POD else k8s.pvc_delete
    _perform(
        actor=actor,
        target=Target(ACTION_DELETE, kind, namespace, name, body),
        job_id=job_id,
        problems={"namespace": namespace_problem(namespace), "name": name_problem(name)},
        call=lambda: delete(namespace=namespace, name=name, uid=uid),
    )
    return DeleteResult(namespace=namespace, kind=kind, name=name)


def pod_delete(
    *,
    actor: Actor,
    namespace: str,
    name: str,
    job_id: str | None = None,
    uid: str | None = None,
) -> DeleteResult:
    """Delete a pod (its controller, if any, recreates it).

    Only the pod that exists now, or the one with ``uid`` when given (a caller that read it
    already): 409 if that pod has been replaced under the same name.
    """
    return _delete(
        kind=KIND_POD, actor=actor, namespace=namespace, name=name, job_id=job_id, uid=uid
    )


def pvc_delete(
    *,
    actor: Actor,
    namespace: str,
    name: str,
    job_id: str | None = None,
    uid: str | None = None,
) -> DeleteResult:
    """Delete a PersistentVolumeClaim (it may stay Terminating while a pod still mounts it).

    Only the claim that exists now, or the one with ``uid`` when given: 409 if replaced.
    """
    return _delete(
        kind=KIND_PVC, actor=actor, namespace=namespace, name=name, job_id=job_id, uid=uid
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
