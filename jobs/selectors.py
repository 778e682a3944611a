"""Reads of the job tables."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from jobs.models import Job, JobStep
from ops.actors import Actor


def jobs_visible_to(actor: Actor) -> QuerySet[Job]:
    """Jobs with their steps, newest first; a key scoped to namespaces sees only those."""
    jobs = Job.objects.prefetch_related(
        Prefetch("steps", queryset=JobStep.objects.order_by("step_order"))
    ).order_by("-created_at", "-id")
    if actor.namespaces:
        jobs = jobs.filter(target_namespace__in=actor.namespaces)
    return jobs
