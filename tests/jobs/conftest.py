"""Fixtures for the jobs tests: fast runner settings, a toy job type and its rows, a kubesim
cluster with a PostgreSQL StatefulSet, an API client, and a helper delivering ticks."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from jobs.models import Job, JobStatus, JobStep, make_job_id
from jobs.registry import JobType, register, unregister
from jobs.runner import run_tick
from jobs.steps import Done, StepContext, StepDef, Wait
from ops import k8s
from tests.ops.conftest import apiops, dead_audit_db  # noqa: F401 - shared fixtures

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


BOOTSTRAP_KEY = "jobs-test-bootstrap-key-0123456789"
CLIENT_IP = "203.0.113.9"


@pytest.fixture
def fast_jobs(apiops) -> Callable[..., None]:  # noqa: F811 - the shared fixture, requested
    """Short leases, polls, timeouts and Kubernetes retries, so tests take seconds at most.

    Builds on the ops tests' ``apiops`` settings; returns its ``override(KEY=value)`` to change
    more of ``settings.APIOPS`` in one test.
    """
    apiops(
        JOB_WAIT_TIMEOUT=30.0,
        JOB_LEASE_SECONDS=5.0,
        JOB_POLL_INTERVAL=0.01,
        JOB_TICK_BUDGET=0.0,
        JOB_PUMP_INTERVAL=1.0,
        JOB_MAX_INTERRUPTIONS=2,
        API_KEY=BOOTSTRAP_KEY,
        # Job steps wait on real controllers: a little more room per call, fewer retries.
        K8S_TIMEOUT=5.0,
        K8S_RETRIES=2,
    )
    return apiops


#: A PostgreSQL StatefulSet with two claim templates, and one without any.
PG_YAML = """
apiVersion: v1
kind: Namespace
metadata: {name: prod}
---
apiVersion: v1
kind: Namespace
metadata: {name: staging}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: postgres, namespace: prod}
spec:
  replicas: 3
  serviceName: postgres
  selector: {matchLabels: {app: postgres}}
  template:
    metadata: {labels: {app: postgres}}
    spec:
      terminationGracePeriodSeconds: 5
      containers: [{name: postgres, image: postgres:16}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
  - metadata: {name: wal}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: stateless, namespace: prod}
spec:
  replicas: 1
  serviceName: stateless
  selector: {matchLabels: {app: stateless}}
  template:
    metadata: {labels: {app: stateless}}
    spec:
      containers: [{name: web, image: nginx}]
"""


@pytest.fixture
def pg_cluster(kubesim, fast_jobs) -> Iterator:
    """kubesim with prod/postgres (3 Ready pods, claims data-* and wal-*), the gateway pointed
    at it, and an empty request log."""
    kubesim.apply(PG_YAML)
    kubesim.wait_for(
        lambda: (
            (kubesim.get("statefulsets", "prod", "postgres") or {})
            .get("status", {})
            .get("readyReplicas")
            == 3
        ),
        timeout=20,
    )
    fast_jobs(KUBECONFIG=kubesim.kubeconfig_path)
    k8s.reset_client()
    kubesim.requests.clear()
    yield kubesim
    k8s.reset_client()


@pytest.fixture
def api(fast_jobs) -> APIClient:
    """A DRF test client sending the bootstrap key."""
    client = APIClient(REMOTE_ADDR=CLIENT_IP)
    client.credentials(HTTP_X_API_KEY=BOOTSTRAP_KEY)
    return client


def drive_job(job_id: str, limit: int = 2000) -> Job:
    """Deliver ticks with the job's current sequence number until it finishes (in-process)."""
    for _ in range(limit):
        job = Job.objects.get(job_id=job_id)
        if not job.is_active:
            return job
        run_tick(job_id, job.tick_seq)
    raise AssertionError(f"{job_id} still active after {limit} ticks")


@pytest.fixture
def drive() -> Callable[[str], Job]:
    return drive_job


def make_toy_job(name: str = "t1", **params: object) -> Job:
    """A pending toy job with its three steps, as job_start would write it (no enqueue)."""
    now = timezone.now()
    job = Job.objects.create(
        job_id=make_job_id(now, TOY),
        type=TOY,
        status=JobStatus.PENDING,
        created_at=now,
        params=params,
        actor="cli:tester",
        source_ip="local",
        acting_actor="cli:tester",
        acting_source_ip="local",
        acting_origin="cli",
        target_kind="Toy",
        target_namespace="prod",
        target_name=name,
        next_run_at=now,
    )
    for order, step in enumerate(TOY_TYPE.steps, start=1):
        JobStep.objects.create(job=job, name=step.name, step_order=order)
    return job
