"""Idempotency-Key on the job endpoints: a repeated or concurrent start with one key records
one job (the answer, its job_id, is replayed after the request transaction committed), and a
repeated cancel replays its 202 instead of answering 409 for a job that has ended."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections
from django_q.models import OrmQ
from rest_framework.test import APIClient

from jobs.models import Job, JobStatus
from ops.models import IdempotencyRecord, OpsLog

pytestmark = pytest.mark.django_db(databases=["default", "audit"], transaction=True)

URL = "/ops/jobs/pg-rebuild"
GOOD = {"namespace": "prod", "statefulset": "postgres", "ordinal": 0, "target_replicas": 3}
REPLAYED = "Idempotent-Replayed"


def audit_codes() -> list[tuple[str, str | None, int | None]]:
    rows = OpsLog.objects.using("audit").order_by("id")
    return [(r.status, r.code, r.http_status) for r in rows]


def test_a_repeated_start_with_one_key_records_one_job(api, pg_cluster):
    first = api.post(URL, GOOD, format="json", HTTP_IDEMPOTENCY_KEY="rebuild-0")
    again = api.post(URL, GOOD, format="json", HTTP_IDEMPOTENCY_KEY="rebuild-0")

    assert first.status_code == again.status_code == 202
    assert REPLAYED not in first
    assert again[REPLAYED] == "true"
    assert again.json() == first.json()
    [job] = Job.objects.all()
    assert job.job_id == first.json()["job_id"]
    assert OrmQ.objects.count() == 1  # one first tick queued
    assert audit_codes() == [("success", None, 202), ("success", "idempotent_replay", 202)]
    [record] = IdempotencyRecord.objects.using("audit").all()
    assert record.response_status == 202


def test_twenty_concurrent_starts_with_one_key_record_one_job(api, pg_cluster):
    n = 20
    barrier = threading.Barrier(n)
    key = api._credentials["HTTP_X_API_KEY"]

    def post(_: int):
        client = APIClient(REMOTE_ADDR="203.0.113.10")
        client.credentials(HTTP_X_API_KEY=key)
        barrier.wait()
        try:
            return client.post(URL, GOOD, format="json", HTTP_IDEMPOTENCY_KEY="stampede")
        finally:
            connections.close_all()

    with ThreadPoolExecutor(n) as pool:
        responses = list(pool.map(post, range(n)))

    [job] = Job.objects.all()
    accepted = [r for r in responses if r.status_code == 202]
    refused = [r for r in responses if r.status_code != 202]
    assert {r.json()["job_id"] for r in accepted} == {job.job_id}
    assert len([r for r in accepted if REPLAYED not in r]) == 1
    # Never job_target_busy: no duplicate got as far as trying to start a second job.
    assert {(r.status_code, r.json()["code"]) for r in refused} <= {(409, "idempotency_in_flight")}
    codes = [code for _, code, _ in audit_codes()]
    assert len(codes) == n
    assert codes.count(None) == 1
    assert codes.count("idempotent_replay") == len(accepted) - 1
    assert codes.count("idempotency_in_flight") == len(refused)


def test_a_repeated_cancel_with_one_key_replays_its_202(api, pg_cluster):
    job_id = api.post(URL, GOOD, format="json").json()["job_id"]
    cancel = f"/ops/jobs/{job_id}/cancel"

    first = api.post(cancel, HTTP_IDEMPOTENCY_KEY="cancel-1")
    assert Job.objects.get(job_id=job_id).status == JobStatus.CANCELLED
    again = api.post(cancel, HTTP_IDEMPOTENCY_KEY="cancel-1")
    without_key = api.post(cancel)

    assert first.status_code == again.status_code == 202
    assert again[REPLAYED] == "true"
    assert again.json() == first.json()
    assert without_key.status_code == 409  # the cancel itself would now be refused
    assert audit_codes()[1:] == [
        ("success", None, 202),
        ("success", "idempotent_replay", 202),
        ("error", "job_not_active", 409),
    ]


def test_an_unknown_job_type_is_a_final_404_replayed_with_its_own_row(api):
    first = api.post("/ops/jobs/no-such-type", {}, format="json", HTTP_IDEMPOTENCY_KEY="nope")
    again = api.post("/ops/jobs/no-such-type", {}, format="json", HTTP_IDEMPOTENCY_KEY="nope")
    reused = api.post(
        "/ops/jobs/no-such-type", {"x": 1}, format="json", HTTP_IDEMPOTENCY_KEY="nope"
    )

    assert first.status_code == again.status_code == 404
    assert again[REPLAYED] == "true"
    assert reused.status_code == 422
    assert [code for _, code, _ in audit_codes()] == [
        first.json()["code"],
        "idempotent_replay",
        "idempotency_key_reused",
    ]
