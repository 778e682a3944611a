"""Writes on jobs: starting one (and, later, cancelling one). Views and commands call these."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from jobs.dispatch import enqueue_tick_on_commit
from jobs.models import ACTIVE_STATUSES, Job, JobStatus, JobStep, make_job_id
from jobs.registry import get_job_type
from ops.actors import Actor
from ops.errors import OpsError

ONE_ACTIVE_PER_TARGET = "ops_job_one_active_per_target"


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
) -> Job:
    """Record a job with all its steps pending and wake a worker once it is committed.

    The one-active-job-per-target rule is the partial unique index's, not a prior SELECT:
    two concurrent requests cannot both pass it.
    """
    kind = get_job_type(job_type)
    created_at = timezone.now()
    try:
        with transaction.atomic():
            job = Job.objects.create(
                job_id=make_job_id(created_at, job_type),
                type=job_type,
                status=JobStatus.PENDING,
                created_at=created_at,
                params=params,
                actor=actor.name,
                source_ip=actor.source_ip,
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
        if getattr(getattr(exc.__cause__, "diag", None), "constraint_name", None) == (
            ONE_ACTIVE_PER_TARGET
        ):
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
                f"{kind.target_kind} {target_namespace}/{target_name} is already being worked "
                f"on by active job {holder or '(just finished)'}."
            ) from exc
        raise
    enqueue_tick_on_commit(job.job_id, job.tick_seq)
    return job


def job_cancel(*, job_id: str) -> bool:
    """Ask an active job to stop between actions; returns False when it was not active."""
    return (
        Job.objects.filter(job_id=job_id, status__in=ACTIVE_STATUSES).update(cancel_requested=True)
        == 1
    )
