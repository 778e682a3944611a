"""Fixtures for the jobs tests: fast runner settings, a toy job type, and job rows."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

import pytest
from django.utils import timezone

from jobs.models import Job, JobStatus, JobStep, make_job_id
from jobs.registry import Done, JobType, StepDef, Wait, register, unregister
from jobs.runner import StepContext

TOY = "toy"

#: How many times each toy job's "act" step performed its side effect, by job id.
ACTIONS: Counter[str] = Counter()
#: How many times each toy job's "wait" step died like a killed worker, by job id.
DEATHS: Counter[str] = Counter()
_actions_lock = threading.Lock()


def _act(ctx: StepContext) -> Done:
    if ctx.params.get("fail_in") == "act":
        raise RuntimeError("the toy API said no")
    if ctx.state.get("acted"):
        return Done("already acted")
    ctx.checkpoint()
    hold = ctx.params.get("hold_after_checkpoint")
    if hold:
        threading.Event().wait(hold)
    with _actions_lock:
        ACTIONS[ctx.job_id] += 1
    ctx.state["acted"] = True
    return Done("acted once")


def _wait(ctx: StepContext) -> Done | Wait:
    if DEATHS[ctx.job_id] < ctx.params.get("die_in_wait", 0):
        DEATHS[ctx.job_id] += 1
        # What django-q2's timeout raises (a SystemExit subclass): nothing in the runner
        # catches it, exactly as if the worker had been killed mid-step.
        raise SystemExit("worker killed")
    checks = ctx.state.get("checks", 0) + 1
    ctx.state["checks"] = checks
    left = ctx.params.get("waits", 0) - checks
    if left >= 0:
        return Wait(f"{left + 1} check(s) to go")
    return Done(f"waited {checks - 1} check(s)")


def _finish(ctx: StepContext) -> Done:
    return Done("finished")


TOY_TYPE = JobType(
    name=TOY,
    target_kind="Toy",
    steps=(StepDef("act", _act), StepDef("wait", _wait), StepDef("finish", _finish)),
)


class Toy:
    """Handle on the toy job type for a test: make jobs, read what their steps did."""

    actions = ACTIONS
    deaths = DEATHS

    @staticmethod
    def make(name: str = "t1", **params: object) -> Job:
        return make_toy_job(name, **params)


@pytest.fixture
def toy() -> Iterator[Toy]:
    register(TOY_TYPE)
    ACTIONS.clear()
    DEATHS.clear()
    yield Toy()
    unregister(TOY)


@pytest.fixture
def fast_jobs(settings):
    """Short leases, polls and timeouts so runner tests take milliseconds, not minutes."""
    settings.APIOPS = {
        **settings.APIOPS,
        "JOB_WAIT_TIMEOUT": 30.0,
        "JOB_LEASE_SECONDS": 5.0,
        "JOB_POLL_INTERVAL": 0.01,
        "JOB_TICK_BUDGET": 0.0,
        "JOB_PUMP_INTERVAL": 1.0,
        "JOB_MAX_INTERRUPTIONS": 2,
    }
    return settings


def make_toy_job(name: str = "t1", **params: object) -> Job:
    """A pending toy job with its three steps, as job_start would write it (no enqueue)."""
    now = timezone.now()
    job = Job.objects.create(
        job_id=make_job_id(now, TOY),
        type=TOY,
        status=JobStatus.PENDING,
        created_at=now,
        params=params,
        actor="tester",
        source_ip="127.0.0.1",
        target_kind="Toy",
        target_namespace="prod",
        target_name=name,
        next_run_at=now,
    )
    for order, step in enumerate(TOY_TYPE.steps, start=1):
        JobStep.objects.create(job=job, name=step.name, step_order=order)
    return job
