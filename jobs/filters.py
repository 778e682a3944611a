"""Filters of ``GET /ops/jobs``: a malformed value is a 400, never silently ignored."""

from __future__ import annotations

import django_filters

from jobs.models import Job, JobStatus
from ops.filters import ChoiceFilter


class JobFilter(django_filters.FilterSet):
    """status (one of the job statuses), type (e.g. ``pg-rebuild``), namespace of the target."""

    status = ChoiceFilter(field_name="status", choices=JobStatus.choices)
    type = django_filters.CharFilter(field_name="type")
    namespace = django_filters.CharFilter(field_name="target_namespace")

    class Meta:
        model = Job
        fields = ["status", "type", "namespace"]
