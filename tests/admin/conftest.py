"""Fixtures for the admin tests: audit rows written where the app writes them (the audit
connection), and jobs with their steps as the runner leaves them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from jobs.models import Job, JobStatus, JobStep, make_job_id
from ops.models import OpsLog

#: Every admin test reads the audit log, which lives behind the "audit" alias.
DB = pytest.mark.django_db(databases=["default", "audit"])

PG_STEPS = [
    "scale_sts_to_zero",
    "wait_pods_down",
    "delete_pvc",
    "scale_sts_to_target",
    "wait_pods_ready",
]


def make_row(
    *,
    ts: datetime | None = None,
    actor: str | None = "alice",
    source_ip: str | None = "198.51.100.4",
    action: str = "scale",
    kind: str = "deployment",
    namespace: str = "prod",
    name: str = "web",
    status: str = "success",
    body: object = None,
    error: str | None = None,
    origin: str = "api",
    job_id: str | None = None,
) -> OpsLog:
    """One audit row, through the audit alias."""
    return OpsLog.objects.using("audit").create(
        ts=ts or timezone.now(),
        actor=actor,
        source_ip=source_ip,
        action=action,
        resource_kind=kind,
        namespace=namespace,
        resource_name=name,
        request_body=body,
        status=status,
        error_message=error,
        origin=origin,
        job_id=job_id,
    )


def make_job(
    *,
    status: str = JobStatus.RUNNING,
    steps_done: int = 2,
    failed_detail: str | None = None,
    namespace: str = "prod",
    name: str = "postgres",
    created_at: datetime | None = None,
) -> Job:
    """A pg-rebuild job whose first ``steps_done`` steps succeeded; the next one is running,
    or failed with ``failed_detail`` when the job failed."""
    created = created_at or timezone.now() - timedelta(minutes=3)
    finished = created + timedelta(minutes=2) if status in ("success", "failed") else None
    job = Job.objects.create(
        job_id=make_job_id(created, "pg-rebuild"),
        type="pg-rebuild",
        status=status,
        created_at=created,
        finished_at=finished,
        params={"namespace": namespace, "statefulset": name, "ordinal": 1, "target_replicas": 3},
        actor="alice",
        source_ip="198.51.100.4",
        target_kind="StatefulSet",
        target_namespace=namespace,
        target_name=name,
    )
    for order, step in enumerate(PG_STEPS, start=1):
        step_status, detail = JobStatus.PENDING, None
        if order <= steps_done:
            step_status, detail = JobStatus.SUCCESS, f"{step} done"
        elif order == steps_done + 1 and status == JobStatus.RUNNING:
            step_status, detail = JobStatus.RUNNING, "waiting for 2 pods"
        elif order == steps_done + 1 and status == JobStatus.FAILED:
            step_status, detail = JobStatus.FAILED, failed_detail
        JobStep.objects.create(
            job=job,
            name=step,
            step_order=order,
            status=step_status,
            detail=detail,
            started_at=created if step_status != JobStatus.PENDING else None,
            finished_at=created + timedelta(seconds=order) if order <= steps_done else None,
        )
    return job


@pytest.fixture
def row() -> Callable[..., OpsLog]:
    return make_row


@pytest.fixture
def job() -> Callable[..., Job]:
    return make_job
