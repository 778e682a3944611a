"""Reads of the job tables."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import connection
from django.db.models import Count, Prefetch, Q, QuerySet
from django.db.models.functions import Now

from jobs.models import ACTIVE_STATUSES, Job, JobPump, JobStatus, JobStep
from jobs.registry import job_type_names
from ops.actors import ORIGIN_CLI, Actor
from ops.models import ApiKey


def jobs_visible_to(actor: Actor) -> QuerySet[Job]:
    """Jobs with their steps, newest first; a key scoped to namespaces sees only those."""
    jobs = Job.objects.prefetch_related(
        Prefetch("steps", queryset=JobStep.objects.order_by("step_order"))
    ).order_by("-created_at", "-id")
    if actor.namespaces:
        jobs = jobs.filter(target_namespace__in=actor.namespaces)
    return jobs


def with_progress(jobs: QuerySet[Job]) -> QuerySet[Job]:
    """Annotate ``steps_total`` and ``steps_done`` (successful steps) on each job.

    One aggregate in the same query, so lists that show a progress bar (the admin, the
    dashboard, ``ops_jobs``) do not load every step of every job.
    """
    return jobs.annotate(
        steps_total=Count("steps", distinct=True),
        steps_done=Count("steps", filter=Q(steps__status=JobStatus.SUCCESS), distinct=True),
    )


@dataclass(frozen=True)
class PumpStatus:
    """When the jobs pump last ran (None: never) and how many seconds ago."""

    last_run_at: datetime | None
    age_seconds: float | None


def pump_status(using: str = "default") -> PumpStatus:
    """Read ``ops_job_pump.last_run_at`` and its age, both on the database's clock.

    The pump stamps ``last_run_at`` with the database's ``now()``, so the age is measured
    against the same clock: a pod whose own clock is off cannot make a live pump look dead.
    Raises django.db.Error when the database cannot be read.
    """
    row = (
        JobPump.objects.using(using)
        .filter(id=1)
        .annotate(db_now=Now())
        .values_list("last_run_at", "db_now")
        .first()
    )
    if row is None or row[0] is None:
        return PumpStatus(last_run_at=None, age_seconds=None)
    last_run_at, db_now = row
    return PumpStatus(last_run_at, max(0.0, (db_now - last_run_at).total_seconds()))


def pump_info() -> dict:
    """``/health/ready``'s ``info.jobs_pump``: when the pump last ran and how long ago
    (information for operators, never a reason to be unready; the worker's own liveness
    probe acts on it). Raises django.db.Error when the database cannot be read."""
    pump = pump_status()
    age = None if pump.age_seconds is None else round(pump.age_seconds, 1)
    return {"last_run_at": pump.last_run_at, "age_seconds": age}


def acting_key_refusal(name: str | None, origin: str | None) -> str | None:
    """Why a job may no longer act for ``name`` (its API key revoked, expired or gone), or None.

    Only API keys are checked: a command's ``cli:<user>`` and the bootstrap key (from the
    settings, not a row) have nothing to revoke here. A job keeps acting for a person only as
    long as that person could still ask for the same thing themselves.
    """
    if name is None or origin == ORIGIN_CLI or name == settings.APIOPS["API_KEY_ACTOR"]:
        return None
    if ApiKey.objects.usable().filter(name=name).exists():
        return None
    key = ApiKey.objects.filter(name=name).order_by("-created_at", "-id").first()
    if key is None:
        return f"the API key {name!r} this job acts for no longer exists"
    if not key.active:
        when = f" at {key.revoked_at:%Y-%m-%d %H:%M:%S} UTC" if key.revoked_at else ""
        return f"the API key {name!r} this job acts for was revoked{when}"
    return (
        f"the API key {name!r} this job acts for expired at {key.expires_at:%Y-%m-%d %H:%M:%S} UTC"
    )


def active_jobs_by_type() -> dict[tuple[str], int]:
    """``/metrics``' ``apiops_jobs_active``: pending or running jobs of each type (every
    registered type, 0 included)."""
    counts = {(name,): 0 for name in job_type_names()}
    rows = (
        Job.objects.filter(status__in=ACTIVE_STATUSES).values_list("type").annotate(n=Count("id"))
    )
    for job_type, n in rows:
        counts[(job_type,)] = n
    return counts


_QUEUE_SQL = """
SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(lock)), 0)
  FROM django_q_ormq WHERE key = %s AND lock <= now()
"""


def queue_due() -> tuple[int, float]:
    """Tasks of the ORM broker's queue that are due and not taken (a taken task's ``lock``
    is pushed into the future), and the age of the oldest of them in seconds (0: none)."""
    from django_q.conf import Conf

    with connection.cursor() as cursor:
        cursor.execute(_QUEUE_SQL, [Conf.CLUSTER_NAME])
        count, age = cursor.fetchone()
    return int(count), max(0.0, float(age))
