"""The management command of every job type: its arguments come from the type's input
serializer, it starts the job through the one start service, and ``--wait`` follows it with
the one follow loop.

A type's command module is three lines::

    from jobs.command import JobStartCommand

    class Command(JobStartCommand):
        job_type = "rollout-restart"

Required input fields become positional arguments (in the serializer's order), optional ones
``--flags`` (``--allow-outage`` for a boolean, ``--strategy in-place`` for a choice,
``--ordinal 2`` for an integer). Values are passed as typed; the serializer applies the API's
rules, so the CLI refuses exactly what the API refuses, with the same audit row.
"""

from __future__ import annotations

import logging
import shutil
import time
from contextlib import contextmanager

from django.core.management.base import BaseCommand, CommandError
from rest_framework import serializers

from jobs.cli import failed_step, progress, steps_table
from jobs.inputs import BoolField, IntField
from jobs.models import Job, JobStatus, JobStep
from jobs.registry import get_job_type
from jobs.services import job_request
from ops.cli import (
    add_dry_run_option,
    cli_actor,
    fmt_duration,
    int_or_raw,
    report_deferred,
    service_errors,
    shorten,
)

#: After this long with the job still pending and untouched, say that no worker may be running.
NO_WORKER_HINT_AFTER = 15.0
EXIT_INTERRUPTED = 130
#: Width the progress lines keep to when the output is not a terminal.
PLAIN_WIDTH = 80


@contextmanager
def _quiet_queue(verbosity: int):
    """Keep django-q2's "Enqueued" info line out of the command's output (shown with -v 2)."""
    queue_log = logging.getLogger("django-q")
    level = queue_log.level
    if verbosity < 2:
        queue_log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        queue_log.setLevel(level)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


class JobStartCommand(BaseCommand):
    """Start a job of ``job_type``; ``--wait`` follows it to its end (exit 0 success, 1 not)."""

    job_type: str = ""

    @property
    def help(self) -> str:  # type: ignore[override]
        kind = get_job_type(self.job_type)
        return f"{kind.description} Prints the job id; --wait follows the steps until the job ends."

    def _fields(self) -> dict[str, serializers.Field]:
        return dict(get_job_type(self.job_type).input().fields)

    def add_arguments(self, parser):
        for name, field in self._fields().items():
            text = str(field.help_text or "")
            if field.required:
                parser.add_argument(
                    name, type=int_or_raw if isinstance(field, IntField) else str, help=text
                )
            elif isinstance(field, BoolField):
                parser.add_argument(
                    _flag(name), dest=name, action="store_true", default=None, help=text
                )
            elif isinstance(field, serializers.ChoiceField):
                parser.add_argument(_flag(name), dest=name, choices=list(field.choices), help=text)
            else:
                kind = int_or_raw if isinstance(field, IntField) else str
                parser.add_argument(_flag(name), dest=name, type=kind, help=text)
        add_dry_run_option(parser)
        parser.add_argument(
            "--wait", action="store_true", help="follow the job; exit 0 on success, 1 otherwise"
        )
        parser.add_argument(
            "--interval", type=float, default=0.5, help="seconds between two looks (--wait)"
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=None,
            help="stop waiting after this many seconds (the job goes on); default: no limit",
        )

    def handle(
        self, *args, wait: bool, interval: float, timeout: float | None, dry_run: bool, **options
    ):
        data = {name: options[name] for name in self._fields() if options.get(name) is not None}
        with service_errors(), _quiet_queue(options["verbosity"]):
            job = job_request(
                actor=cli_actor(), job_type=self.job_type, data=data, dry_run=dry_run, gated=True
            )
        if report_deferred(self, job):
            return
        self.stdout.write(job.job_id)
        if not wait:
            self.stderr.write(f"started; follow it with: manage.py ops_job {job.job_id}")
            return
        follow_to_end(self, job.job_id, interval=interval, timeout=timeout)


def follow_to_end(command: BaseCommand, job_id: str, *, interval: float, timeout: float | None):
    """Follow a job until it ends; return normally on success, else raise CommandError (1)."""
    try:
        job, steps = Follower(command).follow(job_id, max(interval, 0.05), timeout)
    except KeyboardInterrupt:
        raise CommandError(
            f"stopped waiting; the job goes on: manage.py ops_job {job_id}",
            returncode=EXIT_INTERRUPTED,
        ) from None
    took = fmt_duration(job.created_at, job.finished_at)
    if job.status == JobStatus.SUCCESS:
        command.stdout.write(command.style.SUCCESS(f"job {job_id} succeeded in {took}"))
        return
    step = failed_step(steps)
    where = f" at step {step.name}: {step.detail}" if step else ""
    raise CommandError(f"job {job_id} {job.status} after {took}{where}")


class Follower:
    """Shows a job's steps as they move: redrawn in place on a terminal (fitted to its
    width), else one line per change, each within 80 columns."""

    def __init__(self, command: BaseCommand) -> None:
        self.command = command
        self.out = command.stdout

    def follow(
        self, job_id: str, interval: float, timeout: float | None
    ) -> tuple[Job, list[JobStep]]:
        """Poll the job's rows until it ends, showing each change; returns the final rows."""
        started = time.monotonic()
        live = self.out.isatty()
        seen: dict[int, tuple[str, str | None]] = {}
        drawn = 0
        hinted = False
        while True:
            job = Job.objects.get(job_id=job_id)
            steps = list(JobStep.objects.filter(job_id=job_id).order_by("step_order"))
            if live:
                drawn = self._redraw(job, steps, drawn)
            else:
                self._print_changes(steps, seen)
            if not job.is_active:
                return job, steps
            waited = time.monotonic() - started
            untouched = job.status == JobStatus.PENDING and job.lease_owner is None
            if untouched and not hinted and waited > NO_WORKER_HINT_AFTER:
                hinted = True
                self.command.stderr.write(
                    "no worker has picked the job up yet: is one running? "
                    "(`make run` starts one; or `manage.py qcluster`)"
                )
            if timeout is not None and waited > timeout:
                raise CommandError(
                    f"job {job_id} still {job.status} after {timeout:g} s; it goes on: "
                    f"manage.py ops_job {job_id}"
                )
            time.sleep(interval)

    def _print_changes(self, steps: list[JobStep], seen: dict) -> None:
        """One line per step whose status or detail changed since the last look."""
        total = len(steps)
        for step in steps:
            state = (step.status, step.detail)
            if seen.get(step.step_order) == state:
                continue
            seen[step.step_order] = state
            if step.status == JobStatus.PENDING and step.detail is None:
                continue  # nothing to say about a step that has not started
            head = f"[{progress(step.step_order, total)}] {step.name:<20} {step.status:<9}"
            detail = shorten(step.detail, PLAIN_WIDTH - len(head) - 1) if step.detail else ""
            self.out.write(f"{head} {detail}".rstrip())

    def _redraw(self, job: Job, steps: list[JobStep], drawn: int) -> int:
        """Redraw the job's line and step table in place (a terminal); returns lines drawn."""
        done = sum(1 for s in steps if s.status == JobStatus.SUCCESS)
        width = shutil.get_terminal_size().columns
        lines = [
            f"job {job.job_id}: {job.status}, {progress(done, len(steps))} steps, "
            f"{fmt_duration(job.created_at, job.finished_at)}",
            *steps_table(steps, detail_width=max(20, width - 90)).splitlines(),
        ]
        if drawn:
            self.out.write(f"\x1b[{drawn}F\x1b[J", ending="")
        self.out.write("\n".join(line[: width - 1] for line in lines))
        return len(lines)
