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
    [row] = audit_log()
    assert row.status == "error"


def test_a_delete_that_hangs_is_504(api, cluster, apiops):
    apiops(K8S_TIMEOUT=0.3)
    cluster.faults.add(method="DELETE", path=r"/persistentvolumeclaims/", hang=True)

    response = api.delete("/ops/namespaces/prod/persistentvolumeclaims/data-postgres-0")

    assert response.status_code == 504
    [row] = audit_log()
    assert (row.status, row.code) == ("error", "kubernetes_timeout")
