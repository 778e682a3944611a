"""Writes on jobs: starting one, asking one to stop. Views and commands call these.

Starting a job is an attempted operation like a scale: it writes exactly one ``ops_log`` row
(``denied`` / ``error`` when refused, ``success`` with the new ``job_id``), and the rows of its
steps' mutations follow, linked by the same ``job_id``.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from jobs.dispatch import enqueue_tick_on_commit
from jobs.models import ACTIVE_STATUSES, Job, JobStatus, JobStep, make_job_id
from jobs.registry import get_job_type
from ops import k8s, policy
from ops.actors import Actor
from ops.audit import Target, record, record_error
from ops.errors import InvalidInput, NamespaceDenied, OpsError, from_k8s
from ops.models import OpsLogStatus
from ops.validation import name_problem, namespace_problem

ONE_ACTIVE_PER_TARGET = "ops_job_one_active_per_target"
PG_REBUILD = "pg-rebuild"
KIND_STATEFULSET = "statefulset"


class JobTargetBusy(OpsError):
    """409: the database refused a second active job on the same object."""

    status_code = 409
    default_detail = "An active job already holds this target."
    default_code = "job_target_busy"


def job_start(
    *,
    actor: Actor,
    job_type: str,
    params: dict,
    target_namespace: str,
    target_name: str,
    job_id: str | None = None,
    created_at: datetime | None = None,
) -> Job:
    """Record a job with all its steps pending and wake a worker once it is committed.

    The one-active-job-per-target rule is the partial unique index's, not a prior SELECT:
    two concurrent requests cannot both pass it.
    """
    kind = get_job_type(job_type)
    created_at = created_at or timezone.now()
    try:
        with transaction.atomic():
            job = Job.objects.create(
                job_id=job_id or make_job_id(created_at, job_type),
                type=job_type,
                status=JobStatus.PENDING,
                created_at=created_at,
                params=params,
                actor=actor.name,
                source_ip=actor.source_ip,
                actor_namespaces=list(actor.namespaces) if actor.namespaces else None,
                target_kind=kind.target_kind,
                target_namespace=target_namespace,
                target_name=target_name,
                next_run_at=created_at,
            )
            JobStep.objects.bulk_create(
                JobStep(job=job, name=step.name, step_order=order)
                for order, step in enumerate(kind.steps, start=1)
            )
    except IntegrityError as exc:
        constraint = getattr(getattr(exc.__cause__, "diag", None), "constraint_name", None)
        if constraint != ONE_ACTIVE_PER_TARGET:
            raise
        holder = (
            Job.objects.filter(
                target_kind=kind.target_kind,
                target_namespace=target_namespace,
                target_name=target_name,
                status__in=ACTIVE_STATUSES,
            )
            .values_list("job_id", flat=True)
            .first()
        )
        raise JobTargetBusy(
            f"{kind.target_kind} {target_namespace}/{target_name} is already being worked on "
            f"by active job {holder or '(which has just finished: try again)'}."
        ) from exc
    enqueue_tick_on_commit(job.job_id, job.tick_seq)
    return job


def _pg_rebuild_problems(
    namespace: object, statefulset: object, ordinal: object, target_replicas: object
) -> dict[str, list[str]]:
    """The input rules of a rebuild (the serializer checks them too; the CLI relies on these)."""
    problems: dict[str, str | None] = {
        "namespace": namespace_problem(namespace),
        "statefulset": name_problem(statefulset),
    }
    for field, value, minimum in (("ordinal", ordinal, 0), ("target_replicas", target_replicas, 1)):
        if isinstance(value, bool) or not isinstance(value, int):
            problems[field] = "Must be an integer (not a string, bool, float or null)."
        elif value < minimum:
            problems[field] = f"Must be at least {minimum}."
    maximum = settings.APIOPS["MAX_REPLICAS"]
    if not problems.get("target_replicas") and target_replicas > maximum:
        problems["target_replicas"] = f"Must be at most {maximum}."
    valid_numbers = not problems.get("ordinal") and not problems.get("target_replicas")
    if valid_numbers and target_replicas <= ordinal:
        problems["target_replicas"] = (
            f"Must be greater than ordinal ({ordinal}): pod {ordinal} must come back."
        )
    return {field: [msg] for field, msg in problems.items() if msg}


def pg_rebuild_start(
    *, actor: Actor, namespace: str, statefulset: str, ordinal: int, target_replicas: int
) -> Job:
    """Start rebuilding replica ``ordinal`` of a PostgreSQL StatefulSet (202 on success).

    Everything that can be refused is checked before the job exists: input rules (400),
    namespace policy (403), the StatefulSet exists (404) and has volumeClaimTemplates (400),
    no other active job on it (409, from the database).
    """
    params = {
        "namespace": namespace,
        "statefulset": statefulset,
        "ordinal": ordinal,
        "target_replicas": target_replicas,
    }
    target = Target(PG_REBUILD, KIND_STATEFULSET, str(namespace), str(statefulset), params)
    errors = _pg_rebuild_problems(namespace, statefulset, ordinal, target_replicas)
    if errors:
        error = InvalidInput(errors)
        record_error(actor=actor, target=target, error=error, status=OpsLogStatus.ERROR)
        raise error
    reason = policy.namespace_refusal(actor, namespace)
    if reason:
        error = NamespaceDenied(reason)
        record_error(actor=actor, target=target, error=error, status=OpsLogStatus.DENIED)
        raise error
    try:
        try:
            sts = k8s.statefulset_read(namespace=namespace, name=statefulset)
        except k8s.K8sError as e:
            raise from_k8s(e) from e
        if not sts.claim_templates:
            raise InvalidInput(
                {
                    "statefulset": [
                        f"StatefulSet {namespace}/{statefulset} has no volumeClaimTemplates: "
                        "there is no per-replica claim to rebuild."
                    ]
                }
            )
        job = job_start(
            actor=actor,
            job_type=PG_REBUILD,
            params=params,
            target_namespace=namespace,
            target_name=statefulset,
        )
    except OpsError as error:
        record_error(actor=actor, target=target, error=error, status=OpsLogStatus.ERROR)
        raise
    # Written after the job row, inside the same request: if the audit row cannot be written,
    # AuditUnavailable rolls the job back (no audit, no job).
    record(
        actor_name=actor.name,
        source_ip=actor.source_ip,
        origin=actor.origin,
        target=target,
        status=OpsLogStatus.SUCCESS,
        http_status=202,
        job_id=job.job_id,
    )
    return job


def job_cancel(*, job_id: str) -> bool:
    """Ask an active job to stop between actions; returns False when it was not active."""
    updated = Job.objects.filter(job_id=job_id, status__in=ACTIVE_STATUSES).update(
        cancel_requested=True
    )
    return updated == 1
