"""Waking jobs: the pump re-dispatches stranded jobs (lapsed lease, overdue next run) and
leaves healthy ones alone; only one pump chain lives; a starting worker revives the pump;
and it closes audit rows a dead process left pending."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models.functions import Now
from django_q.models import OrmQ
from django_q.signals import post_spawn
from django_q.signing import SignedPackage

from jobs.dispatch import pump
from jobs.models import Job, JobPump, JobStatus
from jobs.runner import claim, run_tick
from ops.audit import Target, record
from ops.models import OpsLog
from tests.ops.conftest import audit_triggers_off

pytestmark = [
    pytest.mark.django_db(databases=["default", "audit"], transaction=True),
    pytest.mark.usefixtures("fast_jobs"),
]


def queued_tasks(*, visible_only: bool = False) -> list[dict]:
    rows = OrmQ.objects.all()
    if visible_only:
        rows = rows.filter(lock__lte=Now())
    return [SignedPackage.loads(row.payload) for row in rows]


def ticks_queued() -> list[tuple]:
    return [t["args"] for t in queued_tasks(visible_only=True) if t["func"] == "jobs.tasks.tick"]


def test_the_pump_redispatches_a_job_whose_worker_died(toy):
    job = toy.make(waits=5)
    assert claim(job.job_id, 0, "dead-worker")
    Job.objects.filter(pk=job.pk).update(
        lease_expires_at=Now() - timedelta(seconds=1),
        next_run_at=Now() - timedelta(seconds=60),
    )
    OrmQ.objects.all().delete()
    assert pump() == 1
    assert ticks_queued() == [(job.job_id, 0)]
    # The new tick takes over from the dead one and the job goes on.
    run_tick(job.job_id, 0)
    assert Job.objects.get(pk=job.pk).steps.get(name="act").status == JobStatus.SUCCESS


def test_the_pump_leaves_live_waiting_and_finished_jobs_alone(toy):
    live = toy.make("live")
    assert claim(live.job_id, 0, "busy-worker")
    waiting = toy.make("waiting", waits=5)
    run_tick(waiting.job_id, 0)  # handed on, next run due in a moment
    done = toy.make("done")
    Job.objects.filter(pk=done.pk).update(
        status=JobStatus.SUCCESS, next_run_at=Now() - timedelta(seconds=60)
    )
    OrmQ.objects.all().delete()
    assert pump() == 0
    assert ticks_queued() == []


def test_a_lost_tick_is_sent_again_once_the_job_is_overdue(toy):
    job = toy.make(waits=5)
    run_tick(job.job_id, 0)
    OrmQ.objects.all().delete()  # the queued next tick is lost
    Job.objects.filter(pk=job.pk).update(next_run_at=Now() - timedelta(seconds=60))
    assert pump() == 1
    assert ticks_queued() == [(job.job_id, 1)]


def test_only_one_pump_chain_lives(toy):
    OrmQ.objects.all().delete()
    assert pump() == 0
    assert pump() == -1  # a second chain started now dies out
    pumps = [t for t in queued_tasks() if t["func"] == "jobs.tasks.pump"]
    assert len(pumps) == 1
    # The successor is delayed by the pump interval, not visible yet.
    assert OrmQ.objects.filter(lock__lte=Now()).count() == 0
    assert JobPump.objects.get(id=1).last_run_at is not None


def test_a_starting_worker_revives_the_pump():
    OrmQ.objects.all().delete()
    post_spawn.send(sender="django_q", proc_name="Process-1")
    assert [t["func"] for t in queued_tasks(visible_only=True)] == ["jobs.tasks.pump"]


def _audit_row(status: str, age: timedelta, name: str) -> int:
    """An audit row written ``age`` ago (by the database clock)."""
    row = record(
        actor_name="bootstrap",
        source_ip="203.0.113.9",
        origin="job",
        target=Target("delete", "persistentvolumeclaim", "prod", name),
        status=status,
    )
    with audit_triggers_off():  # a finished row is aged as only a superuser could
        OpsLog.objects.using("audit").filter(pk=row.pk).update(ts=Now() - age)
    return row.pk


def test_the_pump_closes_audit_rows_left_pending_too_long_as_outcome_unknown(fast_jobs):
    fast_jobs(AUDIT_PENDING_MAX_AGE=600.0)
    stale = _audit_row("pending", timedelta(minutes=11), "stale")
    in_flight = _audit_row("pending", timedelta(minutes=9), "in-flight")
    done = _audit_row("success", timedelta(hours=2), "done")

    pump()

    rows = OpsLog.objects.using("audit").in_bulk([stale, in_flight, done])
    assert (rows[stale].status, rows[stale].error_message, rows[stale].code) == (
        "error",
        "outcome unknown: the process recording it stopped",
        "outcome_unknown",
    )
    assert rows[stale].finished_at is not None
    assert (rows[in_flight].status, rows[in_flight].error_message) == ("pending", None)
    assert (rows[done].status, rows[done].error_message) == ("success", None)


def test_the_pump_still_rescues_jobs_when_the_audit_log_is_down(toy, dead_audit_db):
    job = toy.make(waits=5)
    assert claim(job.job_id, 0, "dead-worker")
    Job.objects.filter(pk=job.pk).update(
        lease_expires_at=Now() - timedelta(seconds=1),
        next_run_at=Now() - timedelta(seconds=60),
    )

    assert pump() == 1

    assert ticks_queued() == [(job.job_id, 0)]
