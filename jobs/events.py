"""What the world hears of a job: its notification events and its metrics.

Called by the runner (and the cancel service) inside the transaction that changes the job's
status, under the job's row lock: the event is written to the outbox in that transaction
(:func:`ops.notifications.notify`), and the metrics are counted once it has committed, so a
rolled-back change is neither announced nor counted.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from jobs.models import Job, JobStatus, JobStep
from ops import metrics
from ops.notifications import notify

#: The event of each status a job can reach.
EVENT_OF_STATUS = {
    JobStatus.RUNNING: "job.started",
    JobStatus.SUCCESS: "job.succeeded",
    JobStatus.FAILED: "job.failed",
    JobStatus.CANCELLED: "job.cancelled",
}


def _stamp(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def job_data(job: Job, status: str) -> dict:
    """The ``data`` of a job's event: which job, on what, for whom, and how it stands."""
    return {
        "job_id": job.job_id,
        "type": job.type,
        "status": str(status),
        "namespace": job.target_namespace,
        "target": {"kind": job.target_kind, "name": job.target_name},
        "actor": job.acting_actor or job.actor,
        "created_at": _stamp(job.created_at),
        "finished_at": _stamp(job.finished_at),
        "error": job.error,
    }


def job_started(job: Job) -> None:
    """The job was claimed for the first time since it was requested or retried."""
    notify("job.started", job.target_namespace, job_data(job, JobStatus.RUNNING))


def job_ended(job: Job) -> None:
    """The job reached ``job.status`` (success, failed, cancelled): announce and count it."""
    status = str(job.status)
    notify(EVENT_OF_STATUS[job.status], job.target_namespace, job_data(job, status))
    job_type = job.type
    transaction.on_commit(lambda: metrics.JOBS.labels(job_type, status).inc())


def step_ended(job_type: str, step: JobStep, now: datetime) -> None:
    """A step finished (done or failed) at ``now``: time it, once committed."""
    if step.started_at is None:
        return
    seconds = max(0.0, (now - step.started_at).total_seconds())
    name = step.name
    transaction.on_commit(lambda: metrics.JOB_STEP_DURATION.labels(job_type, name).observe(seconds))
