"""The step runner on its own (a toy job type, real PostgreSQL, no cluster): claiming on the
database clock, heartbeats, handing a waiting job on, deadlines that survive redelivery, the
crash-loop limit, cancellation, and duplicated ticks doing the work once."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models.functions import Now
from django.utils import timezone
from django_q.models import OrmQ
from django_q.signing import SignedPackage

from jobs.models import Job, JobStatus
from jobs.runner import LeaseLost, claim, heartbeat, new_owner, run_tick
from jobs.services import job_cancel
from ops.actors import Actor
from ops.models import ApiKey

pytestmark = [
    pytest.mark.django_db(databases=["default", "audit"], transaction=True),
    pytest.mark.usefixtures("fast_jobs"),
]


def steps_of(job_id: str) -> list[tuple[str, str, str | None]]:
    job = Job.objects.get(job_id=job_id)
    return [(s.name, s.status, s.detail) for s in job.steps.order_by("step_order")]


def test_eight_racing_claims_have_exactly_one_winner(toy):
    job = toy.make()
    barrier = threading.Barrier(8)

    def race(_: int) -> bool:
        barrier.wait()
        try:
            return claim(job.job_id, 0, new_owner()) is not None
        finally:
            connection.close()

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(race, range(8)))
    assert results.count(True) == 1
    assert Job.objects.get(pk=job.pk).status == JobStatus.RUNNING


def test_claim_refuses_a_stale_sequence_number_and_a_live_lease(toy):
    job = toy.make()
    assert not claim(job.job_id, 7, "stale")
    assert claim(job.job_id, 0, "first")
    assert not claim(job.job_id, 0, "second")
    Job.objects.filter(pk=job.pk).update(lease_expires_at=Now() - timedelta(seconds=1))
    assert claim(job.job_id, 0, "second")
    assert Job.objects.get(pk=job.pk).lease_owner == "second"


def test_heartbeat_of_a_tick_that_lost_its_lease_raises(toy):
    job = toy.make()
    assert claim(job.job_id, 0, "me")
    heartbeat(job.job_id, "me")
    Job.objects.filter(pk=job.pk).update(lease_owner="someone-else")
    with pytest.raises(LeaseLost):
        heartbeat(job.job_id, "me")


def test_a_job_runs_its_steps_in_order_to_success(toy, drive):
    job = toy.make(waits=2)
    done = drive(job.job_id)
    assert done.status == JobStatus.SUCCESS
    assert done.finished_at is not None
    assert done.lease_owner is None
    assert steps_of(job.job_id) == [
        ("act", "success", "acted once"),
        ("wait", "success", "waited 2 check(s)"),
        ("finish", "success", "finished"),
    ]
    steps = list(done.steps.order_by("step_order"))
    assert all(s.started_at <= s.finished_at for s in steps)
    assert steps[1].attempts == 3
    assert steps[1].interruptions == 0
    assert toy.actions[job.job_id] == 1


def test_a_waiting_step_releases_the_job_and_queues_a_delayed_tick(toy, fast_jobs):
    fast_jobs(JOB_POLL_INTERVAL=30.0)
    job = toy.make(waits=5)
    OrmQ.objects.all().delete()
    outcome = run_tick(job.job_id, 0)
    assert "waiting in wait" in outcome
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING
    assert job.lease_owner is None
    assert job.tick_seq == 1
    assert steps_of(job.job_id)[1] == ("wait", "running", "waiting: 5 check(s) to go")
    queued = list(OrmQ.objects.all())
    assert len(queued) == 1
    task = SignedPackage.loads(queued[0].payload)
    assert task["func"] == "jobs.tasks.tick"
    assert task["args"] == (job.job_id, 1)
    # Invisible to workers until the poll interval has passed.
    assert queued[0].lock > job.next_run_at - timedelta(seconds=1)
    assert OrmQ.objects.filter(lock__lte=Now()).count() == 0


def test_a_tick_with_a_stale_sequence_number_does_nothing(toy):
    job = toy.make(waits=5)
    run_tick(job.job_id, 0)  # hands on with seq 1
    before = steps_of(job.job_id)
    assert "not claimed" in run_tick(job.job_id, 0)
    assert steps_of(job.job_id) == before


def test_a_wait_past_its_deadline_fails_the_step_and_leaves_later_steps_pending(
    toy, fast_jobs, drive
):
    fast_jobs(JOB_WAIT_TIMEOUT=0.0)
    job = toy.make(waits=100)
    done = drive(job.job_id)
    assert done.status == JobStatus.FAILED
    assert done.finished_at is not None
    assert steps_of(job.job_id) == [
        ("act", "success", "acted once"),
        ("wait", "failed", "timed out after 0 s: 100 check(s) to go"),
        ("finish", "pending", None),
    ]


def test_the_deadline_is_fixed_on_first_entry_and_survives_later_ticks(toy):
    job = toy.make(waits=3)
    run_tick(job.job_id, 0)
    first = Job.objects.get(pk=job.pk).steps.get(name="wait").deadline_at
    run_tick(job.job_id, 1)
    run_tick(job.job_id, 2)
    wait = Job.objects.get(pk=job.pk).steps.get(name="wait")
    assert wait.deadline_at == first
    assert wait.attempts == 3


def test_an_exception_in_a_step_fails_it_with_a_readable_detail(toy, drive):
    job = toy.make(fail_in="act")
    done = drive(job.job_id)
    assert done.status == JobStatus.FAILED
    assert steps_of(job.job_id) == [
        ("act", "failed", "internal error: RuntimeError: the toy API said no"),
        ("wait", "pending", None),
        ("finish", "pending", None),
    ]


def _die_and_lapse(job: Job, seq: int) -> None:
    """Deliver a tick whose worker dies inside the step, then let its lease run out."""
    with pytest.raises(SystemExit):
        run_tick(job.job_id, seq)
    Job.objects.filter(pk=job.pk).update(lease_expires_at=Now() - timedelta(seconds=1))


def test_a_step_interrupted_too_often_fails_as_a_crash_loop(toy):
    job = toy.make(waits=100, die_in_wait=100)
    _die_and_lapse(job, 0)  # act done, then the worker dies inside "wait"
    for _ in range(2):  # the limit (2) is survived...
        _die_and_lapse(job, 0)
    run_tick(job.job_id, 0)  # ...the third interruption is not
    done = Job.objects.get(pk=job.pk)
    wait = done.steps.get(name="wait")
    assert done.status == JobStatus.FAILED
    assert done.lease_owner is None
    assert wait.status == "failed"
    assert wait.interruptions == 3
    assert wait.detail.startswith("crash loop: interrupted 3 times")
    assert toy.actions[job.job_id] == 1


def test_one_interruption_is_survived_and_counted(toy, drive):
    job = toy.make(waits=1, die_in_wait=1)
    _die_and_lapse(job, 0)
    done = drive(job.job_id)
    assert done.status == JobStatus.SUCCESS
    assert done.steps.get(name="wait").interruptions == 1
    assert toy.actions[job.job_id] == 1


def test_a_cancelled_job_stops_before_its_next_step(toy, drive):
    job = toy.make(waits=100)
    run_tick(job.job_id, 0)
    job_cancel(actor=Actor(name="tester", source_ip="127.0.0.1"), job_id=job.job_id)
    done = drive(job.job_id)
    assert (done.status, done.error) == (JobStatus.CANCELLED, None)
    assert steps_of(job.job_id)[1:] == [
        ("wait", "cancelled", "cancelled before this step finished"),
        ("finish", "pending", None),
    ]


def test_a_tick_delivered_twice_concurrently_acts_once(toy, drive):
    job = toy.make(hold_after_checkpoint=0.3)
    barrier = threading.Barrier(2)

    def deliver(_: int) -> str:
        barrier.wait()
        try:
            return run_tick(job.job_id, 0)
        finally:
            connection.close()

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(deliver, range(2)))
    assert sum("not claimed" in o for o in outcomes) == 1
    drive(job.job_id)
    assert toy.actions[job.job_id] == 1
    assert Job.objects.get(pk=job.pk).status == JobStatus.SUCCESS


def test_a_step_longer_than_the_lease_keeps_its_job(toy, fast_jobs):
    fast_jobs(JOB_LEASE_SECONDS=1.0)
    job = toy.make(hold_after_checkpoint=2.5)

    def tick() -> None:
        try:
            run_tick(job.job_id, 0)
        finally:
            connection.close()

    ticking = threading.Thread(target=tick)
    ticking.start()
    try:
        time.sleep(1.8)  # well past the lease: only heartbeats can have kept it
        assert not claim(job.job_id, 0, "intruder")
    finally:
        ticking.join()
    job.refresh_from_db()
    assert job.steps.get(name="act").status == JobStatus.SUCCESS
    assert job.steps.get(name="act").interruptions == 0


def test_with_a_tick_budget_a_short_wait_is_polled_within_one_tick(toy, fast_jobs):
    fast_jobs(JOB_TICK_BUDGET=5.0, JOB_POLL_INTERVAL=0.02)
    job = toy.make(waits=3)
    assert "success" in run_tick(job.job_id, 0)
    wait = Job.objects.get(pk=job.pk).steps.get(name="wait")
    assert wait.attempts == 1
    assert wait.detail == "waited 3 check(s)"


def test_a_job_of_a_type_this_code_does_not_know_fails_with_that_reason(toy, drive):
    job = toy.make()
    Job.objects.filter(pk=job.pk).update(type="vanished")
    done = drive(job.job_id)
    assert done.status == JobStatus.FAILED
    assert steps_of(job.job_id)[0] == (
        "act",
        "failed",
        "internal error: UnknownJobType: 'vanished'",
    )


def _acting_for(job: Job, name: str) -> None:
    Job.objects.filter(pk=job.pk).update(
        acting_actor=name, acting_source_ip="198.51.100.50", acting_origin="api"
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"active": False, "revoked_at": timezone.now()}, "was revoked at "),
        ({"expires_at": timezone.now() - timedelta(minutes=1)}, "expired at "),
    ],
)
def test_a_job_stops_before_acting_for_a_key_that_can_no_longer_be_used(toy, drive, change, reason):
    key = ApiKey.objects.issue(name="bob").key
    job = toy.make()
    _acting_for(job, "bob")
    ApiKey.objects.filter(pk=key.pk).update(**change)

    assert drive(job.job_id).status == JobStatus.FAILED

    name, status, detail = steps_of(job.job_id)[0]
    assert (name, status) == ("act", "failed")
    assert detail.startswith(f"stopped before acting: the API key 'bob' this job acts for {reason}")
    assert detail.endswith("retry the job with a usable key")
    assert toy.actions[job.job_id] == 0


def test_a_job_acting_for_a_usable_key_or_the_bootstrap_key_goes_on(toy, drive):
    ApiKey.objects.issue(name="bob")
    for_bob, for_bootstrap = toy.make("t1"), toy.make("t2")
    _acting_for(for_bob, "bob")
    _acting_for(for_bootstrap, "bootstrap")  # a name of the settings, with no key row

    assert drive(for_bob.job_id).status == JobStatus.SUCCESS
    assert drive(for_bootstrap.job_id).status == JobStatus.SUCCESS
    assert toy.actions[for_bob.job_id] == toy.actions[for_bootstrap.job_id] == 1
