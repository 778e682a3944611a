"""Jobs and their steps: the database rows *are* the state machine the runner drives.

django-q2 only delivers wake-ups (ticks). Everything a tick needs to know — who holds the job,
until when, which step comes next, what that step already did, when its wait runs out — lives
in these two tables, so a redelivered, duplicated or killed tick can never make a job act
twice or forget where it stands.
"""

import secrets
from datetime import UTC, datetime

from django.db import models
from django.db.models import Q


class JobStatus(models.TextChoices):
    """Statuses of jobs and of steps."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    #: Stopped on request: not a failure (the job and the step that was running; steps not
    #: run stay pending).
    CANCELLED = "cancelled"


ACTIVE_STATUSES = (JobStatus.PENDING, JobStatus.RUNNING)
#: Ended without finishing: the statuses a retry starts from.
STOPPED_STATUSES = (JobStatus.FAILED, JobStatus.CANCELLED)


def make_job_id(created_at: datetime, job_type: str) -> str:
    """``<created_at ISO-8601 with +00:00>_<type>_<8 lowercase hex>`` (the seed's format)."""
    stamp = created_at.astimezone(UTC).isoformat(timespec="seconds")
    return f"{stamp}_{job_type}_{secrets.token_hex(4)}"


class Job(models.Model):
    """One requested operation (e.g. a PostgreSQL replica rebuild) and its runner lease."""

    # The seed's columns.
    job_id = models.TextField(unique=True)
    type = models.TextField()
    status = models.TextField(choices=JobStatus.choices, default=JobStatus.PENDING)
    created_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    params = models.JSONField()
    actor = models.TextField(null=True, blank=True)  # noqa: DJ001 - nullable in the seed
    source_ip = models.TextField(null=True, blank=True)  # noqa: DJ001 - nullable in the seed
    # The requesting key's namespace scope, so the steps act with exactly its permissions.
    actor_namespaces = models.JSONField(null=True, blank=True)
    # Who the steps act for now: the requester, then whoever last retried the job. The steps'
    # audit rows name them, and their key must still be usable before each mutation. NULL
    # acting_actor (jobs from before these columns): the requester above.
    acting_actor = models.TextField(null=True, blank=True)  # noqa: DJ001 - NULL: the requester
    acting_source_ip = models.TextField(null=True, blank=True)  # noqa: DJ001
    acting_namespaces = models.JSONField(null=True, blank=True)
    acting_origin = models.TextField(null=True, blank=True)  # noqa: DJ001 - api or cli

    # What the job acts on; one active job per target (see the constraint below).
    target_kind = models.TextField()
    target_namespace = models.TextField()
    target_name = models.TextField()

    # Runner state. Times are written with the database clock (now()), never the worker's.
    lease_owner = models.TextField(null=True, blank=True)  # noqa: DJ001 - NULL: nobody
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    next_run_at = models.DateTimeField(null=True, blank=True)
    # Incremented each time a tick hands the job on; a tick carries the value it was sent
    # with, so a stale or duplicated delivery can never start a second chain of ticks.
    tick_seq = models.IntegerField(default=0)
    cancel_requested = models.BooleanField(default=False)

    # What the job found and did, for people and auditors (its type decides: e.g. old and new
    # claim and pod uids, how long the target was down).
    result = models.JSONField(default=dict, blank=True)
    # Why it failed, machine-readable: {"code", "detail"}; NULL unless the job failed.
    error = models.JSONField(null=True, blank=True)

    class Meta:
        db_table = "ops_job"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["target_kind", "target_namespace", "target_name"],
                condition=Q(status__in=["pending", "running"]),
                name="ops_job_one_active_per_target",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "-created_at"], name="ops_job_status_idx"),
            models.Index(fields=["type", "-created_at"], name="ops_job_type_idx"),
            models.Index(fields=["target_namespace", "-created_at"], name="ops_job_ns_idx"),
            models.Index(
                fields=["next_run_at"],
                condition=Q(status__in=["pending", "running"]),
                name="ops_job_active_due_idx",
            ),
        ]

    def __str__(self) -> str:
        return self.job_id

    @property
    def is_active(self) -> bool:
        """Pending or running: it may still act, and it holds its target."""
        return self.status in ACTIVE_STATUSES


class JobStep(models.Model):
    """One step of a job, with what it has done so far and its own deadline."""

    job = models.ForeignKey(
        Job,
        to_field="job_id",
        db_column="job_id",
        on_delete=models.CASCADE,
        related_name="steps",
    )
    name = models.TextField()
    step_order = models.IntegerField()
    status = models.TextField(choices=JobStatus.choices, default=JobStatus.PENDING)
    detail = models.TextField(null=True, blank=True)  # noqa: DJ001 - nullable in the seed
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    # What the step learnt or did (original replicas, deleted claim uids...), so a re-run
    # looks before it acts.
    state = models.JSONField(default=dict)
    # Ticks that entered this step, and entries that found the previous one never finished
    # (its worker died or lost the lease): the latter drives the crash-loop limit.
    attempts = models.IntegerField(default=0)
    interruptions = models.IntegerField(default=0)
    # Fixed on first entry, so a wait's timeout survives redelivery and restarts.
    deadline_at = models.DateTimeField(null=True, blank=True)
    # Lease owner of the tick currently inside the step; cleared when that tick leaves cleanly.
    active_tick = models.TextField(null=True, blank=True)  # noqa: DJ001 - NULL: nobody

    class Meta:
        db_table = "ops_job_step"
        ordering = ["step_order"]
        constraints = [
            models.UniqueConstraint(fields=["job", "step_order"], name="ops_job_step_order_uniq"),
            models.UniqueConstraint(fields=["job", "name"], name="ops_job_step_name_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.job_id} #{self.step_order} {self.name}"


class JobPump(models.Model):
    """Single row that keeps one self-rescheduling pump alive and shows when it last ran."""

    id = models.SmallIntegerField(primary_key=True, default=1)
    next_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "ops_job_pump"

    def __str__(self) -> str:
        return f"pump (last run {self.last_run_at})"


class WorkerBeat(models.Model):
    """A job worker process and when it last said it was alive (``jobs.heartbeat``).

    ``/metrics`` counts those seen recently (``apiops_workers_alive``); a worker that died
    simply stops beating, and its row is removed an hour later.
    """

    name = models.TextField(primary_key=True)  # host:pid
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField()

    class Meta:
        db_table = "ops_job_worker"

    def __str__(self) -> str:
        return f"{self.name} (seen {self.seen_at})"
