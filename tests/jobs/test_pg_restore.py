"""A restore (``pg-rebuild`` with ``from_snapshot``) against kubesim: the replica's new claim
is made from the snapshot before any pod of the ordinal could exist — in place on the
highest ordinal (the other replicas untouched), or with the set at 0 — and a snapshot that is
missing or not ready, or an in-place restore of another ordinal, is refused before anything
changes (also when the snapshot goes away after the request)."""

from __future__ import annotations

import pytest

from jobs.models import Job, JobStatus, JobStep
from tests.jobs import test_worker
from tests.jobs.test_pg_backup import SNAPSHOT_CLASS
from tests.jobs.test_worker import finished, kill_worker_of, tick_inside, wait_until

pytestmark = pytest.mark.django_db(databases=["default", "audit"], transaction=True)

qcluster = test_worker.qcluster  # a real django-q2 cluster (fixture)
URL = "/ops/jobs/pg-rebuild"
BODY = {"namespace": "prod", "statefulset": "postgres", "target_replicas": 3}
NOT_READY = """
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshot
metadata: {name: of-nothing, namespace: prod}
spec: {source: {persistentVolumeClaimName: no-such-claim}}
"""
IN_PLACE_RESTORE_STEPS = [
    "check_target",
    "scale_down_one",
    "wait_pod_gone",
    "delete_pvc",
    "wait_pvc_gone",
    "restore_pvc",
    "scale_back",
    "wait_pod_ready",
]


@pytest.fixture
def snapshot(api, pg_cluster, drive) -> str:
    """A ready VolumeSnapshot of a replica's claim, taken by a pg-backup job."""
    pg_cluster.apply(SNAPSHOT_CLASS)
    response = api.post(
        "/ops/jobs/pg-backup", {"namespace": "prod", "statefulset": "postgres"}, format="json"
    )
    job = drive(response.json()["job_id"])
    assert job.status == JobStatus.SUCCESS
    pg_cluster.requests.clear()
    return job.result["snapshot"]


def uid(sim, resource: str, name: str) -> str | None:
    obj = sim.get(resource, "prod", name)
    return obj["metadata"]["uid"] if obj else None


def steps(job_id: str) -> list[tuple[str, str, str | None]]:
    return [
        (s.name, s.status, s.detail)
        for s in JobStep.objects.filter(job_id=job_id).order_by("step_order")
    ]


def writes(sim) -> list[tuple[str, str, str]]:
    return [(r.method, r.resource, r.name) for r in sim.requests.mutations()]


def test_an_in_place_restore_of_the_highest_ordinal_makes_its_claim_from_the_snapshot(
    api, pg_cluster, drive, snapshot
):
    others = {n: uid(pg_cluster, "pods", n) for n in ("postgres-0", "postgres-1")}
    old = uid(pg_cluster, "persistentvolumeclaims", "data-postgres-2")
    body = {**BODY, "ordinal": 2, "strategy": "in-place", "from_snapshot": snapshot}

    response = api.post(URL, body, format="json")
    job = drive(response.json()["job_id"])

    assert job.status == JobStatus.SUCCESS, steps(job.job_id)
    assert [s[0] for s in steps(job.job_id)] == IN_PLACE_RESTORE_STEPS
    claim = pg_cluster.get("persistentvolumeclaims", "prod", "data-postgres-2")
    assert claim["metadata"]["uid"] not in (None, old)
    assert claim["spec"]["dataSource"] == {
        "apiGroup": "snapshot.storage.k8s.io",
        "kind": "VolumeSnapshot",
        "name": snapshot,
    }
    assert pg_cluster.restored_from("prod", "data-postgres-2").snapshot == snapshot
    assert job.result["restored_claim_uid"] == claim["metadata"]["uid"]
    # The claim was made while the set was one down, before it was scaled back.
    assert writes(pg_cluster) == [
        ("PATCH", "statefulsets", "postgres"),
        ("DELETE", "persistentvolumeclaims", "data-postgres-2"),
        ("DELETE", "persistentvolumeclaims", "wal-postgres-2"),
        ("POST", "persistentvolumeclaims", ""),
        ("PATCH", "statefulsets", "postgres"),
    ]
    assert {n: uid(pg_cluster, "pods", n) for n in others} == others


def test_a_restore_with_the_set_at_zero(api, pg_cluster, drive, snapshot):
    body = {**BODY, "ordinal": 0, "from_snapshot": snapshot}

    job = drive(api.post(URL, body, format="json").json()["job_id"])

    assert job.status == JobStatus.SUCCESS, steps(job.job_id)
    assert [s[0] for s in steps(job.job_id)][:5] == [
        "scale_sts_to_zero",
        "wait_pods_down",
        "delete_pvc",
        "restore_pvc",
        "scale_sts_to_target",
    ]
    restored = pg_cluster.get("persistentvolumeclaims", "prod", "data-postgres-0")
    assert restored["spec"]["dataSource"]["name"] == snapshot


@pytest.mark.parametrize(
    ("overrides", "status", "code"),
    [
        ({"ordinal": 2, "strategy": "in-place", "from_snapshot": "no-such-snap"}, 404, "not_found"),
        ({"ordinal": 1, "strategy": "in-place"}, 409, "restore_needs_highest_ordinal"),
    ],
)
def test_impossible_restores_are_refused_and_change_nothing(
    api, pg_cluster, snapshot, overrides, status, code
):
    body = {**BODY, "from_snapshot": snapshot, **overrides}

    response = api.post(URL, body, format="json")

    assert (response.status_code, response.json()["code"]) == (status, code), response.content
    assert not Job.objects.filter(type="pg-rebuild").exists()
    assert writes(pg_cluster) == []
    if code == "not_found":
        assert "no-such-snap" in response.json()["detail"]


def test_a_snapshot_not_ready_is_refused(api, pg_cluster, snapshot):
    # A snapshot of a claim that does not exist never becomes ready.
    pg_cluster.apply(NOT_READY)
    body = {**BODY, "ordinal": 2, "strategy": "in-place", "from_snapshot": "of-nothing"}

    response = api.post(URL, body, format="json")

    assert (response.status_code, response.json()["code"]) == (409, "snapshot_not_ready")
    assert "of-nothing" in response.json()["detail"]
    assert writes(pg_cluster) == []


def test_a_snapshot_gone_after_the_request_keeps_the_claims(api, pg_cluster, drive, snapshot):
    old = uid(pg_cluster, "persistentvolumeclaims", "data-postgres-0")
    job_id = api.post(URL, {**BODY, "ordinal": 0, "from_snapshot": snapshot}, format="json").json()[
        "job_id"
    ]
    pg_cluster.delete("volumesnapshots", "prod", snapshot)

    job = drive(job_id)

    assert (job.status, job.error["code"]) == (JobStatus.FAILED, "not_found")
    assert steps(job_id)[2][:2] == ("delete_pvc", "failed")
    assert uid(pg_cluster, "persistentvolumeclaims", "data-postgres-0") == old


def test_a_worker_killed_while_its_claim_create_is_held_restores_once(
    api, pg_cluster, snapshot, qcluster
):
    """The restore's one creation, held by the API server while its worker is SIGKILLed:
    the job is taken over and the claim is created once, from the snapshot."""
    held = pg_cluster.faults.add(
        method="POST", path=r"/namespaces/prod/persistentvolumeclaims$", delay=1.5
    )
    body = {**BODY, "ordinal": 2, "strategy": "in-place", "from_snapshot": snapshot}
    job_id = api.post(URL, body, format="json").json()["job_id"]
    owner = wait_until(lambda: tick_inside(job_id, "restore_pvc"), 90, "restore_pvc", qcluster)
    wait_until(lambda: held.fired >= 1, 30, "the held create", qcluster)
    kill_worker_of(owner, qcluster)
    pg_cluster.faults.remove(held)

    job = wait_until(lambda: finished(job_id), 120, "the job's end after the kill", qcluster)
    assert job.status == JobStatus.SUCCESS, steps(job_id)
    assert job.steps.get(name="restore_pvc").interruptions == 1
    creates = [r for r in pg_cluster.requests.mutations() if r.method == "POST"]
    assert [(r.resource, r.namespace) for r in creates] == [("persistentvolumeclaims", "prod")]
    claim = pg_cluster.get("persistentvolumeclaims", "prod", "data-postgres-2")
    assert claim["spec"]["dataSource"]["name"] == snapshot
