"""Admin for jobs: a read-only list with a progress bar, and each job with its steps.

Jobs are driven by the runner and started through the audited services; the admin only
looks (no add, change or delete, for superusers too), like the audit log's admin.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

from django.contrib import admin
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from jobs import q_admin  # noqa: F401 - django-q2's admin pages, made read-only
from jobs.models import Job, JobStep
from jobs.selectors import with_progress
from ops import charts
from ops.admin import ReadOnlyAdminMixin
from ops.cli import fmt_duration, fmt_time


def progress_bar(*, done: int, total: int, status: str) -> str:
    """Steps done out of total as a plain HTML/CSS bar (the same markup as the dashboard's)."""
    return render_to_string(
        "admin/jobs/progress.html", {"done": done, "total": total, "status": status}
    )


class JobStepInline(ReadOnlyAdminMixin, admin.TabularInline):
    """The job's steps in order, as the runner left them."""

    model = JobStep
    fields = ["step_order", "name", "status_badge", "detail", "started", "finished", "took"]
    readonly_fields = fields
    ordering = ["step_order"]
    extra = 0
    can_delete = False
    show_change_link = False
    classes = ["ops-steps"]

    @admin.display(description="status")
    def status_badge(self, step: JobStep) -> str:
        return format_html('<span class="ops-status ops-status-{0}">{0}</span>', step.status)

    @admin.display(description="started (UTC)")
    def started(self, step: JobStep) -> str:
        return fmt_time(step.started_at)

    @admin.display(description="finished (UTC)")
    def finished(self, step: JobStep) -> str:
        return fmt_time(step.finished_at)

    @admin.display(description="took")
    def took(self, step: JobStep) -> str:
        return fmt_duration(step.started_at, step.finished_at)


@admin.register(Job)
class JobAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Jobs, newest first: type, target, status, progress, age, duration."""

    list_display = [
        "job_id",
        "type",
        "target",
        "status_badge",
        "progress",
        "created",
        "duration",
        "actor",
    ]
    list_filter = ["status", "type", "target_namespace"]
    search_fields = ["job_id", "target_name", "actor"]
    date_hierarchy = "created_at"
    ordering = ["-created_at", "-id"]
    list_per_page = 50
    show_full_result_count = False
    inlines = [JobStepInline]
    fieldsets = [
        (
            "Job",
            {
                "fields": [
                    "job_id",
                    "type",
                    "target",
                    "status_badge",
                    "progress",
                    "timeline",
                    "params_json",
                    "error_text",
                    "result_json",
                    "actor",
                    "source_ip",
                    "created",
                    "finished",
                    "duration",
                    "audit_rows",
                ]
            },
        ),
        (
            "Runner",
            {
                "classes": ["collapse"],
                "fields": [
                    "lease_owner",
                    "lease_expires_at",
                    "heartbeat_at",
                    "next_run_at",
                    "tick_seq",
                    "cancel_requested",
                ],
            },
        ),
    ]
    readonly_fields = [name for _, options in fieldsets for name in options["fields"]]

    def get_queryset(self, request):
        return with_progress(super().get_queryset(request))

    @admin.display(description="target", ordering="target_name")
    def target(self, job: Job) -> str:
        return f"{job.target_kind} {job.target_namespace}/{job.target_name}"

    @admin.display(description="status", ordering="status")
    def status_badge(self, job: Job) -> str:
        return format_html('<span class="ops-status ops-status-{0}">{0}</span>', job.status)

    @admin.display(description="progress")
    def progress(self, job: Job) -> str:
        return progress_bar(done=job.steps_done, total=job.steps_total, status=job.status)

    @admin.display(description="timeline")
    def timeline(self, job: Job) -> str:
        steps = charts.spans_of(job.steps.order_by("step_order"))
        if not any(step.started_at for step in steps):
            return "no step has started"
        chart = charts.timeline(steps, timezone.now())
        return render_to_string(
            "admin/ops/chart.html",
            {"chart": chart, "chart_id": "ops-job-timeline", "label": f"Steps of {job.job_id}"},
        )

    @admin.display(description="created (UTC)", ordering="created_at")
    def created(self, job: Job) -> str:
        return fmt_time(job.created_at)

    @admin.display(description="finished (UTC)", ordering="finished_at")
    def finished(self, job: Job) -> str:
        return fmt_time(job.finished_at)

    @admin.display(description="duration")
    def duration(self, job: Job) -> str:
        return fmt_duration(job.created_at, job.finished_at)

    @admin.display(description="params")
    def params_json(self, job: Job) -> str:
        text = json.dumps(job.params, indent=2, sort_keys=True, ensure_ascii=False)
        return format_html('<pre class="ops-json">{}</pre>', text)

    @admin.display(description="error")
    def error_text(self, job: Job) -> str:
        if not job.error:
            return "-"
        return format_html(
            '<code class="ops-error-code">{}</code> {}',
            job.error.get("code"),
            job.error.get("detail"),
        )

    @admin.display(description="result (evidence)")
    def result_json(self, job: Job) -> str:
        text = json.dumps(job.result or {}, indent=2, sort_keys=True, ensure_ascii=False)
        return format_html('<pre class="ops-json">{}</pre>', text)

    @admin.display(description="audit")
    def audit_rows(self, job: Job) -> str:
        url = reverse("admin:ops_opslog_changelist") + "?" + urlencode({"job_id": job.job_id})
        return format_html('<a href="{}">audit rows of this job</a>', url)
