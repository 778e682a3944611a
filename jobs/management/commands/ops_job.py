"""``manage.py ops_job JOB_ID``: one job's status and its steps (what ``GET /ops/jobs/{id}``
answers), plus the audit rows its steps wrote."""

from __future__ import annotations

from django.core.management.base import CommandError

from jobs.cli import job_summary, steps_table
from jobs.models import Job
from jobs.selectors import jobs_visible_to
from ops.cli import EXIT_NOT_FOUND, OpsCommand, cli_actor, fmt_time, format_table, shorten
from ops.selectors import audit_rows_for_job


class Command(OpsCommand):
    help = "Show a job: its status, parameters, steps (order, status, times, detail)."

    def add_arguments(self, parser):
        parser.add_argument("job_id", help="e.g. 2025-01-15T10:30:00+00:00_pg-rebuild_abc12345")
        parser.add_argument(
            "--no-audit", action="store_true", help="leave out the audit rows of the job"
        )

    def handle(self, *args, job_id: str, no_audit: bool, **options):
        try:
            job = jobs_visible_to(cli_actor()).get(job_id=job_id)
        except Job.DoesNotExist:
            raise CommandError(f"no job {job_id!r}", returncode=EXIT_NOT_FOUND) from None
        self.stdout.write("\n".join(job_summary(job)))
        self.stdout.write("")
        self.stdout.write(steps_table(list(job.steps.all())))
        if no_audit:
            return
        rows = list(audit_rows_for_job(job.job_id))
        self.stdout.write("")
        if not rows:
            self.stdout.write("audit: no rows for this job")
            return
        self.stdout.write("audit:")
        self.stdout.write(
            format_table(
                ["time (UTC)", "actor", "action", "kind", "object", "status", "error"],
                [
                    [
                        fmt_time(r.ts),
                        r.actor or "-",
                        r.action,
                        r.resource_kind,
                        f"{r.namespace}/{r.resource_name}",
                        r.status,
                        shorten(r.error_message, 50),
                    ]
                    for r in rows
                ],
            )
        )
