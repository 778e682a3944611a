"""The job endpoints: starting a pg-rebuild (validation before anything is created, namespace
policy, the StatefulSet and its claim templates checked, the same-target lock under concurrent
requests, one audit row per attempt), reading one job in the seed's shape, and listing jobs
with filters and pagination."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone
from django_q.models import OrmQ
from django_q.signing import SignedPackage
from rest_framework.test import APIClient

from jobs.models import Job, JobStatus, JobStep
from ops.models import OpsLog

pytestmark = pytest.mark.django_db(databases=["default", "audit"], transaction=True)

URL = "/ops/jobs/pg-rebuild"
GOOD = {"namespace": "prod", "statefulset": "postgres", "ordinal": 0, "target_replicas": 3}
#: What a job records of GOOD: the body with the defaults of the optional fields.
GOOD_PARAMS = {
    **GOOD,
    "strategy": "scale-to-zero",
    "allow_outage": False,
    "allow_scale_down": False,
}
JOB_ID = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+00:00_pg-rebuild_[0-9a-f]{8}$")
UTC_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
STEP_NAMES = [
    "scale_sts_to_zero",
    "wait_pods_down",
    "delete_pvc",
    "scale_sts_to_target",
    "wait_pods_ready",
]


def audit_rows() -> list[OpsLog]:
    return list(OpsLog.objects.using("audit").order_by("id"))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**GOOD, "ordinal": 3, "target_replicas": 3}, "target_replicas"),
        ({k: v for k, v in GOOD.items() if k != "target_replicas"}, "target_replicas"),
        ({**GOOD, "ordinal": -1}, "ordinal"),
        ({**GOOD, "ordinal": "0"}, "ordinal"),
        ({**GOOD, "ordinal": 0.0}, "ordinal"),
        ({**GOOD, "target_replicas": True}, "target_replicas"),
        ({**GOOD, "target_replicas": 0}, "target_replicas"),
        ({**GOOD, "target_replicas": 101}, "target_replicas"),
        ({**GOOD, "statefulset": "Postgres_DB"}, "statefulset"),
        ({**GOOD, "namespace": "prod.eu"}, "namespace"),
        ({**GOOD, "dry_run": True}, "dry_run"),
    ],
)
def test_invalid_rebuild_requests_are_400_and_create_nothing(api, body, field):
    response = api.post(URL, body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid"
    assert field in response.json()["errors"]
    assert Job.objects.count() == 0
    assert JobStep.objects.count() == 0
    assert OrmQ.objects.count() == 0
    [row] = audit_rows()
    assert (row.action, row.status, row.http_status) == ("pg-rebuild", "error", 400)
    assert row.actor == "bootstrap"


def test_a_body_that_is_not_an_object_is_400(api):
    response = api.post(URL, [GOOD], format="json")
    assert response.status_code == 400
    assert Job.objects.count() == 0


def test_a_namespace_outside_the_allowed_list_is_403_and_denied_in_the_audit(api):
    response = api.post(
        URL, {**GOOD, "namespace": "kube-system", "target_replicas": 1}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["code"] == "namespace_denied"
    assert Job.objects.count() == 0
    [row] = audit_rows()
    assert (row.status, row.namespace, row.resource_name) == ("denied", "kube-system", "postgres")


def test_a_missing_key_is_401_and_creates_nothing(fast_jobs):
    response = APIClient().post(URL, GOOD, format="json")
    assert response.status_code == 401
    assert Job.objects.count() == 0


def test_an_unknown_statefulset_is_404_and_creates_nothing(api, pg_cluster):
    response = api.post(URL, {**GOOD, "statefulset": "nope"}, format="json")
    assert response.status_code == 404, response.content
    assert "nope" in response.json()["detail"]
    assert Job.objects.count() == 0
    [row] = audit_rows()
    assert (row.status, row.http_status, row.job_id) == ("error", 404, None)


def test_a_statefulset_without_claim_templates_is_refused(api, pg_cluster):
    response = api.post(
        URL, {**GOOD, "statefulset": "stateless", "target_replicas": 1}, format="json"
    )
    assert response.status_code == 400
    [message] = response.json()["errors"]["statefulset"]
    assert "has no volumeClaimTemplates" in message
    assert Job.objects.count() == 0


def test_a_rebuild_is_accepted_with_five_pending_steps_and_a_queued_tick(api, pg_cluster):
    response = api.post(URL, GOOD, format="json")
    assert response.status_code == 202, response.content
    job_id = response.json()["job_id"]
    assert set(response.json()) == {"job_id"}
    assert JOB_ID.match(job_id)
    job = Job.objects.get(job_id=job_id)
    assert (job.status, job.actor, job.params) == ("pending", "bootstrap", GOOD_PARAMS)
    # What it found when it was accepted, for the guards of its later steps.
    assert job.result == {"replicas_at_request": 3, "patroni_scopes": []}
    assert job.created_at.isoformat(timespec="seconds") == job_id.split("_")[0]
    steps = list(job.steps.order_by("step_order").values_list("name", "step_order", "status"))
    assert steps == [(name, i, "pending") for i, name in enumerate(STEP_NAMES, start=1)]
    [queued] = OrmQ.objects.all()
    task = SignedPackage.loads(queued.payload)
    assert (task["func"], task["args"]) == ("jobs.tasks.tick", (job_id, 0))
    [row] = audit_rows()
    assert (row.action, row.status, row.http_status, row.job_id) == (
        "pg-rebuild",
        "success",
        202,
        job_id,
    )
    # Nothing was done to the cluster yet: only the StatefulSet was read.
    assert list(pg_cluster.requests.mutations()) == []


def test_a_second_active_job_on_the_same_statefulset_is_409(api, pg_cluster):
    first = api.post(URL, GOOD, format="json").json()["job_id"]
    response = api.post(URL, {**GOOD, "ordinal": 1}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "job_target_busy"
    assert first in response.json()["detail"]
    assert Job.objects.count() == 1
    assert [r.status for r in audit_rows()] == ["success", "error"]


def test_a_finished_job_no_longer_holds_its_target(api, pg_cluster):
    first = api.post(URL, GOOD, format="json").json()["job_id"]
    Job.objects.filter(job_id=first).update(status=JobStatus.FAILED)
    assert api.post(URL, GOOD, format="json").status_code == 202


def test_concurrent_requests_on_one_target_start_exactly_one_job(api, pg_cluster):
    barrier = threading.Barrier(6)

    def post(_: int) -> int:
        client = APIClient(REMOTE_ADDR="203.0.113.10")
        client.credentials(HTTP_X_API_KEY=api._credentials["HTTP_X_API_KEY"])
        barrier.wait()
        try:
            return client.post(URL, GOOD, format="json").status_code
        finally:
            connections.close_all()

    with ThreadPoolExecutor(6) as pool:
        codes = sorted(pool.map(post, range(6)))
    assert codes == [202, 409, 409, 409, 409, 409]
    assert Job.objects.count() == 1
    assert JobStep.objects.count() == 5


def test_a_job_reads_back_in_the_seed_shape(api, pg_cluster):
    job_id = api.post(URL, GOOD, format="json").json()["job_id"]
    body = api.get(f"/ops/jobs/{job_id}").json()
    assert set(body) == {
        "job_id",
        "type",
        "status",
        "created_at",
        "finished_at",
        "params",
        "result",
        "error",
        "steps",
    }
    assert (body["job_id"], body["type"], body["status"]) == (job_id, "pg-rebuild", "pending")
    assert UTC_Z.match(body["created_at"])
    assert body["finished_at"] is None
    assert body["params"] == GOOD_PARAMS
    assert body["error"] is None
    assert [s["name"] for s in body["steps"]] == STEP_NAMES
    assert [s["order"] for s in body["steps"]] == [1, 2, 3, 4, 5]
    assert set(body["steps"][0]) == {
        "name",
        "order",
        "status",
        "detail",
        "started_at",
        "finished_at",
    }


def test_an_unknown_job_is_a_json_404(api):
    response = api.get("/ops/jobs/2025-01-15T10:30:00+00:00_pg-rebuild_00000000")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_the_job_list_filters_by_status_type_and_namespace(api, pg_cluster):
    first = api.post(URL, GOOD, format="json").json()["job_id"]
    Job.objects.filter(job_id=first).update(status=JobStatus.SUCCESS)
    second = api.post(URL, GOOD, format="json").json()["job_id"]

    def ids(query: str) -> list[str]:
        response = api.get(f"/ops/jobs{query}")
        assert response.status_code == 200, response.content
        return [job["job_id"] for job in response.json()["results"]]

    assert ids("") == [second, first]
    assert ids("?status=success&type=pg-rebuild") == [first]
    assert ids("?status=pending") == [second]
    assert ids("?namespace=staging") == []
    assert ids("?type=backup") == []
    page = api.get("/ops/jobs?page_size=1").json()
    assert (page["count"], len(page["results"]), page["previous"]) == (2, 1, None)
    assert page["next"] is not None
    assert [j["job_id"] for j in api.get(page["next"]).json()["results"]] == [first]


def test_an_unknown_status_filter_is_400(api):
    response = api.get("/ops/jobs?status=exploded")
    assert response.status_code == 400
    assert "status" in response.json()["errors"]


def test_cancelling_an_active_job_is_accepted_and_audited(api, pg_cluster):
    job_id = api.post(URL, GOOD, format="json").json()["job_id"]
    response = api.post(f"/ops/jobs/{job_id}/cancel")
    assert response.status_code == 202, response.content
    assert response.json()["job_id"] == job_id
    assert Job.objects.get(job_id=job_id).cancel_requested
    row = audit_rows()[-1]
    assert (row.action, row.resource_kind, row.resource_name, row.status, row.job_id) == (
        "cancel",
        "job",
        job_id,
        "success",
        job_id,
    )


def test_cancelling_a_job_no_worker_has_claimed_ends_it_at_once_and_frees_its_target(
    api, pg_cluster
):
    job_id = api.post(URL, GOOD, format="json").json()["job_id"]

    response = api.post(f"/ops/jobs/{job_id}/cancel")

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "cancelled"
    assert body["error"] is None  # a cancel is not a failure
    assert body["finished_at"] is not None
    # No step ran: every one stays pending.
    assert [(s["status"], s["detail"]) for s in body["steps"]] == [("pending", None)] * 5
    job = Job.objects.get(job_id=job_id)
    assert (job.status, job.lease_owner, job.next_run_at) == ("cancelled", None, None)
    # The target is free again: a new rebuild of the same StatefulSet is accepted.
    assert api.post(URL, GOOD, format="json").status_code == 202
    assert list(pg_cluster.requests.mutations()) == []


@pytest.mark.parametrize(
    ("expires_in", "ends_now"),
    [(timedelta(minutes=1), False), (timedelta(minutes=-1), True)],
    ids=["live lease", "lapsed lease"],
)
def test_cancelling_a_held_job_waits_for_its_tick_unless_the_lease_has_lapsed(
    api, pg_cluster, expires_in, ends_now
):
    job_id = api.post(URL, GOOD, format="json").json()["job_id"]
    Job.objects.filter(job_id=job_id).update(
        status=JobStatus.RUNNING,
        lease_owner="worker-host:4242:0badcafe",
        lease_expires_at=timezone.now() + expires_in,
    )

    assert api.post(f"/ops/jobs/{job_id}/cancel").status_code == 202

    job = Job.objects.get(job_id=job_id)
    assert job.cancel_requested
    if ends_now:  # its worker is gone: nobody would ever honour the request
        assert (job.status, job.lease_owner) == ("cancelled", None)
    else:  # the live tick fails the step at its next checkpoint
        assert (job.status, job.lease_owner) == ("running", "worker-host:4242:0badcafe")
        assert set(job.steps.values_list("status", flat=True)) == {"pending"}


def test_cancelling_a_finished_job_is_409(api, pg_cluster):
    job_id = api.post(URL, GOOD, format="json").json()["job_id"]
    Job.objects.filter(job_id=job_id).update(status=JobStatus.SUCCESS)
    response = api.post(f"/ops/jobs/{job_id}/cancel")
    assert response.status_code == 409
    assert response.json()["code"] == "job_not_active"
    assert not Job.objects.get(job_id=job_id).cancel_requested


def test_acting_on_an_unknown_job_is_404_and_audited(api):
    response = api.post("/ops/jobs/2025-01-15T10:30:00+00:00_pg-rebuild_00000000/retry")
    assert response.status_code == 404
    [row] = audit_rows()
    assert (row.action, row.status, row.http_status) == ("retry", "error", 404)


def test_only_a_failed_job_can_be_retried(api, pg_cluster):
    job_id = api.post(URL, GOOD, format="json").json()["job_id"]
    response = api.post(f"/ops/jobs/{job_id}/retry")
    assert response.status_code == 409
    assert response.json()["code"] == "job_not_failed"


def test_a_retry_is_409_while_another_job_holds_the_target(api, pg_cluster):
    failed = api.post(URL, GOOD, format="json").json()["job_id"]
    Job.objects.filter(job_id=failed).update(status=JobStatus.FAILED)
    JobStep.objects.filter(job_id=failed, step_order=1).update(status=JobStatus.FAILED)
    api.post(URL, GOOD, format="json")  # a new job now holds prod/postgres
    response = api.post(f"/ops/jobs/{failed}/retry")
    assert response.status_code == 409
    assert response.json()["code"] == "job_target_busy"
    assert Job.objects.get(job_id=failed).status == JobStatus.FAILED
    assert JobStep.objects.get(job_id=failed, step_order=1).status == JobStatus.FAILED


def test_a_key_scoped_elsewhere_cannot_see_or_act_on_a_job(api, pg_cluster):
    from ops.models import ApiKey

    job_id = api.post(URL, GOOD, format="json").json()["job_id"]
    staging = ApiKey.objects.issue(name="staging-bot", namespaces=["staging"]).raw
    other = APIClient(REMOTE_ADDR="203.0.113.11")
    other.credentials(HTTP_X_API_KEY=staging)
    assert other.get(f"/ops/jobs/{job_id}").status_code == 404
    assert other.get("/ops/jobs").json()["results"] == []
    assert other.post(f"/ops/jobs/{job_id}/cancel").status_code == 404
    assert not Job.objects.get(job_id=job_id).cancel_requested
