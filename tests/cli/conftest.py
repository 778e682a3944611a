"""Fixtures for the command tests: fast settings, the demo cluster behind the gateway, a
helper running a command and one expecting it to fail, and an in-process stand-in for the
worker that `make run` starts (it delivers ticks with the real runner)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connections

from jobs.models import ACTIVE_STATUSES, Job
from jobs.runner import run_tick
from ops import k8s
from ops.actors import os_user
from tests.ops.conftest import dead_audit_db, dead_default_db  # noqa: F401 - shared fixtures

DB = pytest.mark.django_db(databases=["default", "audit"])
TRANSACTIONAL_DB = pytest.mark.django_db(databases=["default", "audit"], transaction=True)

#: What every command writes as the actor: the OS user running it.
CLI_ACTOR = f"cli:{os_user()}"


@pytest.fixture
def fast(settings):
    """The allowed namespaces, quick Kubernetes retries and quick job steps."""

    def override(**values: object) -> None:
        settings.APIOPS = {**settings.APIOPS, **values}

    override(
        ALLOWED_NAMESPACES=("prod", "staging"),
        MAX_REPLICAS=100,
        # Only a hang reaches it (whose tests set their own): room for a busy machine.
        K8S_TIMEOUT=5.0,
        K8S_RETRIES=2,
        K8S_BACKOFF=0.01,
        K8S_RETRY_MAX_WAIT=0.05,
        JOB_WAIT_TIMEOUT=30.0,
        JOB_LEASE_SECONDS=5.0,
        JOB_POLL_INTERVAL=0.01,
        JOB_TICK_BUDGET=0.0,
    )
    return override


@pytest.fixture
def demo(kubesim_demo, fast) -> Iterator:
    """kubesim with demo.yaml (prod and staging: postgres x3 with claims, web x2), the gateway
    pointed at it, and an empty request log."""
    fast(KUBECONFIG=kubesim_demo.kubeconfig_path)
    k8s.reset_client()
    kubesim_demo.requests.clear()
    yield kubesim_demo
    k8s.reset_client()


def run(name: str, *args: str, stdout=None) -> str:
    """Run a command; its standard output."""
    out = stdout if stdout is not None else StringIO()
    call_command(name, *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def fails(name: str, *args: str) -> CommandError:
    """Run a command that must fail; its CommandError (message and exit code)."""
    with pytest.raises(CommandError) as info:
        run(name, *args)
    return info.value


@contextmanager
def worker() -> Iterator[None]:
    """Deliver ticks to every active job from another thread until the block ends, as the
    django-q2 worker of `make run` would (needs a transactional test)."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def loop() -> None:
        try:
            while not stop.is_set():
                active = Job.objects.filter(status__in=ACTIVE_STATUSES)
                for job_id, seq in active.values_list("job_id", "tick_seq"):
                    run_tick(job_id, seq)
                stop.wait(0.01)
        except BaseException as exc:  # reported to the test, which fails on it
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=loop, name="test-worker", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not errors, errors
