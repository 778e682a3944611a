"""``manage.py jobs_health [--max-age SECONDS]``: is the job worker alive? For an exec
livenessProbe on the worker.

A django-q2 cluster can stall without exiting, so "the process runs" says nothing. Its
supervisor (``jobs/worker.py``) replaces a cluster that lost a process (django-q2 #23: a killed
idle worker freezes the whole cluster); this catches the stalls without a death. What a healthy
worker does visibly is run the pump every ``OPS_JOB_PUMP_INTERVAL`` seconds (the minute
schedule revives it when its chain breaks), stamping ``ops_job_pump.last_run_at``. This
command exits 0 when that stamp is younger than ``--max-age``; otherwise it prints one line
saying why and exits non-zero, so the kubelet (or the supervisor's ``--liveness-max-age``)
restarts the worker.
"""

from __future__ import annotations

import argparse

from django.core.management.base import BaseCommand, CommandError
from django.db import Error as DatabaseError

from jobs.selectors import pump_status

#: Exit codes: the pump is late or never ran / its row cannot be read (2 is argparse's).
EXIT_STALE = 1
EXIT_UNREADABLE = 3

#: Default --max-age: the minute schedule revives a broken pump chain within about 90 s
#: (a one-minute schedule on django-q2's ~30 s scheduler cycle), so a healthy cluster stays
#: well under it.
DEFAULT_MAX_AGE = 180.0


def _positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive number of seconds")
    return seconds


class Command(BaseCommand):
    help = (
        "Exit 0 when the jobs pump ran within --max-age seconds, else print why and exit "
        f"non-zero ({EXIT_STALE}: late or never ran, {EXIT_UNREADABLE}: database unreadable)."
    )
    requires_system_checks = []  # a probe: start quickly, check one thing

    def add_arguments(self, parser):
        parser.add_argument(
            "--max-age",
            type=_positive_seconds,
            default=DEFAULT_MAX_AGE,
            metavar="SECONDS",
            help=f"how long ago the pump may have run (default {DEFAULT_MAX_AGE:.0f})",
        )

    def handle(self, *args, max_age: float, **options):
        try:
            status = pump_status()
        except DatabaseError as e:
            # The class only: the driver's message can name the host and the user.
            raise CommandError(
                f"cannot read the pump's last run: database unavailable ({type(e).__name__})",
                returncode=EXIT_UNREADABLE,
            ) from None
        if status.age_seconds is None:
            raise CommandError("the jobs pump has never run", returncode=EXIT_STALE)
        if status.age_seconds > max_age:
            raise CommandError(
                f"the jobs pump last ran {status.age_seconds:.0f} s ago "
                f"({status.last_run_at.isoformat()}), more than --max-age {max_age:.0f} s",
                returncode=EXIT_STALE,
            )
        self.stdout.write(f"ok: the jobs pump ran {status.age_seconds:.1f} s ago")
