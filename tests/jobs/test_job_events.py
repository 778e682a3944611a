"""What a job tells the world as it runs: job.started / succeeded / failed / cancelled in the
outbox, written with the status change (once each, a retry starting again), and the job
metrics (ends by type and status, step durations, pick-up delays), counted once committed."""

from __future__ import annotations

import pytest

from jobs.services import job_cancel, job_retry
from ops import metrics
from ops.actors import Actor
from ops.models import NotificationEvent

pytestmark = [
    pytest.mark.django_db(databases=["default", "audit"], transaction=True),
    pytest.mark.usefixtures("fast_jobs"),
]


@pytest.fixture
def hooked(fast_jobs):
    """A webhook target for every job event (never reached: these tests read the outbox)."""
    fast_jobs(
        NOTIFY_TARGETS=(
            {
                "name": "jobs",
                "kind": "webhook",
                "url": "http://127.0.0.1:9/hook",
                "secret": "s3cret-value",
                "events": ("job.*",),
                "namespaces": ("prod",),
            },
        )
    )


def events_of(job_id: str) -> list[tuple[str, str]]:
    return [
        (e.event, e.data["status"])
        for e in NotificationEvent.objects.order_by("occurred_at")
        if e.data.get("job_id") == job_id
    ]


def sample(metric, *labels: str) -> float:
    return metric.labels(*labels)._value.get() if labels else metric._value.get()


def step_count(job_type: str, step: str) -> float:
    child = metrics.JOB_STEP_DURATION.labels(job_type, step)
    return sum(b.get() for b in child._buckets)


def test_a_successful_job_announces_its_start_and_its_success_once_each(hooked, toy, drive):
    job = toy.make(waits=2)
    ends = sample(metrics.JOBS, "toy", "success")
    acted = step_count("toy", "act")
    pickups = metrics.JOB_PICKUP._sum.get(), sum(b.get() for b in metrics.JOB_PICKUP._buckets)

    drive(job.job_id)

    assert events_of(job.job_id) == [("job.started", "running"), ("job.succeeded", "success")]
    started, succeeded = NotificationEvent.objects.order_by("occurred_at")
    assert started.id != succeeded.id
    assert started.namespace == "prod"
    assert succeeded.data["target"] == {"kind": "Toy", "name": "t1"}
    assert succeeded.data["finished_at"] is not None
    assert [d.target_name for d in succeeded.deliveries.all()] == ["jobs"]
    assert sample(metrics.JOBS, "toy", "success") - ends == 1
    assert step_count("toy", "act") - acted == 1
    # One claim per tick: the first and one after each of the two waits, at least.
    assert sum(b.get() for b in metrics.JOB_PICKUP._buckets) - pickups[1] >= 3


def test_a_failed_job_announces_the_failure_with_its_error(hooked, toy, drive):
    job = toy.make(fail_in="act")
    failed = sample(metrics.JOBS, "toy", "failed")

    drive(job.job_id)

    assert events_of(job.job_id) == [("job.started", "running"), ("job.failed", "failed")]
    event = NotificationEvent.objects.get(event="job.failed")
    assert event.data["error"]["code"] == "internal_error"
    assert "the toy API said no" in event.data["error"]["detail"]
    assert sample(metrics.JOBS, "toy", "failed") - failed == 1


def test_a_retried_job_starts_again_and_a_cancelled_one_says_so(hooked, toy, drive):
    job = toy.make(fail_in="act")
    drive(job.job_id)
    actor = Actor(name="bootstrap", source_ip="203.0.113.9")

    job_retry(actor=actor, job_id=job.job_id)  # fails again in act: the toy always does
    drive(job.job_id)
    pending = toy.make("t2")
    cancelled = sample(metrics.JOBS, "toy", "cancelled")
    job_cancel(actor=actor, job_id=pending.job_id)

    assert events_of(job.job_id) == [
        ("job.started", "running"),
        ("job.failed", "failed"),
        ("job.started", "running"),
        ("job.failed", "failed"),
    ]
    assert events_of(pending.job_id) == [("job.cancelled", "cancelled")]
    assert sample(metrics.JOBS, "toy", "cancelled") - cancelled == 1


def test_jobs_in_namespaces_a_target_does_not_want_write_no_event(hooked, toy, drive, fast_jobs):
    fast_jobs(
        NOTIFY_TARGETS=(
            {
                "name": "staging-only",
                "kind": "slack",
                "url": "http://127.0.0.1:9/",
                "secret": "",
                "events": ("*",),
                "namespaces": ("staging",),
            },
        )
    )
    job = toy.make()
    ends = sample(metrics.JOBS, "toy", "success")

    drive(job.job_id)

    assert not NotificationEvent.objects.exists()
    assert sample(metrics.JOBS, "toy", "success") - ends == 1  # counted all the same
