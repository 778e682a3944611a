"""``manage.py ops_pg_rebuild NAMESPACE STATEFULSET ORDINAL TARGET_REPLICAS [--strategy
in-place|scale-to-zero] [--allow-outage] [--allow-scale-down] [--wait]``.

Starts the same job as ``POST /ops/jobs/pg-rebuild`` (same rules, same audit row, actor
``cli:<OS user>``) and prints its id. The job is run by the django-q2 worker (``make run``
starts one); with ``--wait`` this command only watches the job's rows and shows its steps as
they move, then exits 0 when the job succeeded and 1 when it failed.
"""

from __future__ import annotations

import logging
import shutil
import time
from contextlib import contextmanager

from django.core.management.base import BaseCommand, CommandError

from jobs.cli import failed_step, progress, steps_table
from jobs.models import Job, JobStatus, JobStep
from jobs.services import pg_rebuild_start
from jobs.types.pg_guards import STRATEGIES, STRATEGY_SCALE_TO_ZERO
from ops.cli import cli_actor, fmt_duration, int_or_raw, service_errors, shorten

#: After this long with the job still pending and untouched, say that no worker may be running.
NO_WORKER_HINT_AFTER = 15.0
EXIT_INTERRUPTED = 130


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


class Command(BaseCommand):
    help = (
        "Rebuild one replica of a PostgreSQL StatefulSet: give it new, empty claims (in place, "
        "only that replica down; or the seed's scale to 0 and back). Prints the job id; --wait "
        "follows the steps until the job ends."
    )

    def add_arguments(self, parser):
        parser.add_argument("namespace", help="namespace of the StatefulSet")
        parser.add_argument("statefulset", help="name of the StatefulSet")
        parser.add_argument("ordinal", type=int_or_raw, help="replica to rebuild (>= 0)")
        parser.add_argument(
            "target_replicas", type=int_or_raw, help="replicas to scale back to (> ordinal)"
        )
        parser.add_argument(
            "--strategy",
            choices=STRATEGIES,
            default=STRATEGY_SCALE_TO_ZERO,
            help="in-place: only the replica goes down; scale-to-zero (default): every pod does",
        )
        parser.add_argument(
            "--allow-outage",
            action="store_true",
            help="allow scale-to-zero on a set that holds a primary (a full database outage)",
        )
        parser.add_argument(
            "--allow-scale-down",
            action="store_true",
            help="allow TARGET_REPLICAS below the set's replicas",
        )
        parser.add_argument(
            "--wait", action="store_true", help="follow the job; exit 0 on success, 1 on failure"
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

    def handle(self, *args, wait: bool, interval: float, timeout: float | None, **options):
        with service_errors(), _quiet_queue(options["verbosity"]):
            job = pg_rebuild_start(
                actor=cli_actor(),
                namespace=options["namespace"],
                statefulset=options["statefulset"],
                ordinal=options["ordinal"],
                target_replicas=options["target_replicas"],
                strategy=options["strategy"],
                allow_outage=options["allow_outage"],
                allow_scale_down=options["allow_scale_down"],
            )
        self.stdout.write(job.job_id)
        if not wait:
            self.stderr.write(f"started; follow it with: manage.py ops_job {job.job_id}")
            return
        try:
            job, steps = self._follow(job.job_id, max(interval, 0.05), timeout)
        except KeyboardInterrupt:
            raise CommandError(
                f"stopped waiting; the job goes on: manage.py ops_job {job.job_id}",
                returncode=EXIT_INTERRUPTED,
            ) from None
        took = fmt_duration(job.created_at, job.finished_at)
        if job.status == JobStatus.SUCCESS:
            self.stdout.write(self.style.SUCCESS(f"job {job.job_id} succeeded in {took}"))
            return
        step = failed_step(steps)
        where = f" at step {step.name}: {step.detail}" if step else ""
        raise CommandError(f"job {job.job_id} {job.status} after {took}{where}")

    def _follow(
        self, job_id: str, interval: float, timeout: float | None
    ) -> tuple[Job, list[JobStep]]:
        """Poll the job's rows until it ends, showing each change; returns the final rows."""
        started = time.monotonic()
        live = self.stdout.isatty()
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
                self.stderr.write(
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
            self.stdout.write(
                f"[{progress(step.step_order, total)}] {step.name:<20} {step.status:<8} "
                f"{shorten(step.detail, 100) if step.detail else ''}".rstrip()
            )

    def _redraw(self, job: Job, steps: list[JobStep], drawn: int) -> int:
        """Redraw the job's line and step table in place (a terminal); returns lines drawn."""
        done = sum(1 for s in steps if s.status == JobStatus.SUCCESS)
        width = shutil.get_terminal_size().columns
        lines = [
            f"job {job.job_id}: {job.status}, {progress(done, len(steps))} steps, "
            f"{fmt_duration(job.created_at, job.finished_at)}",
            *steps_table(steps, detail_width=60).splitlines(),
        ]
        if drawn:
            self.stdout.write(f"\x1b[{drawn}F\x1b[J", ending="")
        self.stdout.write("\n".join(line[: width - 1] for line in lines))
        return len(lines)
