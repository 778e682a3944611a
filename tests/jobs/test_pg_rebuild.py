"""The pg-rebuild steps against kubesim through the real client, ticks delivered in-process:
the happy path (new claims, each mutation once, one audit row each), each step failing with a
detail a person can act on and later steps left pending, and a tick delivered twice at once
doing the work once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connections
from rest_framework.test import APIClient

from jobs.models import Job, JobStatus
from jobs.runner import run_tick
from ops import k8s
from ops.models import ApiKey, OpsLog
from tests.jobs.conftest import CLIENT_IP

pytestmark = pytest.mark.django_db(databases=["default", "audit"], transaction=True)

URL = "/ops/jobs/pg-rebuild"
BODY = {"namespace": "prod", "statefulset": "postgres", "ordinal": 0, "target_replicas": 3}
STS_SCALE = r"/namespaces/prod/statefulsets/postgres/scale$"
STEP_NAMES = [
    "scale_sts_to_zero",
    "wait_pods_down",
    "delete_pvc",
    "scale_sts_to_target",
    "wait_pods_ready",
]
PVC = r"/namespaces/prod/persistentvolumeclaims/"


def start(api, **overrides) -> str:
    response = api.post(URL, {**BODY, **overrides}, format="json")
    assert response.status_code == 202, response.content
    return response.json()["job_id"]


def steps(job_id: str) -> list[tuple[str, str, str | None]]:
    job = Job.objects.get(job_id=job_id)
    return [(s.name, s.status, s.detail) for s in job.steps.order_by("step_order")]


def mutations(sim) -> list[tuple[str, str, str]]:
    return [(r.method, r.resource, r.name) for r in sim.requests.mutations()]


def pvc_uid(sim, name: str) -> str | None:
    pvc = sim.get("persistentvolumeclaims", "prod", name)
    return pvc["metadata"]["uid"] if pvc else None


def test_a_rebuild_recreates_the_claims_and_brings_the_pods_back(api, pg_cluster, drive):
    before = {name: pvc_uid(pg_cluster, name) for name in ("data-postgres-0", "wal-postgres-0")}
    untouched = pvc_uid(pg_cluster, "data-postgres-1")
    job_id = start(api)
    job = drive(job_id)
    assert job.status == JobStatus.SUCCESS, steps(job_id)
    names_and_statuses = [(name, status) for name, status, _ in steps(job_id)]
    assert names_and_statuses == [(name, "success") for name in STEP_NAMES]
    details = [detail for _, _, detail in steps(job_id)]
    assert details[0] == (
        "scaled to 0 (was 3); role of postgres-0: unknown (no Patroni, Spilo or "
        "CloudNativePG signal: rebuilt as a replica)"
    )
    assert details[1] == "no pods left matching app=postgres"
    assert details[2] == (
        f"deleted data-postgres-0 (uid {before['data-postgres-0']}), "
        f"wal-postgres-0 (uid {before['wal-postgres-0']})"
    )
    assert details[3] == "scaled to 3"
    assert details[4].startswith("3 of 3 pods ready; postgres-0 uid ")
    for name, uid in before.items():
        assert pvc_uid(pg_cluster, name) not in (None, uid)
    assert pvc_uid(pg_cluster, "data-postgres-1") == untouched
    assert mutations(pg_cluster) == [
        ("PATCH", "statefulsets", "postgres"),
        ("DELETE", "persistentvolumeclaims", "data-postgres-0"),
        ("DELETE", "persistentvolumeclaims", "wal-postgres-0"),
        ("PATCH", "statefulsets", "postgres"),
    ]
    rows = list(OpsLog.objects.using("audit").filter(job_id=job_id).order_by("id"))
    assert [(r.action, r.resource_kind, r.resource_name, r.status) for r in rows] == [
        ("pg-rebuild", "statefulset", "postgres", "success"),
        ("scale", "statefulset", "postgres", "success"),
        ("delete", "persistentvolumeclaim", "data-postgres-0", "success"),
        ("delete", "persistentvolumeclaim", "wal-postgres-0", "success"),
        ("scale", "statefulset", "postgres", "success"),
    ]
    # The evidence: old and new uids of the target's pod and claims, how long it was down.
    job = Job.objects.get(job_id=job_id)
    result = job.result
    assert result["old_claim_uids"] == before
    new_claims = {name: pvc_uid(pg_cluster, name) for name in before}
    assert result["new_claim_uids"] == new_claims
    assert result["old_pod_uid"] != result["new_pod_uid"]
    assert result["new_pod_uid"] == pg_cluster.get("pods", "prod", "postgres-0")["metadata"]["uid"]
    assert result["downtime_seconds"] > 0
    assert job.error is None
    # Every scale carried the resourceVersion its step had just read.
    scales = [r for r in rows if r.action == "scale"]
    assert all(r.request_body["preconditions"]["resourceVersion"] for r in scales)
    assert {(r.actor, r.origin) for r in rows[1:]} == {("bootstrap", "job")}
    sts = pg_cluster.get("statefulsets", "prod", "postgres")
    assert sts["status"]["readyReplicas"] == 3


def test_an_api_error_while_scaling_down_fails_the_first_step(api, pg_cluster, drive):
    pg_cluster.faults.add(
        method="PATCH",
        path=STS_SCALE,
        status=403,
        message='statefulsets.apps "postgres" is forbidden: User '
        '"system:serviceaccount:ops:apiops" cannot patch resource "statefulsets/scale" '
        'in API group "apps" in the namespace "prod"',
    )
    job_id = start(api)
    assert drive(job_id).status == JobStatus.FAILED
    first, *rest = steps(job_id)
    assert first[:2] == ("scale_sts_to_zero", "failed")
    assert first[2].startswith("The Kubernetes API refused the service account: ")
    assert 'cannot patch resource "statefulsets/scale"' in first[2]
    assert [s[1] for s in rest] == ["pending"] * 4
    assert mutations(pg_cluster) == [("PATCH", "statefulsets", "postgres")]


def test_pods_that_never_go_away_time_out_naming_them(api, pg_cluster, drive, fast_jobs):
    fast_jobs(JOB_WAIT_TIMEOUT=1.0, JOB_POLL_INTERVAL=0.2)
    pg_cluster.controllers.pause()
    job_id = start(api)
    assert drive(job_id).status == JobStatus.FAILED
    assert steps(job_id)[1] == (
        "wait_pods_down",
        "failed",
        "timed out after 1 s: pods postgres-0, postgres-1, postgres-2 still present; "
        "StatefulSet prod/postgres left at 0 replicas (was 3)",
    )
    assert [s[1] for s in steps(job_id)[2:]] == ["pending"] * 3
    assert mutations(pg_cluster) == [("PATCH", "statefulsets", "postgres")]


def test_a_terminating_pod_still_counts_as_present(api, pg_cluster, drive, fast_jobs):
    fast_jobs(JOB_WAIT_TIMEOUT=1.0, JOB_POLL_INTERVAL=0.2)
    pg_cluster.slow_termination("prod", "postgres-2", 60)
    job_id = start(api)
    assert drive(job_id).status == JobStatus.FAILED
    name, status, detail = steps(job_id)[1]
    assert (name, status) == ("wait_pods_down", "failed")
    assert detail.startswith("timed out after 1 s: pods ")
    assert "postgres-2" in detail
    pod = pg_cluster.get("pods", "prod", "postgres-2")
    assert pod["metadata"].get("deletionTimestamp")  # it was Terminating, and still counted
    assert [s[1] for s in steps(job_id)[2:]] == ["pending"] * 3


@pytest.mark.parametrize(
    ("step", "method", "path"),
    [
        ("wait_pods_down", "GET", r"/namespaces/prod/pods$"),
        ("wait_pods_ready", "GET", r"/namespaces/prod/statefulsets/postgres$"),
    ],
)
def test_an_api_outage_while_waiting_fails_the_step(api, pg_cluster, drive, step, method, path):
    job_id = start(api)
    job = Job.objects.get(job_id=job_id)
    # Up to the step before this one, the cluster answers; then it fails past every retry.
    previous = {"wait_pods_down": "scale_sts_to_zero", "wait_pods_ready": "delete_pvc"}[step]
    while job.steps.get(name=previous).status != JobStatus.SUCCESS:
        run_tick(job_id, job.tick_seq)
        job.refresh_from_db()
    pg_cluster.faults.add(method=method, path=path, status=503)
    assert drive(job_id).status == JobStatus.FAILED
    failed = [s for s in steps(job_id) if s[1] == "failed"]
    assert [s[0] for s in failed] == [step]
    assert failed[0][2].startswith("The Kubernetes API is unavailable: ")
    assert "HTTP 503" in failed[0][2]


def test_a_claim_stuck_terminating_times_out_and_the_set_stays_at_zero(
    api, pg_cluster, drive, fast_jobs
):
    fast_jobs(JOB_WAIT_TIMEOUT=1.0, JOB_POLL_INTERVAL=0.2)
    pg_cluster.stuck_finalizer("prod", "wal-postgres-0")
    job_id = start(api)
    assert drive(job_id).status == JobStatus.FAILED
    assert steps(job_id)[2] == (
        "delete_pvc",
        "failed",
        "timed out after 1 s: claims wal-postgres-0 still present (Terminating); "
        "StatefulSet prod/postgres left at 0 replicas (was 3)",
    )
    # Never scaled up while a claim is Terminating: the pod would stay Pending for ever.
    assert pg_cluster.get("statefulsets", "prod", "postgres")["spec"]["replicas"] == 0
    assert ("DELETE", "persistentvolumeclaims", "wal-postgres-0") in mutations(pg_cluster)


def test_a_failing_claim_delete_fails_the_step_with_the_api_message(api, pg_cluster, drive):
    pg_cluster.faults.add(method="DELETE", path=PVC + "data-postgres-0$", status=500)
    job_id = start(api)
    assert drive(job_id).status == JobStatus.FAILED
    name, status, detail = steps(job_id)[2]
    assert (name, status) == ("delete_pvc", "failed")
    assert "HTTP 500" in detail
    assert [s[1] for s in steps(job_id)[3:]] == ["pending"] * 2


def test_an_api_error_while_scaling_up_fails_the_fourth_step(api, pg_cluster, drive):
    job_id = start(api)
    job = Job.objects.get(job_id=job_id)
    while job.steps.get(name="delete_pvc").status == JobStatus.PENDING:
        run_tick(job_id, job.tick_seq)
        job.refresh_from_db()
    # Scaled down and the claims deleted: from now on the API refuses every scale.
    pg_cluster.faults.add(method="PATCH", path=STS_SCALE, status=422)
    assert drive(job_id).status == JobStatus.FAILED
    name, status, detail = steps(job_id)[3]
    assert (name, status) == ("scale_sts_to_target", "failed")
    assert detail.startswith("The Kubernetes API rejected the request")
    assert steps(job_id)[4][1] == "pending"


def test_pods_that_never_become_ready_time_out_naming_them(api, pg_cluster, drive, fast_jobs):
    # Room for the StatefulSet controller to have created postgres-2 (after the two before it
    # are Ready) before the timeout, also on a machine busy with parallel test workers.
    fast_jobs(JOB_WAIT_TIMEOUT=4.0, JOB_POLL_INTERVAL=0.2)
    pg_cluster.pod_never_ready("prod", "postgres-2")
    job_id = start(api)
    assert drive(job_id).status == JobStatus.FAILED
    name, status, detail = steps(job_id)[4]
    assert (name, status) == ("wait_pods_ready", "failed")
    assert detail.startswith("timed out after 4 s: 2 of 3 pods ready")
    assert "not ready: postgres-2" in detail


def test_a_tick_delivered_twice_at_once_scales_down_once(api, pg_cluster, drive):
    # Slow reads keep the first tick inside the step while the second one arrives.
    pg_cluster.faults.add(method="GET", path=r"/statefulsets/postgres$", delay=0.3, times=1)
    job_id = start(api)
    barrier = threading.Barrier(2)

    def deliver(_: int) -> str:
        barrier.wait()
        try:
            return run_tick(job_id, 0)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(deliver, range(2)))
    assert sum("not claimed" in outcome for outcome in outcomes) == 1
    assert drive(job_id).status == JobStatus.SUCCESS
    patches = [m for m in mutations(pg_cluster) if m[0] == "PATCH"]
    assert len(patches) == 2  # one down, one up


def test_a_failed_rebuild_retried_resumes_at_its_failed_step(api, pg_cluster, drive, fast_jobs):
    fast_jobs(JOB_WAIT_TIMEOUT=0.5, JOB_POLL_INTERVAL=0.1)
    pg_cluster.controllers.pause()
    job_id = start(api)
    assert drive(job_id).status == JobStatus.FAILED
    assert steps(job_id)[1][:2] == ("wait_pods_down", "failed")
    pg_cluster.controllers.resume()
    fast_jobs(JOB_WAIT_TIMEOUT=30.0)
    response = api.post(f"/ops/jobs/{job_id}/retry")
    assert response.status_code == 202, response.content
    assert [s["status"] for s in response.json()["steps"]] == ["success"] + ["pending"] * 4
    assert drive(job_id).status == JobStatus.SUCCESS
    # The scale-down that had succeeded was not sent again.
    assert mutations(pg_cluster) == [
        ("PATCH", "statefulsets", "postgres"),
        ("DELETE", "persistentvolumeclaims", "data-postgres-0"),
        ("DELETE", "persistentvolumeclaims", "wal-postgres-0"),
        ("PATCH", "statefulsets", "postgres"),
    ]


def test_a_cancelled_rebuild_stops_before_its_next_action(api, pg_cluster, drive, fast_jobs):
    fast_jobs(JOB_POLL_INTERVAL=0.1)
    pg_cluster.controllers.pause()
    job_id = start(api)
    run_tick(job_id, 0)  # scaled down, now waiting for the pods
    assert api.post(f"/ops/jobs/{job_id}/cancel").status_code == 202
    assert drive(job_id).status == JobStatus.CANCELLED
    assert steps(job_id)[1] == (
        "wait_pods_down",
        "cancelled",
        "cancelled before this step finished; StatefulSet prod/postgres left at 0 replicas (was 3)",
    )
    assert mutations(pg_cluster) == [("PATCH", "statefulsets", "postgres")]


def tick_until(job_id: str, predicate, limit: int = 500) -> None:
    """Deliver ticks one at a time until ``predicate()`` holds."""
    for _ in range(limit):
        if predicate():
            return
        run_tick(job_id, Job.objects.get(job_id=job_id).tick_seq)
    raise AssertionError(f"{job_id}: condition not reached after {limit} ticks")


def waiting_in(job_id: str, step: str) -> bool:
    detail = Job.objects.get(job_id=job_id).steps.get(name=step).detail
    return bool(detail and detail.startswith("waiting"))


RECREATED_CLAIM = """
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data-postgres-0, namespace: prod}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
"""


def test_a_claim_recreated_by_someone_else_after_the_delete_is_not_deleted_again(
    api, pg_cluster, drive
):
    # wal stays Terminating, so the step is still waiting when data-postgres-0 comes back.
    pg_cluster.stuck_finalizer("prod", "wal-postgres-0")
    job_id = start(api)
    tick_until(job_id, lambda: waiting_in(job_id, "delete_pvc"))
    assert pvc_uid(pg_cluster, "data-postgres-0") is None  # our delete went through
    pg_cluster.apply(RECREATED_CLAIM)
    new_uid = pvc_uid(pg_cluster, "data-postgres-0")

    assert drive(job_id).status == JobStatus.FAILED

    name, status, detail = steps(job_id)[2]
    assert (name, status) == ("delete_pvc", "failed")
    assert (
        f"claim data-postgres-0 was recreated (uid {new_uid}) by someone else; "
        "not deleting it again"
    ) in detail
    assert pvc_uid(pg_cluster, "data-postgres-0") == new_uid
    deletes = [m for m in mutations(pg_cluster) if m[0] == "DELETE"]
    assert deletes == [
        ("DELETE", "persistentvolumeclaims", "data-postgres-0"),
        ("DELETE", "persistentvolumeclaims", "wal-postgres-0"),
    ]
    assert [s[1] for s in steps(job_id)[3:]] == ["pending"] * 2


def test_each_claim_delete_is_pinned_to_the_uid_the_step_read(api, pg_cluster, drive):
    uids = {name: pvc_uid(pg_cluster, name) for name in ("data-postgres-0", "wal-postgres-0")}
    job_id = start(api)

    assert drive(job_id).status == JobStatus.SUCCESS

    rows = OpsLog.objects.using("audit").filter(job_id=job_id, action="delete").order_by("id")
    assert {r.resource_name: r.request_body for r in rows} == {
        name: {"preconditions": {"uid": uid}} for name, uid in uids.items()
    }


def test_a_claim_that_appears_after_the_step_found_it_gone_is_not_deleted(api, pg_cluster, drive):
    # Accepted, then scaled down and data-postgres-0 deleted by someone before the first tick.
    job_id = start(api)
    k8s.scale_patch(kind="statefulset", namespace="prod", name="postgres", replicas=0)
    pg_cluster.wait_for(lambda: not pg_cluster.list("pods", "prod", "app=postgres"), timeout=20)
    pg_cluster.delete("persistentvolumeclaims", "prod", "data-postgres-0")
    pg_cluster.wait_for(lambda: pvc_uid(pg_cluster, "data-postgres-0") is None, timeout=20)
    pg_cluster.stuck_finalizer("prod", "wal-postgres-0")
    tick_until(job_id, lambda: waiting_in(job_id, "delete_pvc"))
    pg_cluster.apply(RECREATED_CLAIM)
    new_uid = pvc_uid(pg_cluster, "data-postgres-0")

    assert drive(job_id).status == JobStatus.FAILED

    detail = steps(job_id)[2][2]
    assert f"claim data-postgres-0 appeared (uid {new_uid}) after this step found it gone" in (
        detail
    )
    assert pvc_uid(pg_cluster, "data-postgres-0") == new_uid
    assert ("DELETE", "persistentvolumeclaims", "data-postgres-0") not in mutations(pg_cluster)


def client_for(name: str, ip: str) -> APIClient:
    """An API client with a fresh key called ``name``, calling from ``ip``."""
    client = APIClient(REMOTE_ADDR=ip)
    client.credentials(HTTP_X_API_KEY=ApiKey.objects.issue(name=name).raw)
    return client


def test_after_a_retry_by_another_key_the_steps_act_for_that_key(api, pg_cluster, drive):
    pg_cluster.faults.add(method="PATCH", path=STS_SCALE, status=500, times=3)
    job_id = start(api)
    assert drive(job_id).status == JobStatus.FAILED
    bob = client_for("bob", "198.51.100.50")

    assert bob.post(f"/ops/jobs/{job_id}/retry").status_code == 202
    assert drive(job_id).status == JobStatus.SUCCESS

    rows = OpsLog.objects.using("audit").filter(job_id=job_id).order_by("id")
    assert [(r.action, r.actor, r.source_ip, r.origin, r.status) for r in rows] == [
        ("pg-rebuild", "bootstrap", CLIENT_IP, "api", "success"),
        ("scale", "bootstrap", CLIENT_IP, "job", "error"),
        ("retry", "bob", "198.51.100.50", "api", "success"),
        ("scale", "bob", "198.51.100.50", "job", "success"),
        ("delete", "bob", "198.51.100.50", "job", "success"),
        ("delete", "bob", "198.51.100.50", "job", "success"),
        ("scale", "bob", "198.51.100.50", "job", "success"),
    ]
    job = Job.objects.get(job_id=job_id)
    assert (job.actor, job.acting_actor) == ("bootstrap", "bob")  # who asked, who acts now


def test_a_rebuild_whose_key_is_revoked_before_it_acts_changes_nothing(api, pg_cluster, drive):
    bob = client_for("bob", "198.51.100.50")
    job_id = start(bob)
    call_command("revoke_api_key", "bob", stdout=StringIO())

    assert drive(job_id).status == JobStatus.FAILED

    name, status, detail = steps(job_id)[0]
    assert (name, status) == ("scale_sts_to_zero", "failed")
    assert "the API key 'bob' this job acts for was revoked at " in detail
    assert mutations(pg_cluster) == []


def test_a_retry_by_a_key_revoked_later_does_not_act_for_it(api, pg_cluster, drive):
    pg_cluster.faults.add(method="PATCH", path=STS_SCALE, status=500, times=3)
    job_id = start(api)
    drive(job_id)
    bob = client_for("bob", "198.51.100.50")
    assert bob.post(f"/ops/jobs/{job_id}/retry").status_code == 202
    call_command("revoke_api_key", "bob", stdout=StringIO())
    before = mutations(pg_cluster)  # the first run's refused scale-down attempts

    assert drive(job_id).status == JobStatus.FAILED

    assert "the API key 'bob' this job acts for was revoked" in steps(job_id)[0][2]
    assert mutations(pg_cluster) == before


POSTGRES_WITHOUT_TEMPLATES = """
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
      containers: [{name: postgres, image: postgres:16}]
"""


def test_a_set_that_lost_its_claim_templates_after_acceptance_is_not_scaled_down(
    api, pg_cluster, drive
):
    job_id = start(api)
    # Recreated without templates between the request and the first step.
    pg_cluster.delete("statefulsets", "prod", "postgres")
    pg_cluster.apply(POSTGRES_WITHOUT_TEMPLATES)
    pg_cluster.requests.clear()

    assert drive(job_id).status == JobStatus.FAILED

    name, status, detail = steps(job_id)[0]
    assert (name, status) == ("scale_sts_to_zero", "failed")
    assert detail.startswith(
        "The job cannot go on: StatefulSet prod/postgres has no volumeClaimTemplates any "
        "more: there is no claim to rebuild"
    )
    assert mutations(pg_cluster) == []
    assert pg_cluster.get("statefulsets", "prod", "postgres")["spec"]["replicas"] == 3


def test_a_failed_rebuild_whose_set_cannot_be_read_says_what_it_remembers(
    api, pg_cluster, drive, fast_jobs
):
    fast_jobs(JOB_WAIT_TIMEOUT=1.0, JOB_POLL_INTERVAL=0.2)
    pg_cluster.stuck_finalizer("prod", "wal-postgres-0")
    job_id = start(api)
    tick_until(job_id, lambda: waiting_in(job_id, "delete_pvc"))
    pg_cluster.faults.add(method="GET", path=r"/statefulsets/postgres$", status=503)

    assert drive(job_id).status == JobStatus.FAILED

    assert steps(job_id)[2][2].endswith(
        "; StatefulSet prod/postgres: replicas now unknown (cannot read it) (was 3)"
    )


def test_a_rebuild_failed_before_it_changed_anything_says_the_set_is_as_it_was(
    api, pg_cluster, drive
):
    pg_cluster.faults.add(method="PATCH", path=STS_SCALE, status=403, times=10)
    job_id = start(api)

    assert drive(job_id).status == JobStatus.FAILED

    assert steps(job_id)[0][2].endswith("; StatefulSet prod/postgres left at 3 replicas (was 3)")
