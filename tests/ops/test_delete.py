"""Deleting pods and PersistentVolumeClaims over HTTP: answers, cluster effects, audit rows."""

from __future__ import annotations

from tests.ops.conftest import DB, audit_log, mutations

pytestmark = DB


def _first_postgres_pod(sim) -> str:
    return sim.list("pods", "prod", label_selector="app=postgres")[0]["metadata"]["name"]


def test_pod_delete_answers_ok_and_sends_one_delete(api, cluster):
    pod = _first_postgres_pod(cluster)

    response = api.delete(f"/ops/namespaces/prod/pods/{pod}")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "namespace": "prod", "kind": "pod", "name": pod}
    assert [(m.method, m.resource, m.name) for m in mutations(cluster)] == [("DELETE", "pods", pod)]
    [row] = audit_log()
    assert (row.action, row.resource_kind, row.resource_name, row.status) == (
        "delete",
        "pod",
        pod,
        "success",
    )


def test_pvc_delete_answers_ok_and_the_claim_is_terminating_or_gone(api, cluster):
    response = api.delete("/ops/namespaces/staging/persistentvolumeclaims/data-postgres-2")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "namespace": "staging",
        "kind": "persistentvolumeclaim",
        "name": "data-postgres-2",
    }
    pvc = cluster.get("persistentvolumeclaims", "staging", "data-postgres-2")
    assert pvc is None or pvc["metadata"].get("deletionTimestamp")
    [row] = audit_log()
    assert row.status == "success"


def test_deleting_a_missing_pvc_is_404_and_audited_as_error(api, cluster):
    response = api.delete("/ops/namespaces/prod/persistentvolumeclaims/no-such-claim")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    [row] = audit_log()
    assert (row.status, row.http_status) == ("error", 404)


def test_deleting_a_missing_pod_is_404(api, cluster):
    assert api.delete("/ops/namespaces/prod/pods/no-such-pod").status_code == 404


def test_a_delete_with_an_empty_json_object_body_is_accepted(api, cluster):
    pod = _first_postgres_pod(cluster)

    response = api.delete(f"/ops/namespaces/prod/pods/{pod}", {}, format="json")

    assert response.status_code == 200


def test_a_delete_with_fields_in_its_body_is_refused_without_a_kubernetes_call(api, cluster):
    pod = _first_postgres_pod(cluster)

    response = api.delete(
        f"/ops/namespaces/prod/pods/{pod}", {"gracePeriodSeconds": 0}, format="json"
    )

    assert response.status_code == 400
    assert "gracePeriodSeconds" in response.json()["errors"]
    assert list(cluster.requests) == []
    [row] = audit_log()
    assert (row.status, row.http_status, row.request_body) == (
        "error",
        400,
        {"gracePeriodSeconds": 0},
    )


def test_a_failing_delete_is_retried_and_then_502(api, cluster):
    rule = cluster.faults.add(method="DELETE", path=r"/pods/", status=500)
    pod = _first_postgres_pod(cluster)

    response = api.delete(f"/ops/namespaces/prod/pods/{pod}")

    assert response.status_code == 502
    assert rule.fired == 4
    # One read for the uid, then every attempt pinned to it (see test_k8s_gateway).
    assert [(r.method, r.name) for r in cluster.requests] == [("GET", pod)] + [("DELETE", pod)] * 4
    [row] = audit_log()
    assert row.status == "error"


def _slow_retries(apiops) -> None:
    """One retry, a full second after a lost answer: long after kubesim's controllers have
    removed a deleted pod or claim (tens of milliseconds) and recreated a StatefulSet pod."""
    apiops(K8S_RETRIES=1, K8S_BACKOFF=2.0, K8S_RETRY_MAX_WAIT=1.0)


def test_a_pod_delete_whose_answer_is_lost_does_not_delete_the_recreated_pod(api, cluster, apiops):
    _slow_retries(apiops)
    old_uid = cluster.get("pods", "prod", "postgres-0")["metadata"]["uid"]
    rule = cluster.faults.add(method="DELETE", path=r"/pods/postgres-0$", drop_after=True, times=1)

    response = api.delete("/ops/namespaces/prod/pods/postgres-0")

    assert response.status_code == 200
    assert rule.fired == 1
    # The retry reached the StatefulSet's new postgres-0 and was refused by the uid precondition.
    assert [r.status for r in cluster.requests.filter(method="DELETE")] == [0, 409]
    pod = cluster.get("pods", "prod", "postgres-0")
    assert pod["metadata"]["uid"] != old_uid
    assert not pod["metadata"].get("deletionTimestamp")
    [row] = audit_log()
    assert (row.status, row.http_status, row.error_message) == ("success", 200, None)


def test_a_pvc_delete_whose_answer_is_lost_is_a_success_not_a_404(api, cluster, apiops):
    _slow_retries(apiops)
    cluster.apply(
        "apiVersion: v1\nkind: PersistentVolumeClaim\n"
        "metadata: {name: scratch, namespace: prod}\n"
        "spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n"
    )
    cluster.requests.clear()
    cluster.faults.add(
        method="DELETE", path=r"/persistentvolumeclaims/scratch$", drop_after=True, times=1
    )

    response = api.delete("/ops/namespaces/prod/persistentvolumeclaims/scratch")

    assert response.status_code == 200
    # Nothing used the claim: the first DELETE removed it, the retry found it gone.
    assert [r.status for r in cluster.requests.filter(method="DELETE")] == [0, 404]
    assert cluster.get("persistentvolumeclaims", "prod", "scratch") is None
    [row] = audit_log()
    assert (row.status, row.http_status) == ("success", 200)


def test_a_delete_that_hangs_is_504(api, cluster, apiops):
    apiops(K8S_TIMEOUT=0.3)
    cluster.faults.add(method="DELETE", path=r"/persistentvolumeclaims/", hang=True)

    response = api.delete("/ops/namespaces/prod/persistentvolumeclaims/data-postgres-0")

    assert response.status_code == 504
    [row] = audit_log()
    assert (row.status, row.code) == ("error", "kubernetes_timeout")
