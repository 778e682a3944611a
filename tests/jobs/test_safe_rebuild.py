"""The safe rebuild (SPEC § "Safe PostgreSQL rebuild") against kubesim through the real
client, ticks delivered in-process:

- every refusal code at the request (409, nothing sent, no job, one audit row with the code);
- each primary signal alone, signals in disagreement, no signal (allowed, said so);
- the cluster changing between acceptance and the destructive call (the target becomes
  primary, a pod comes back, an operator takes the set over): the step refuses with the code,
  nothing is deleted;
- the retry hazard: a rebuild failed at delete_pvc, the set scaled back up, then retried —
  refused 409 pods_not_down, the claim under the running pod untouched;
- the in-place rebuild watched at every change: the other replicas stay Ready and untouched,
  the claim is never deleted while a pod other than the doomed one uses it;
- a late scale from a killed worker cannot land; a resumed step closes the interrupted
  attempt's pending audit row with what it observed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from kubernetes import client

from jobs.models import Job, JobStatus, JobStep
from jobs.runner import run_tick
from ops import k8s, services
from ops.actors import Actor
from ops.errors import ObjectConflict
from ops.models import OpsLog

pytestmark = pytest.mark.django_db(databases=["default", "audit"], transaction=True)

URL = "/ops/jobs/pg-rebuild"
BODY = {"namespace": "prod", "statefulset": "postgres", "ordinal": 1, "target_replicas": 3}
IN_PLACE = {**BODY, "strategy": "in-place"}
IN_PLACE_STEPS = ["check_target", "delete_pvc", "delete_pod", "wait_pvc_gone", "wait_pod_ready"]

LEADER_CONFIGMAP = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: postgres-leader
  namespace: prod
  annotations: {{leader: {leader}, ttl: "30"}}
"""
LEADER_ENDPOINTS = """
apiVersion: v1
kind: Endpoints
metadata:
  name: postgres
  namespace: prod
  annotations: {{leader: {leader}}}
"""


def core(sim) -> client.CoreV1Api:
    return client.CoreV1Api(sim.api_client())


def label(sim, pod: str, **labels: str | None) -> None:
    """Set (or with None remove) labels on a pod, as `kubectl label --overwrite` does."""
    core(sim).patch_namespaced_pod(pod, "prod", {"metadata": {"labels": labels}})


def label_all(sim, **labels: str) -> None:
    for i in range(3):
        label(sim, f"postgres-{i}", **labels)


def uid(sim, resource: str, name: str) -> str | None:
    obj = sim.get(resource, "prod", name)
    return obj["metadata"]["uid"] if obj else None


def fingerprint(sim) -> list[tuple]:
    """What a refusal must leave as it was: replicas and generation, pods and claims."""
    sts = sim.get("statefulsets", "prod", "postgres")
    objs = sim.list("pods", "prod") + sim.list("persistentvolumeclaims", "prod")
    return [
        (sts["spec"]["replicas"], sts["metadata"]["generation"]),
        *sorted(
            (
                o["kind"],
                o["metadata"]["name"],
                o["metadata"]["uid"],
                "deletionTimestamp" in o["metadata"],
            )
            for o in objs
        ),
    ]


def destructive(sim) -> list[tuple[str, str, str]]:
    """The scales and deletes kubesim received (labelling by the tests is not one)."""
    return [
        (r.method, r.resource, r.name)
        for r in sim.requests.mutations()
        if r.method == "DELETE" or r.subresource == "scale"
    ]


def steps(job_id: str) -> list[tuple[str, str, str | None]]:
    return [
        (s.name, s.status, s.detail)
        for s in JobStep.objects.filter(job_id=job_id).order_by("step_order")
    ]


def refused(api, body: dict, code: str) -> dict:
    """POST the body; assert 409 with ``code``, no job, one audit row saying so."""
    jobs_before = Job.objects.count()
    response = api.post(URL, body, format="json")
    assert response.status_code == 409, response.content
    answer = response.json()
    assert answer["code"] == code, answer
    assert answer["detail"]
    assert Job.objects.count() == jobs_before
    row = OpsLog.objects.using("audit").order_by("-id").first()
    assert (row.action, row.status, row.code, row.http_status) == ("pg-rebuild", "error", code, 409)
    return answer


def start(api, body: dict) -> str:
    response = api.post(URL, body, format="json")
    assert response.status_code == 202, response.content
    return response.json()["job_id"]


def during_nth_request(sim, method: str, path: str, nth: int, change: Callable[[], None]):
    """Hold the ``nth`` matching request for a moment and make ``change`` while it is held,
    so the change lands between a step's earlier reads and what that request starts.

    Returns a function that waits for the change to have been made (call it after the job).
    """
    rule = sim.faults.add(method=method, path=path, delay=1.5)
    made = threading.Event()
    failed: list[BaseException] = []

    def watch() -> None:
        try:
            sim.wait_for(lambda: rule.fired >= nth, timeout=60)
            change()
        except BaseException as exc:  # reported by done() in the test's thread
            failed.append(exc)
        finally:
            sim.faults.remove(rule)
            made.set()

    threading.Thread(target=watch, daemon=True).start()

    def done() -> None:
        assert made.wait(60), "the change was never made"
        assert not failed, failed

    return done


# --- refusals at the request ------------------------------------------------------------------


SIGNALS = {
    "patroni role=primary": lambda sim: label(sim, "postgres-1", role="primary"),
    "patroni role=master": lambda sim: label(sim, "postgres-1", role="master"),
    "spilo-role=master": lambda sim: label(sim, "postgres-1", **{"spilo-role": "master"}),
    "cnpg instanceRole=primary": lambda sim: label(
        sim, "postgres-1", **{"cnpg.io/instanceRole": "primary"}
    ),
    "leader ConfigMap": lambda sim: (
        label_all(sim, **{"cluster-name": "postgres"}),
        sim.apply(LEADER_CONFIGMAP.format(leader="postgres-1")),
    ),
    "leader Endpoints": lambda sim: (
        label_all(sim, **{"cluster-name": "postgres"}),
        sim.apply(LEADER_ENDPOINTS.format(leader="postgres-1")),
    ),
}


@pytest.mark.parametrize("signal", SIGNALS)
@pytest.mark.parametrize("strategy", ["in-place", "scale-to-zero"])
def test_each_primary_signal_alone_refuses_rebuilding_that_pod(api, pg_cluster, signal, strategy):
    SIGNALS[signal](pg_cluster)
    before = fingerprint(pg_cluster)
    pg_cluster.requests.clear()

    answer = refused(api, {**BODY, "strategy": strategy, "allow_outage": True}, "primary_guard")

    assert "postgres-1 is primary" in answer["detail"]
    assert destructive(pg_cluster) == []
    assert fingerprint(pg_cluster) == before


def test_signals_in_disagreement_count_as_primary(api, pg_cluster):
    label_all(pg_cluster, **{"cluster-name": "postgres"})
    label(pg_cluster, "postgres-1", role="replica")
    pg_cluster.apply(LEADER_CONFIGMAP.format(leader="postgres-1"))

    answer = refused(api, IN_PLACE, "primary_guard")

    assert "postgres-1 is may be primary" in answer["detail"]
    assert "label role=replica" in answer["detail"]
    assert "ConfigMap postgres-leader leader=postgres-1" in answer["detail"]


def test_two_leader_records_naming_different_pods_guard_both(api, pg_cluster):
    label_all(pg_cluster, **{"cluster-name": "postgres"})
    pg_cluster.apply(LEADER_CONFIGMAP.format(leader="postgres-1"))
    pg_cluster.apply(LEADER_ENDPOINTS.format(leader="postgres-2"))

    refused(api, IN_PLACE, "primary_guard")
    refused(api, {**IN_PLACE, "ordinal": 2}, "primary_guard")
    assert start(api, {**IN_PLACE, "ordinal": 0})  # named by neither: a replica


def test_a_replica_by_every_signal_is_rebuilt_and_the_detail_says_why(api, pg_cluster, drive):
    label_all(pg_cluster, **{"cluster-name": "postgres"}, role="replica")
    label(pg_cluster, "postgres-0", role="primary")
    pg_cluster.apply(LEADER_CONFIGMAP.format(leader="postgres-0"))

    job_id = start(api, IN_PLACE)
    drive(job_id)

    name, status, detail = steps(job_id)[0]
    assert (name, status) == ("check_target", "success")
    assert detail.startswith(
        "role of postgres-1: replica (label role=replica; ConfigMap postgres-leader "
        "leader=postgres-0)"
    )


def test_with_no_signal_the_role_is_unknown_allowed_and_said_so(api, pg_cluster, drive):
    job_id = start(api, IN_PLACE)
    assert drive(job_id).status == JobStatus.SUCCESS, steps(job_id)
    assert "role of postgres-1: unknown" in steps(job_id)[0][2]


def test_scale_to_zero_on_a_set_holding_a_primary_needs_allow_outage(api, pg_cluster):
    label(pg_cluster, "postgres-0", role="primary")
    before = fingerprint(pg_cluster)

    answer = refused(api, BODY, "primary_in_set")

    assert "postgres-0" in answer["detail"]
    assert "in-place" in answer["detail"]
    assert fingerprint(pg_cluster) == before
    assert start(api, {**BODY, "allow_outage": True})


def test_the_leader_record_alone_makes_the_set_hold_a_primary(api, pg_cluster):
    """Even with no pod labelled, the Patroni leader key names the primary."""
    label_all(pg_cluster, **{"cluster-name": "postgres"})
    pg_cluster.apply(LEADER_CONFIGMAP.format(leader="postgres-0"))
    refused(api, BODY, "primary_in_set")


OWNED = """
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: owned
  namespace: prod
  ownerReferences:
  - {apiVersion: postgresql.cnpg.io/v1, kind: Cluster, name: main, controller: true,
     uid: 6b1f0c52-1111-4a5e-9f3a-2f2c1d0e0001}
spec:
  replicas: 2
  serviceName: owned
  selector: {matchLabels: {app: owned}}
  template:
    metadata: {labels: {app: owned}}
    spec: {containers: [{name: postgres, image: postgres:16}]}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
"""


@pytest.mark.parametrize("strategy", ["in-place", "scale-to-zero"])
def test_an_operator_owned_set_is_refused(api, pg_cluster, strategy):
    pg_cluster.apply(OWNED)
    body = {**BODY, "statefulset": "owned", "ordinal": 1, "target_replicas": 2}
    answer = refused(api, {**body, "strategy": strategy}, "operator_owned")
    assert "Cluster postgresql.cnpg.io/v1 main" in answer["detail"]
    assert destructive(pg_cluster) == []


@pytest.mark.parametrize("strategy", ["in-place", "scale-to-zero"])
def test_an_ordinal_the_set_does_not_have_is_refused(api, pg_cluster, strategy):
    before = fingerprint(pg_cluster)
    body = {**BODY, "ordinal": 3, "target_replicas": 4, "strategy": strategy}
    answer = refused(api, {**body, "allow_outage": True}, "no_such_replica")
    assert "has 3 replicas" in answer["detail"]
    assert fingerprint(pg_cluster) == before


def test_a_target_below_the_replicas_is_refused_unless_allowed(api, pg_cluster, drive):
    answer = refused(api, {**BODY, "target_replicas": 2}, "would_scale_down")
    assert "had 3 replicas" in answer["detail"]

    job_id = start(api, {**BODY, "target_replicas": 2, "allow_scale_down": True})
    assert drive(job_id).status == JobStatus.SUCCESS, steps(job_id)
    assert pg_cluster.get("statefulsets", "prod", "postgres")["spec"]["replicas"] == 2


def test_in_place_never_scales(api, pg_cluster):
    refused(api, {**IN_PLACE, "target_replicas": 4}, "replicas_mismatch")


@pytest.mark.parametrize(
    ("field", "value"),
    [("strategy", "yolo"), ("strategy", 1), ("allow_outage", "yes"), ("allow_scale_down", 1)],
)
def test_bad_options_are_400_and_change_nothing(api, pg_cluster, field, value):
    response = api.post(URL, {**BODY, field: value}, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["errors"]
    assert Job.objects.count() == 0
    assert destructive(pg_cluster) == []


# --- the cluster changes between acceptance and the destructive call -------------------------

PVC_0 = r"/persistentvolumeclaims/data-postgres-0$"
PVC_1 = r"/persistentvolumeclaims/data-postgres-1$"


def test_a_target_that_becomes_primary_after_the_scale_down_keeps_its_claims(
    api, pg_cluster, drive
):
    # The Patroni scope is on the pod template: the leader record speaks with every pod down.
    label_all(pg_cluster, **{"cluster-name": "postgres"})
    claims = {n: uid(pg_cluster, "pvc", n) for n in ("data-postgres-1", "wal-postgres-1")}
    job_id = start(api, {**BODY, "allow_outage": True})
    # delete_pvc's first read of the claim: the leader moves to postgres-1 meanwhile.
    done = during_nth_request(
        pg_cluster,
        "GET",
        PVC_1,
        1,
        lambda: pg_cluster.apply(LEADER_CONFIGMAP.format(leader="postgres-1")),
    )

    job = drive(job_id)
    done()

    assert job.status == JobStatus.FAILED
    assert job.error["code"] == "primary_guard"
    name, status, detail = steps(job_id)[2]
    assert (name, status) == ("delete_pvc", "failed")
    assert "ConfigMap postgres-leader leader=postgres-1" in detail
    assert ("DELETE", "persistentvolumeclaims", "data-postgres-1") not in destructive(pg_cluster)
    assert {n: uid(pg_cluster, "pvc", n) for n in claims} == claims


def test_a_pod_that_comes_back_before_the_claim_delete_stops_the_job(api, pg_cluster, drive):
    claim = uid(pg_cluster, "pvc", "data-postgres-1")
    job_id = start(api, BODY)

    def scale_back_up() -> None:
        k8s.scale_patch(kind="statefulset", namespace="prod", name="postgres", replicas=3)
        pg_cluster.wait_for(lambda: pg_cluster.list("pods", "prod", "app=postgres"), timeout=1)

    done = during_nth_request(pg_cluster, "GET", PVC_1, 1, scale_back_up)
    job = drive(job_id)
    done()

    assert (job.status, job.error["code"]) == (JobStatus.FAILED, "pods_not_down")
    assert steps(job_id)[2][:2] == ("delete_pvc", "failed")
    assert not [m for m in destructive(pg_cluster) if m[0] == "DELETE"]
    assert uid(pg_cluster, "pvc", "data-postgres-1") == claim


def test_a_target_that_becomes_primary_after_the_check_is_not_touched_in_place(
    api, pg_cluster, drive
):
    before = fingerprint(pg_cluster)
    job_id = start(api, IN_PLACE)
    # check_target reads the claim once; delete_pvc's read is the second.
    done = during_nth_request(
        pg_cluster, "GET", PVC_1, 2, lambda: label(pg_cluster, "postgres-1", role="primary")
    )
    job = drive(job_id)
    done()

    assert (job.status, job.error["code"]) == (JobStatus.FAILED, "primary_guard")
    assert [s[:2] for s in steps(job_id)] == [
        ("check_target", "success"),
        ("delete_pvc", "failed"),
        ("delete_pod", "pending"),
        ("wait_pvc_gone", "pending"),
        ("wait_pod_ready", "pending"),
    ]
    assert destructive(pg_cluster) == []
    assert fingerprint(pg_cluster) == before


def test_a_primary_appearing_after_the_request_stops_the_scale_down(api, pg_cluster, drive):
    before = fingerprint(pg_cluster)
    job_id = start(api, BODY)
    # The first step's read of the set (the request's own read came before this rule).
    done = during_nth_request(
        pg_cluster,
        "GET",
        r"/statefulsets/postgres$",
        1,
        lambda: label(pg_cluster, "postgres-0", role="primary"),
    )
    job = drive(job_id)
    done()

    assert (job.status, job.error["code"]) == (JobStatus.FAILED, "primary_in_set")
    assert steps(job_id)[0][:2] == ("scale_sts_to_zero", "failed")
    assert destructive(pg_cluster) == []
    assert fingerprint(pg_cluster) == before


def test_a_set_scaled_below_the_ordinal_after_the_check_is_not_touched(api, pg_cluster, drive):
    job_id = start(api, {**IN_PLACE, "ordinal": 2})
    claim = uid(pg_cluster, "pvc", "data-postgres-2")
    done = during_nth_request(
        pg_cluster,
        "GET",
        r"/persistentvolumeclaims/data-postgres-2$",
        2,
        lambda: k8s.scale_patch(kind="statefulset", namespace="prod", name="postgres", replicas=2),
    )
    job = drive(job_id)
    done()

    assert (job.status, job.error["code"]) == (JobStatus.FAILED, "no_such_replica")
    assert "has 2 replicas" in job.error["detail"]
    assert not [m for m in destructive(pg_cluster) if m[0] == "DELETE"]
    assert uid(pg_cluster, "pvc", "data-postgres-2") == claim


def test_an_operator_taking_the_set_over_after_the_check_stops_the_job(api, pg_cluster, drive):
    job_id = start(api, IN_PLACE)
    owner = {
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "name": "main",
        "uid": "6b1f0c52-1111-4a5e-9f3a-2f2c1d0e0002",
        "controller": True,
    }
    apps = client.AppsV1Api(pg_cluster.api_client())
    done = during_nth_request(
        pg_cluster,
        "GET",
        PVC_1,
        2,
        lambda: apps.patch_namespaced_stateful_set(
            "postgres", "prod", {"metadata": {"ownerReferences": [owner]}}
        ),
    )
    job = drive(job_id)
    done()

    assert (job.status, job.error["code"]) == (JobStatus.FAILED, "operator_owned")
    assert destructive(pg_cluster) == []


# --- the retry hazard ---------------------------------------------------------------------------


def test_a_failed_rebuild_retried_after_the_set_is_back_up_is_refused_pods_not_down(
    api, pg_cluster, drive
):
    claim = uid(pg_cluster, "pvc", "data-postgres-1")
    pg_cluster.faults.add(method="DELETE", path=PVC_1, status=403, times=1)
    job_id = start(api, BODY)
    job = drive(job_id)
    assert (job.status, job.error["code"]) == (JobStatus.FAILED, "kubernetes_forbidden")
    assert steps(job_id)[2][:2] == ("delete_pvc", "failed")
    # The operator brings the database back; postgres-1 runs on its old claim again.
    api.post("/ops/namespaces/prod/statefulsets/postgres/scale", {"replicas": 3}, format="json")
    pg_cluster.wait_for(
        lambda: (
            pg_cluster.get("statefulsets", "prod", "postgres")["status"].get("readyReplicas") == 3
        ),
        timeout=20,
    )
    pod = uid(pg_cluster, "pods", "postgres-1")
    pg_cluster.requests.clear()

    response = api.post(f"/ops/jobs/{job_id}/retry")

    assert response.status_code == 409, response.content
    assert response.json()["code"] == "pods_not_down"
    assert "postgres-1" in response.json()["detail"]
    assert Job.objects.get(job_id=job_id).status == JobStatus.FAILED
    row = OpsLog.objects.using("audit").order_by("-id").first()
    assert (row.action, row.status, row.code) == ("retry", "error", "pods_not_down")
    assert destructive(pg_cluster) == []
    assert uid(pg_cluster, "pvc", "data-postgres-1") == claim
    assert uid(pg_cluster, "pods", "postgres-1") == pod


def test_a_cancelled_rebuild_retried_rechecks_its_guards(api, pg_cluster, drive, fast_jobs):
    fast_jobs(JOB_POLL_INTERVAL=0.05)
    pg_cluster.controllers.pause()
    job_id = start(api, BODY)
    run_tick(job_id, 0)  # scaled down; waiting for the pods
    assert api.post(f"/ops/jobs/{job_id}/cancel").status_code == 202
    assert drive(job_id).status == JobStatus.CANCELLED
    # Meanwhile postgres-1 became the primary: the retry is refused before anything.
    label(pg_cluster, "postgres-1", role="primary")

    response = api.post(f"/ops/jobs/{job_id}/retry")

    assert (response.status_code, response.json()["code"]) == (409, "primary_guard")
    pg_cluster.controllers.resume()
    label(pg_cluster, "postgres-1", role=None)
    response = api.post(f"/ops/jobs/{job_id}/retry")
    assert response.status_code == 202, response.content
    assert drive(job_id).status == JobStatus.SUCCESS, steps(job_id)


# --- in-place, watched ------------------------------------------------------------------------


class Observer:
    """Checks at every change of the cluster that the other replicas stay untouched and Ready
    and that no claim of the target is deleted while a pod other than the doomed one uses it."""

    def __init__(self, sim, target: str, others: list[str]) -> None:
        self.sim = sim
        self.target = target
        self.others = {name: uid(sim, "pods", name) for name in others}
        self.doomed = uid(sim, "pods", target)
        self.claims = {name: uid(sim, "pvc", name) for name in (f"data-{target}", f"wal-{target}")}
        self.problems: list[str] = []
        self.looks = 0
        self.min_ready = len(others)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _look(self) -> None:
        self.looks += 1
        pods = {p["metadata"]["name"]: p for p in self.sim.list("pods", "prod")}
        ready = 0
        for name, want in self.others.items():
            pod = pods.get(name)
            conditions = ((pod or {}).get("status") or {}).get("conditions") or []
            is_ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
            if pod is None or pod["metadata"]["uid"] != want:
                self.problems.append(f"{name} replaced or gone")
            elif "deletionTimestamp" in pod["metadata"]:
                self.problems.append(f"{name} being deleted")
            elif not is_ready:
                self.problems.append(f"{name} not Ready")
            else:
                ready += 1
        self.min_ready = min(self.min_ready, ready)
        for claim, old in self.claims.items():
            pvc = self.sim.get("persistentvolumeclaims", "prod", claim)
            if pvc is None or pvc["metadata"]["uid"] != old:
                continue
            if "deletionTimestamp" not in pvc["metadata"]:
                continue
            users = [
                (p["metadata"]["name"], p["metadata"]["uid"])
                for p in pods.values()
                if any(
                    (v.get("persistentVolumeClaim") or {}).get("claimName") == claim
                    for v in p["spec"].get("volumes") or []
                )
            ]
            strangers = [u for u in users if u[1] != self.doomed]
            if strangers:
                self.problems.append(f"{claim} deleted while {strangers} use it")

    def _run(self) -> None:
        with self.sim.store.changed:
            while not self._stop.is_set():
                self._look()
                self.sim.store.changed.wait(0.05)

    def __enter__(self) -> Observer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def test_an_in_place_rebuild_replaces_only_the_target_and_records_the_evidence(
    api, pg_cluster, drive
):
    label_all(pg_cluster, **{"cluster-name": "postgres"}, role="replica")
    label(pg_cluster, "postgres-0", role="primary")
    pg_cluster.apply(LEADER_CONFIGMAP.format(leader="postgres-0"))
    old_pod = uid(pg_cluster, "pods", "postgres-1")
    old_claims = {n: uid(pg_cluster, "pvc", n) for n in ("data-postgres-1", "wal-postgres-1")}
    pg_cluster.requests.clear()

    with Observer(pg_cluster, "postgres-1", ["postgres-0", "postgres-2"]) as observer:
        job_id = start(api, IN_PLACE)
        job = drive(job_id)

    assert job.status == JobStatus.SUCCESS, steps(job_id)
    assert observer.problems == []
    assert observer.looks >= 5  # it looked at every change of the store
    assert observer.min_ready == 2
    assert [s[:2] for s in steps(job_id)] == [(n, "success") for n in IN_PLACE_STEPS]
    # Only the target's claims and pod were deleted, each pinned to the uid the job read.
    assert destructive(pg_cluster) == [
        ("DELETE", "persistentvolumeclaims", "data-postgres-1"),
        ("DELETE", "persistentvolumeclaims", "wal-postgres-1"),
        ("DELETE", "pods", "postgres-1"),
    ]
    rows = OpsLog.objects.using("audit").filter(job_id=job_id, action="delete").order_by("id")
    assert [(r.resource_name, r.request_body, r.status) for r in rows] == [
        ("data-postgres-1", {"preconditions": {"uid": old_claims["data-postgres-1"]}}, "success"),
        ("wal-postgres-1", {"preconditions": {"uid": old_claims["wal-postgres-1"]}}, "success"),
        ("postgres-1", {"preconditions": {"uid": old_pod}}, "success"),
    ]
    new_pod = uid(pg_cluster, "pods", "postgres-1")
    new_claims = {n: uid(pg_cluster, "pvc", n) for n in old_claims}
    assert new_pod not in (None, old_pod)
    assert all(new_claims[n] not in (None, old_claims[n]) for n in old_claims)
    assert job.result["old_pod_uid"] == old_pod
    assert job.result["new_pod_uid"] == new_pod
    assert job.result["old_claim_uids"] == old_claims
    assert job.result["new_claim_uids"] == new_claims
    assert job.result["downtime_seconds"] > 0
    body = api.get(f"/ops/jobs/{job_id}").json()
    assert body["result"] == job.result
    assert body["error"] is None
    assert new_pod in body["steps"][-1]["detail"]


# --- late requests and interrupted attempts ---------------------------------------------------


def test_a_scale_sent_late_with_the_version_it_read_changes_nothing(api, pg_cluster, drive):
    """What a killed worker's scale-to-0 finds when it lands after the job moved on."""
    read_then = k8s.statefulset_read(namespace="prod", name="postgres").resource_version
    job_id = start(api, {**BODY, "ordinal": 0})
    assert drive(job_id).status == JobStatus.SUCCESS, steps(job_id)

    with pytest.raises(ObjectConflict):
        services.statefulset_scale(
            actor=Actor(name="late-worker", source_ip=None),
            namespace="prod",
            name="postgres",
            replicas=0,
            job_id=job_id,
            resource_version=read_then,
        )
    assert pg_cluster.get("statefulsets", "prod", "postgres")["spec"]["replicas"] == 3


def _as_if_killed_mid_scale(job_id: str, *, sent: bool, sim) -> OpsLog:
    """Leave what a tick killed right after its scale-to-0 was recorded leaves: the step's
    saved state, its pending audit row, a lapsed lease — and the scale itself if ``sent``."""
    job = Job.objects.get(job_id=job_id)
    sts = k8s.statefulset_read(namespace="prod", name="postgres")
    JobStep.objects.filter(job=job, name="scale_sts_to_zero").update(
        status="running",
        active_tick="dead-worker:1:0",
        attempts=1,
        state={
            "original_replicas": 3,
            "selector": "app=postgres",
            "claims": ["data-postgres-1", "wal-postgres-1"],
            "requested_replicas": 0,
        },
    )
    row = OpsLog.objects.using("audit").create(
        actor="bootstrap",
        action="scale",
        resource_kind="statefulset",
        namespace="prod",
        resource_name="postgres",
        request_body={"replicas": 0, "preconditions": {"resourceVersion": sts.resource_version}},
        status="pending",
        job_id=job_id,
        origin="job",
    )
    if sent:
        k8s.scale_patch(
            kind="statefulset",
            namespace="prod",
            name="postgres",
            replicas=0,
            resource_version=sts.resource_version,
        )
    return row


@pytest.mark.parametrize("sent", [True, False], ids=["applied", "not applied"])
def test_a_resumed_step_closes_the_interrupted_attempts_pending_row(api, pg_cluster, drive, sent):
    job_id = start(api, {**BODY, "allow_outage": True})
    row = _as_if_killed_mid_scale(job_id, sent=sent, sim=pg_cluster)

    assert drive(job_id).status == JobStatus.SUCCESS, steps(job_id)

    row.refresh_from_db(using="audit")
    if sent:
        assert (row.status, row.code) == ("success", "observed_applied")
        assert "saw it applied: the set is at 0 replicas" in row.error_message
    else:
        assert (row.status, row.code) == ("error", "not_applied")
        assert "replicas were still 3" in row.error_message
    assert row.finished_at is not None
    scales_down = [
        r
        for r in OpsLog.objects.using("audit").filter(job_id=job_id, action="scale")
        if r.request_body["replicas"] == 0
    ]
    assert len(scales_down) == (1 if sent else 2)  # the resumed step sent its own if needed
    assert not OpsLog.objects.using("audit").filter(job_id=job_id, status="pending").exists()
