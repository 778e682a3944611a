"""``rollout-restart`` against kubesim through the real client: a Deployment and a StatefulSet
restarted with one template write each, every pod replaced, kubectl's verdict in the detail;
refusals that change nothing (kind, missing object, OnDelete, partition, busy target,
namespace); a stuck rollout failing with kubectl's words; a resumed restart writing nothing
twice; and a real worker SIGKILLed in each step."""

from __future__ import annotations

import pytest
from django.utils import timezone
from kubernetes import client

from jobs.models import Job, JobStatus, JobStep
from ops import k8s
from ops.models import OpsLog
from tests.jobs import test_worker
from tests.jobs.test_worker import finished, kill_worker_of, tick_inside, wait_until

pytestmark = pytest.mark.django_db(databases=["default", "audit"], transaction=True)
qcluster = test_worker.qcluster  # a real django-q2 cluster (fixture)

URL = "/ops/jobs/rollout-restart"
WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: prod}
spec:
  replicas: 3
  progressDeadlineSeconds: 600
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: web, image: nginx}]
"""
ON_DELETE = """
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: manual, namespace: prod}
spec:
  replicas: 1
  serviceName: manual
  updateStrategy: {type: OnDelete}
  selector: {matchLabels: {app: manual}}
  template:
    metadata: {labels: {app: manual}}
    spec: {containers: [{name: c, image: nginx}]}
"""
PARTITIONED = """
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: parted, namespace: prod}
spec:
  replicas: 2
  serviceName: parted
  updateStrategy: {type: RollingUpdate, rollingUpdate: {partition: 1}}
  selector: {matchLabels: {app: parted}}
  template:
    metadata: {labels: {app: parted}}
    spec: {containers: [{name: c, image: nginx}]}
"""


@pytest.fixture
def web(pg_cluster):
    pg_cluster.apply(WEB)
    pg_cluster.wait_for(lambda: len(ready_pods(pg_cluster, "app=web")) == 3, timeout=20)
    pg_cluster.requests.clear()
    return pg_cluster


def ready_pods(sim, selector: str) -> list[dict]:
    return [
        p
        for p in sim.list("pods", "prod", selector)
        if "deletionTimestamp" not in p["metadata"]
        and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in (p.get("status") or {}).get("conditions") or []
        )
    ]


def uids(sim, selector: str) -> set[str]:
    return {p["metadata"]["uid"] for p in sim.list("pods", "prod", selector)}


def template_writes(sim, resource: str, name: str) -> int:
    return sum(
        1
        for r in sim.requests.mutations()
        if r.resource == resource and r.name == name and not r.subresource
    )


def start(api, **body) -> str:
    response = api.post(URL, {"namespace": "prod", **body}, format="json")
    assert response.status_code == 202, response.content
    return response.json()["job_id"]


def steps(job_id: str) -> list[tuple[str, str, str | None]]:
    return [
        (s.name, s.status, s.detail)
        for s in JobStep.objects.filter(job_id=job_id).order_by("step_order")
    ]


@pytest.mark.parametrize(
    ("kind", "name", "selector", "resource", "done"),
    [
        ("deployment", "web", "app=web", "deployments", 'deployment "web" successfully rolled out'),
        (
            "statefulset",
            "postgres",
            "app=postgres",
            "statefulsets",
            "partitioned roll out complete: 3 new pods have been updated",
        ),
    ],
)
def test_a_restart_replaces_every_pod_with_one_template_write(
    api, web, drive, kind, name, selector, resource, done
):
    before = uids(web, selector)

    job_id = start(api, kind=kind, name=name)
    job = drive(job_id)

    assert job.status == JobStatus.SUCCESS, steps(job_id)
    assert [s[:2] for s in steps(job_id)] == [("restart", "success"), ("wait_rollout", "success")]
    assert steps(job_id)[1][2] == f"{done}; all 3 pods replaced"
    after = {p["metadata"]["uid"] for p in ready_pods(web, selector)}
    assert len(after) == 3
    assert not after & before
    obj = web.get(resource, "prod", name)
    stamp = obj["spec"]["template"]["metadata"]["annotations"][k8s.RESTARTED_AT]
    assert job.result["restarted_at"] == stamp
    assert set(job.result["old_pod_uids"]) == before
    assert set(job.result["new_pod_uids"]) == after
    assert template_writes(web, resource, name) == 1
    rows = OpsLog.objects.using("audit").filter(job_id=job_id).order_by("id")
    assert [(r.action, r.resource_kind, r.resource_name, r.status) for r in rows] == [
        ("rollout-restart", kind, name, "success"),
        ("restart", kind, name, "success"),
    ]
    # The write carried the resourceVersion of the read its step decided on.
    assert rows[1].request_body["preconditions"]["resourceVersion"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"kind": "daemonset", "name": "web"}, 400, "invalid"),
        ({"kind": "deployment"}, 400, "invalid"),
        ({"kind": "deployment", "name": "web", "extra": 1}, 400, "invalid"),
        ({"kind": "deployment", "name": "no-such-web"}, 404, "not_found"),
        ({"kind": "statefulset", "name": "manual"}, 409, "rollout_refused"),
        ({"kind": "statefulset", "name": "parted"}, 409, "rollout_refused"),
        ({"namespace": "kube-system", "kind": "deployment", "name": "coredns"}, 403, None),
    ],
)
def test_refusals_change_nothing_and_are_audited(api, web, body, status, code):
    web.apply(ON_DELETE)
    web.apply(PARTITIONED)
    web.requests.clear()

    response = api.post(URL, {"namespace": "prod", **body}, format="json")

    assert response.status_code == status, response.content
    if code:
        assert response.json()["code"] == code
    assert not Job.objects.exists()
    assert list(web.requests.mutations()) == []
    row = OpsLog.objects.using("audit").order_by("-id").first()
    assert (row.action, row.http_status) == ("rollout-restart", status)


def test_a_second_restart_of_the_same_workload_is_busy(api, web):
    start(api, kind="deployment", name="web")
    response = api.post(
        URL, {"namespace": "prod", "kind": "deployment", "name": "web"}, format="json"
    )
    assert (response.status_code, response.json()["code"]) == (409, "job_target_busy")
    # A scale of the restarting Deployment is refused while the job holds it.
    response = api.post(
        "/ops/namespaces/prod/deployments/web/scale", {"replicas": 1}, format="json"
    )
    assert (response.status_code, response.json()["code"]) == (409, "job_target_busy")


def test_a_rollout_past_its_progress_deadline_fails_with_kubectls_words(api, web, drive):
    web.apply(WEB.replace("progressDeadlineSeconds: 600", "progressDeadlineSeconds: 1"))
    web.pods_never_ready("prod", "app=web")  # the new pods never become Ready
    job_id = start(api, kind="deployment", name="web")

    job = drive(job_id)

    assert job.status == JobStatus.FAILED
    assert job.error["code"] == "progress_deadline_exceeded"
    assert 'deployment "web" exceeded its progress deadline' in job.error["detail"]


def test_a_pod_that_never_becomes_ready_times_out_naming_it(api, pg_cluster, drive, fast_jobs):
    # Room for the controller to have recreated postgres-2 before the timeout names it, also
    # on a machine busy with parallel test workers.
    fast_jobs(JOB_WAIT_TIMEOUT=4.0, JOB_POLL_INTERVAL=0.2)
    job_id = start(api, kind="statefulset", name="postgres")
    pg_cluster.pod_never_ready("prod", "postgres-2")  # the first one the rollout replaces

    job = drive(job_id)

    assert (job.status, job.error["code"]) == (JobStatus.FAILED, "timeout")
    assert job.error["detail"].endswith("; not ready: postgres-2 (Running)")


def test_a_restart_resumed_after_its_write_landed_writes_nothing_more(api, web, drive):
    """What a worker killed right after the PATCH leaves: the value saved, the annotation
    set, the audit row pending. The resumed step finds its own value and goes on."""
    job_id = start(api, kind="deployment", name="web")
    stamp = "2026-01-02T03:04:05Z"
    # Read before the write, as the step does: after it, the controller may already have
    # created a new pod, which would then count as an old one never going away.
    old_pods = sorted(uids(web, "app=web"))
    k8s.workload_restart(kind="deployment", namespace="prod", name="web", restarted_at=stamp)
    JobStep.objects.filter(job_id=job_id, name="restart").update(
        status="running",
        active_tick="dead-worker:1:0",
        attempts=1,
        started_at=timezone.now(),
        state={"restarted_at": stamp, "old_pod_uids": old_pods},
    )
    row = OpsLog.objects.using("audit").create(
        actor="bootstrap",
        action="restart",
        resource_kind="deployment",
        namespace="prod",
        resource_name="web",
        request_body={"restartedAt": stamp},
        status="pending",
        job_id=job_id,
        origin="job",
    )

    assert drive(job_id).status == JobStatus.SUCCESS, steps(job_id)

    assert template_writes(web, "deployments", "web") == 1  # ours above, none from the job
    row.refresh_from_db(using="audit")
    assert (row.status, row.code) == ("success", "observed_applied")


@pytest.mark.parametrize(
    ("step", "fault"),
    [
        ("restart", {"method": "PATCH", "path": r"/deployments/web$", "times": 1}),
        ("wait_rollout", {"method": "GET", "path": r"/deployments/web$", "times": 1}),
    ],
)
def test_a_worker_killed_in_each_step_is_replaced_without_a_second_write(
    api, web, qcluster, step, fault
):
    before = uids(web, "app=web")
    if step == "wait_rollout":
        # Every read of the Deployment from now on is slow: a tick in the step stays there.
        job_id = start(api, kind="deployment", name="web")
        slow = web.faults.add(delay=1.0, method=fault["method"], path=fault["path"])
        owner = wait_until(lambda: tick_inside(job_id, step), 60, f"a tick in {step}", qcluster)
        wait_until(lambda: tick_inside(job_id, step) == owner, 5, "the tick still there", qcluster)
    else:
        delayed = web.faults.add(delay=1.5, **fault)
        job_id = start(api, kind="deployment", name="web")
        wait_until(lambda: delayed.fired == 1, 60, "the restart PATCH", qcluster)
        owner = tick_inside(job_id, step)
    kill_worker_of(owner, qcluster)
    if step == "wait_rollout":
        web.faults.remove(slow)

    job = wait_until(lambda: finished(job_id), 120, "the job's end after the kill", qcluster)
    assert job.status == JobStatus.SUCCESS, steps(job_id)
    assert job.steps.get(name=step).interruptions == 1
    assert template_writes(web, "deployments", "web") == 1
    assert not {p["metadata"]["uid"] for p in ready_pods(web, "app=web")} & before
    assert not OpsLog.objects.using("audit").filter(job_id=job_id, status="pending").exists()


def test_a_workload_switched_to_on_delete_after_the_request_is_not_restarted(
    api, pg_cluster, drive
):
    job_id = start(api, kind="statefulset", name="postgres")
    client.AppsV1Api(pg_cluster.api_client()).patch_namespaced_stateful_set(
        "postgres",
        "prod",
        {"spec": {"updateStrategy": {"type": "OnDelete", "rollingUpdate": None}}},
    )

    job = drive(job_id)

    assert (job.status, job.error["code"]) == (JobStatus.FAILED, "rollout_refused")
    assert not OpsLog.objects.using("audit").filter(job_id=job_id, action="restart").exists()
    sts = pg_cluster.get("statefulsets", "prod", "postgres")
    assert k8s.RESTARTED_AT not in (sts["spec"]["template"]["metadata"].get("annotations") or {})


def test_a_restart_sent_late_with_the_version_it_read_changes_nothing(api, web, drive):
    """What a killed worker's restart finds when it lands after someone changed the
    Deployment: refused by the API server, the template left as it is."""
    read_then = k8s.workload_read(kind="deployment", namespace="prod", name="web")
    k8s.scale_patch(kind="deployment", namespace="prod", name="web", replicas=2)

    with pytest.raises(k8s.K8sConflict):
        k8s.workload_restart(
            kind="deployment",
            namespace="prod",
            name="web",
            restarted_at="2026-01-02T03:04:05Z",
            resource_version=read_then.resource_version,
        )
    dep = web.get("deployments", "prod", "web")
    assert k8s.RESTARTED_AT not in (dep["spec"]["template"]["metadata"].get("annotations") or {})
