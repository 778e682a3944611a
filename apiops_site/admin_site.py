"""The admin site: Django's, with an index that is a dashboard.

The index keeps the standard app list and adds what an operator looks at first: the last
24 hours of operations by outcome (and a chart of them per hour), the latest denials, active
and failed jobs, each with a link into the filtered list behind it. Installed as the default site by
:class:`apiops_site.apps.ApiOpsAdminConfig`, so every ``admin.site.register`` lands here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from django.contrib import admin
from django.db.models import Count, Prefetch
from django.urls import reverse
from django.utils import timezone

if TYPE_CHECKING:
    from ops.charts import Chart

WINDOW = timedelta(hours=24)
RECENT_LIMIT = 8


@dataclass(frozen=True)
class StatusCount:
    """How many audit rows had one outcome in the window, and the list that shows them."""

    status: str
    count: int
    url: str


@dataclass
class Dashboard:
    """What the admin index shows above the app list."""

    since: datetime
    ops_total: int
    ops_total_url: str
    ops_by_status: list[StatusCount]
    denials_url: str
    unauthenticated_denials: int
    unauthenticated_url: str
    recent_denials: list = field(default_factory=list)
    active_jobs: list = field(default_factory=list)
    active_jobs_url: str = ""
    failed_jobs: list = field(default_factory=list)
    failed_jobs_url: str = ""
    failed_jobs_count: int = 0
    #: Operations per hour stacked by status (ops.charts.operations_per_hour).
    ops_chart: Chart | None = None


def _changelist(model: str, **params: object) -> str:
    url = reverse(f"admin:{model}_changelist")
    return f"{url}?{urlencode(params)}" if params else url


def dashboard_summary(now: datetime | None = None) -> Dashboard:
    """The dashboard's figures: a handful of indexed queries, whatever the table sizes."""
    from jobs.models import ACTIVE_STATUSES, Job, JobStatus, JobStep
    from jobs.selectors import with_progress
    from ops.charts import operations_per_hour
    from ops.models import OpsLogStatus
    from ops.selectors import audit_rows

    now = now or timezone.now()
    since = (now - WINDOW).replace(microsecond=0)
    window = {"ts__gte": since.isoformat()}
    recent = audit_rows().filter(ts__gte=since)
    counts = dict(recent.order_by().values_list("status").annotate(n=Count("id")))
    by_status = [
        StatusCount(
            status=status,
            count=counts.get(status, 0),
            url=_changelist("ops_opslog", status__exact=status, **window),
        )
        for status in OpsLogStatus.values
    ]
    denied = recent.filter(status=OpsLogStatus.DENIED)
    jobs = with_progress(Job.objects.order_by("-created_at", "-id"))
    failed = jobs.filter(status=JobStatus.FAILED, created_at__gte=since)
    failing_step = Prefetch(
        "steps", queryset=JobStep.objects.filter(status=JobStatus.FAILED), to_attr="failed_steps"
    )
    return Dashboard(
        since=since,
        ops_total=sum(counts.values()),
        ops_total_url=_changelist("ops_opslog", **window),
        ops_by_status=by_status,
        denials_url=_changelist("ops_opslog", status__exact=OpsLogStatus.DENIED, **window),
        unauthenticated_denials=denied.filter(actor__isnull=True).count(),
        unauthenticated_url=_changelist(
            "ops_opslog", status__exact=OpsLogStatus.DENIED, actor__isnull="True", **window
        ),
        recent_denials=list(denied[:RECENT_LIMIT]),
        active_jobs=list(jobs.filter(status__in=ACTIVE_STATUSES)[:RECENT_LIMIT]),
        active_jobs_url=_changelist("jobs_job", status__in=",".join(ACTIVE_STATUSES)),
        failed_jobs=list(failed.prefetch_related(failing_step)[:RECENT_LIMIT]),
        failed_jobs_count=failed.count(),
        failed_jobs_url=_changelist(
            "jobs_job", status__exact=JobStatus.FAILED, created_at__gte=since.isoformat()
        ),
        ops_chart=operations_per_hour(now),
    )


class ApiOpsAdminSite(admin.AdminSite):
    """Django's admin site with ApiOps titles and the dashboard on the index."""

    site_header = "ApiOps administration"
    site_title = "ApiOps admin"
    index_title = "Dashboard"
    site_url = None  # no public site behind the API: no "View site" link
    # The app list is on the dashboard and in the breadcrumbs: without the sidebar, the lists
    # keep their columns (status, error, duration, actor) in view on a 1280 px screen.
    enable_nav_sidebar = False

    def index(self, request, extra_context=None):
        context = {"dashboard": dashboard_summary(), **(extra_context or {})}
        return super().index(request, extra_context=context)
