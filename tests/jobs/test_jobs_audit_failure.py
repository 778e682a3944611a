"""Fail closed for jobs: when the audit log cannot be written, no job is created and no tick is
queued (the start's row is written before the job exists), and a step whose audit row cannot
be written sends nothing to the cluster and fails its job with that reason.

Two real failures, no mocks: the audit connection pointed at a database that does not exist
(``dead_audit_db``), and a trigger that makes PostgreSQL refuse every new ``ops_log`` row while
reads still work, so a request gets past authentication and fails at the start's own row."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connections
from django_q.models import OrmQ

from jobs.models import Job, JobStatus
from jobs.services import job_request
from ops.actors import Actor
from ops.errors import AuditUnavailable

pytestmark = pytest.mark.django_db(databases=["default", "audit"], transaction=True)

URL = "/ops/jobs/pg-rebuild"
BODY = {"namespace": "prod", "statefulset": "postgres", "ordinal": 0, "target_replicas": 3}


@pytest.fixture
def audit_refuses_new_rows() -> Iterator[None]:
    """PostgreSQL refuses every INSERT into ops_log (reads and updates still work)."""
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION test_refuse_audit_row() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'audit storage is full'; END $$"
        )
        cursor.execute(
            "CREATE TRIGGER test_refuse_audit_row BEFORE INSERT ON ops_log "
            "FOR EACH ROW EXECUTE FUNCTION test_refuse_audit_row()"
        )
    try:
        yield
    finally:
        with connections["default"].cursor() as cursor:
            cursor.execute("DROP TRIGGER test_refuse_audit_row ON ops_log")
            cursor.execute("DROP FUNCTION test_refuse_audit_row()")


def test_a_start_request_whose_audit_row_cannot_be_written_is_503_and_starts_nothing(
    api, pg_cluster, audit_refuses_new_rows
):
    response = api.post(URL, BODY, format="json")

    assert response.status_code == 503, response.content
    assert response.json()["code"] == "audit_unavailable"
    assert not Job.objects.exists()
    assert not OrmQ.objects.exists()
    assert list(pg_cluster.requests.mutations()) == []


def test_a_start_outside_any_transaction_without_audit_leaves_no_job_and_no_tick(
    pg_cluster,
    dead_audit_db,
):
    # What a management command does: no request transaction around the service.
    actor = Actor(name="cli:alice", source_ip="local", origin="cli")

    with pytest.raises(AuditUnavailable):
        job_request(actor=actor, job_type="pg-rebuild", data=BODY)

    assert not Job.objects.exists()
    assert not OrmQ.objects.exists()
    assert list(pg_cluster.requests.mutations()) == []


def test_a_step_whose_audit_row_cannot_be_written_sends_nothing_and_fails_the_job(
    api, pg_cluster, drive, request
):
    job_id = api.post(URL, BODY, format="json").json()["job_id"]
    request.getfixturevalue("dead_audit_db")  # the audit database dies after the start

    job = drive(job_id)

    assert job.status == JobStatus.FAILED
    first = job.steps.get(name="scale_sts_to_zero")
    assert first.status == JobStatus.FAILED
    assert first.detail.startswith("The audit log cannot be written")
    assert list(job.steps.exclude(pk=first.pk).values_list("status", flat=True)) == ["pending"] * 4
    assert list(pg_cluster.requests.mutations()) == []
    assert pg_cluster.get("statefulsets", "prod", "postgres")["spec"]["replicas"] == 3
