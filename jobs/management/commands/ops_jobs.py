"""``manage.py ops_jobs [--status ...] [--type ...] [--namespace ...] [--limit N]``: recent jobs
as a table, newest first, filtered as ``GET /ops/jobs`` filters them."""

from __future__ import annotations

from django.core.management.base import CommandError

from jobs.cli import job_target, progress
from jobs.filters import JobFilter
from jobs.models import JobStatus
from jobs.selectors import jobs_visible_to, with_progress
from jobs.serializers import JobSerializer
from ops.cli import (
    EXIT_INVALID,
    OpsCommand,
    add_output_option,
    cli_actor,
    fmt_duration,
    fmt_time,
    format_table,
    write_json,
)

HEADERS = ["job", "type", "target", "status", "steps", "created (UTC)", "took", "actor"]


class Command(OpsCommand):
    help = "List jobs, newest first."

    def add_arguments(self, parser):
        parser.add_argument(
            "--status",
            action="append",
            choices=JobStatus.values,
            help="only jobs in this status (repeat for several)",
        )
        parser.add_argument("--type", help="only this job type, e.g. pg-rebuild")
        parser.add_argument("--namespace", help="only jobs on objects in this namespace")
        parser.add_argument(
            "--limit", type=int, default=20, help="at most this many jobs (default 20)"
        )
        add_output_option(parser)

    def handle(self, *args, status: list[str] | None, limit: int, output: str, **options):
        if limit < 1:
            raise CommandError("--limit must be at least 1", returncode=EXIT_INVALID)
        data = {key: options[key] for key in ("type", "namespace") if options[key] is not None}
        found = JobFilter(data=data, queryset=jobs_visible_to(cli_actor()))
        if not found.is_valid():
            problems = "; ".join(f"--{f}: {' '.join(m)}" for f, m in found.errors.items())
            raise CommandError(problems, returncode=EXIT_INVALID)
        jobs = found.qs
        if status:
            jobs = jobs.filter(status__in=status)
        if output == "json":
            items = JobSerializer(jobs.prefetch_related("steps")[:limit], many=True).data
            write_json(self.stdout, items)
            return
        page = list(with_progress(jobs.prefetch_related(None))[: limit + 1])
        if not page:
            self.stdout.write("no jobs match")
            return
        self.stdout.write(
            format_table(
                HEADERS,
                [
                    [
                        job.job_id,
                        job.type,
                        job_target(job),
                        job.status,
                        progress(job.steps_done, job.steps_total),
                        fmt_time(job.created_at),
                        fmt_duration(job.created_at, job.finished_at),
                        job.actor or "-",
                    ]
                    for job in page[:limit]
                ],
            )
        )
        if len(page) > limit:
            self.stdout.write(f"(the newest {limit} jobs; --limit shows more)")
