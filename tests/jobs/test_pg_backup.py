"""``pg-backup`` against kubesim through the real client: a snapshot of a replica's claim
(never the primary's), ready, named in the result; a chosen ordinal; refusals that change
nothing; a failed snapshot failing the job with its message; a resumed create creating
nothing twice."""

from __future__ import annotations

import threading

import pytest
from kubernetes import client

from jobs.models import Job, JobStatus, JobStep
from ops.models import OpsLog
from tests.jobs import test_worker
from tests.jobs.test_worker import finished, kill_worker_of, tick_inside, wait_until

pytestmark = pytest.mark.django_db(databases=["default", "audit"], transaction=True)

qcluster = test_worker.qcluster  # a real django-q2 cluster (fixture)
URL = "/ops/jobs/pg-backup"
SNAPSHOT_CLASS = """
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata:
  name: csi-snapclass
  annotations: {snapshot.storage.kubernetes.io/is-default-class: "true"}
driver: hostpath.csi.k8s.io
deletionPolicy: Delete
"""


@pytest.fixture
def pg(pg_cluster):
    pg_cluster.apply(SNAPSHOT_CLASS)
    pg_cluster.requests.clear()
    return pg_cluster


def label(sim, pod: str, **labels: str) -> None:
    client.CoreV1Api(sim.api_client()).patch_namespaced_pod(
        pod, "prod", {"metadata": {"labels": labels}}
    )


def start(api, **body) -> str:
    response = api.post(
        URL, {"namespace": "prod", "statefulset": "postgres", **body}, format="json"
    )
    assert response.status_code == 202, response.content
    return response.json()["job_id"]


def snapshots(sim) -> list[dict]:
    return sim.list("volumesnapshots", "prod")


def steps(job_id: str) -> list[tuple[str, str, str | None]]:
    return [
        (s.name, s.status, s.detail)
        for s in JobStep.objects.filter(job_id=job_id).order_by("step_order")
    ]


def test_a_backup_snapshots_the_highest_ready_replica_never_the_primary(api, pg, drive):
    label(pg, "postgres-2", role="primary")
    label(pg, "postgres-1", role="replica")
    label(pg, "postgres-0", role="replica")
    pg.requests.clear()

    job_id = start(api)
    job = drive(job_id)

    assert job.status == JobStatus.SUCCESS, steps(job_id)
    assert [s[:2] for s in steps(job_id)] == [
        ("choose_source", "success"),
        ("create_snapshot", "success"),
        ("wait_snapshot_ready", "success"),
    ]
    [snap] = snapshots(pg)
    assert snap["spec"]["source"]["persistentVolumeClaimName"] == "data-postgres-1"
    assert snap["status"]["readyToUse"] is True
    assert job.result["snapshot"] == snap["metadata"]["name"]
    assert job.result["snapshot_uid"] == snap["metadata"]["uid"]
    assert job.result["source_claim"] == "data-postgres-1"
    assert job.result["restore_size"] == snap["status"]["restoreSize"]
    assert snap["metadata"]["annotations"]["apiops.dev/job-id"] == job_id
    rows = OpsLog.objects.using("audit").filter(job_id=job_id).order_by("id")
    assert [(r.action, r.resource_kind, r.status) for r in rows] == [
        ("pg-backup", "statefulset", "success"),
        ("create", "volumesnapshot", "success"),
    ]
    assert [(r.method, r.resource) for r in pg.requests.mutations()] == [
        ("POST", "volumesnapshots")
    ]


def test_a_chosen_ordinal_is_snapshotted_unless_it_is_the_primary(api, pg, drive):
    label(pg, "postgres-0", role="primary")
    response = api.post(
        URL, {"namespace": "prod", "statefulset": "postgres", "ordinal": 0}, format="json"
    )
    assert (response.status_code, response.json()["code"]) == (409, "primary_guard")

    job = drive(start(api, ordinal=2))

    assert job.status == JobStatus.SUCCESS
    assert job.result["source_claim"] == "data-postgres-2"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"statefulset": "postgres", "ordinal": "1"}, 400),
        ({"statefulset": "postgres", "ordinal": 9}, 409),
        ({"statefulset": "no-such-pg"}, 404),
        ({"statefulset": "stateless"}, 400),
        ({"statefulset": "postgres", "extra": True}, 400),
    ],
)
def test_refusals_change_nothing(api, pg, body, status):
    response = api.post(URL, {"namespace": "prod", **body}, format="json")
    assert response.status_code == status, response.content
    assert not Job.objects.exists()
    assert list(pg.requests.mutations()) == []


def test_a_set_whose_every_pod_is_primary_has_no_source(api, pg):
    for i in range(3):
        label(pg, f"postgres-{i}", role="primary")
    response = api.post(URL, {"namespace": "prod", "statefulset": "postgres"}, format="json")
    assert (response.status_code, response.json()["code"]) == (409, "no_replica")


def test_a_failed_snapshot_fails_the_job_with_its_message(api, pg, drive):
    job_id = start(api)
    # The snapshot this job will create: the driver fails to cut it.
    name = f"data-postgres-2-{job_id.rsplit('_', 1)[1]}"
    pg.fail_snapshot("prod", name, message="rpc error: code = Internal desc = disk on fire")

    job = drive(job_id)

    assert (job.status, job.error["code"]) == (JobStatus.FAILED, "snapshot_failed")
    assert "disk on fire" in job.error["detail"]


def test_a_create_resumed_after_it_landed_creates_nothing_more(api, pg, drive):
    job_id = start(api)
    name = f"data-postgres-2-{job_id.rsplit('_', 1)[1]}"
    # What a worker killed right after its create leaves: the first step done, the name
    # saved, the snapshot made.
    JobStep.objects.filter(job_id=job_id, name="choose_source").update(
        status="success", state={"source_pod": "postgres-2", "source_claim": "data-postgres-2"}
    )
    client.CustomObjectsApi(pg.api_client()).create_namespaced_custom_object(
        "snapshot.storage.k8s.io",
        "v1",
        "prod",
        "volumesnapshots",
        {
            "apiVersion": "snapshot.storage.k8s.io/v1",
            "kind": "VolumeSnapshot",
            "metadata": {"name": name, "annotations": {"apiops.dev/job-id": job_id}},
            "spec": {"source": {"persistentVolumeClaimName": "data-postgres-2"}},
        },
    )
    JobStep.objects.filter(job_id=job_id, name="create_snapshot").update(
        state={"snapshot": name}, status="running", active_tick="dead-worker:1:0"
    )
    pg.requests.clear()

    assert drive(job_id).status == JobStatus.SUCCESS, steps(job_id)

    assert [r.method for r in pg.requests.mutations()] == []  # no second create
    assert len(snapshots(pg)) == 1


@pytest.mark.parametrize(
    ("step", "fault"),
    [
        ("choose_source", {"method": "GET", "path": r"/persistentvolumeclaims/data-postgres-2$"}),
        ("create_snapshot", {"method": "POST", "path": r"/volumesnapshots$"}),
        ("wait_snapshot_ready", {"method": "GET", "path": r"/volumesnapshots/data-postgres-2-"}),
    ],
)
def test_a_worker_killed_in_each_step_is_replaced_without_a_second_snapshot(
    api, pg, qcluster, step, fault
):
    """A real worker SIGKILLed in the step (the create held by the API server, or a read of
    the snapshot held): the job is taken over and ends with exactly one snapshot created."""
    held = pg.faults.add(delay=1.5, **fault)  # the request never makes these calls
    job_id = start(api)
    owner = wait_until(lambda: tick_inside(job_id, step), 60, f"a tick in {step}", qcluster)
    wait_until(lambda: held.fired >= 1, 60, f"the held request of {step}", qcluster)
    kill_worker_of(owner, qcluster)
    pg.faults.remove(held)

    job = wait_until(lambda: finished(job_id), 120, "the job's end after the kill", qcluster)
    assert job.status == JobStatus.SUCCESS, steps(job_id)
    assert job.steps.get(name=step).interruptions == 1
    assert [(r.method, r.resource) for r in pg.requests.mutations()].count(
        ("POST", "volumesnapshots")
    ) == 1
    assert len(snapshots(pg)) == 1
    assert not OpsLog.objects.using("audit").filter(job_id=job_id, status="pending").exists()


def test_a_source_that_becomes_primary_before_the_create_is_not_snapshotted(api, pg, drive):
    job_id = start(api)
    # choose_source picks postgres-2 (reads its claim); it fails over before the create.
    held = pg.faults.add(
        method="GET", path=r"/persistentvolumeclaims/data-postgres-2$", delay=1.0, times=1
    )
    done = threading.Event()

    def fail_over() -> None:
        pg.wait_for(lambda: held.fired >= 1, timeout=30)
        label(pg, "postgres-2", role="primary")
        done.set()

    threading.Thread(target=fail_over, daemon=True).start()
    job = drive(job_id)

    assert done.is_set()
    assert (job.status, job.error["code"]) == (JobStatus.FAILED, "primary_guard")
    assert steps(job_id)[1][:2] == ("create_snapshot", "failed")
    assert snapshots(pg) == []
