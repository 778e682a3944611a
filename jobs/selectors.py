"""Reads of the job tables."""

from __future__ import annotations

from django.db.models import Count, Prefetch, Q, QuerySet

from jobs.models import Job, JobStatus, JobStep
from ops.actors import Actor


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
