"""jobs_health, the worker's liveness check: exit 0 while the jobs pump runs, one line and a
non-zero exit when it never ran, ran too long ago, or its row cannot be read."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models.functions import Now

from jobs.dispatch import pump
from jobs.management.commands.jobs_health import EXIT_STALE, EXIT_UNREADABLE
from jobs.models import JobPump
from tests.cli.conftest import DB, TRANSACTIONAL_DB, fails, run


def pump_ran(seconds_ago: float) -> None:
    JobPump.objects.update(last_run_at=Now() - timedelta(seconds=seconds_ago))


@DB
def test_a_pump_that_just_ran_is_healthy(fast):
    pump()

    assert run("jobs_health").startswith("ok: the jobs pump ran ")


@DB
def test_a_pump_that_never_ran_is_unhealthy(fast):
    error = fails("jobs_health")

    assert str(error) == "the jobs pump has never run"
    assert error.returncode == EXIT_STALE


@DB
def test_a_pump_older_than_max_age_is_unhealthy_with_its_age_in_one_line(fast):
    pump()
    pump_ran(600)

    error = fails("jobs_health", "--max-age", "300")

    assert str(error).startswith("the jobs pump last ran 600 s ago (")
    assert str(error).endswith("more than --max-age 300 s")
    assert "\n" not in str(error)
    assert error.returncode == EXIT_STALE
    assert run("jobs_health", "--max-age", "900").startswith("ok: ")


@DB
def test_the_default_max_age_is_three_minutes(fast):
    pump()
    pump_ran(170)
    assert run("jobs_health").startswith("ok: ")

    pump_ran(190)
    assert fails("jobs_health").returncode == EXIT_STALE


@pytest.mark.parametrize("value", ["0", "-5", "soon", "nan"])
def test_max_age_must_be_a_positive_number(value):
    error = fails("jobs_health", "--max-age", value)

    assert "--max-age" in str(error)
    assert "positive number of seconds" in str(error)


@TRANSACTIONAL_DB
def test_an_unreachable_database_is_unhealthy_without_the_drivers_message(dead_default_db):
    error = fails("jobs_health")

    assert str(error) == "cannot read the pump's last run: database unavailable (OperationalError)"
    assert error.returncode == EXIT_UNREADABLE
