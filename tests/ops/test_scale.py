"""Scaling Deployments and StatefulSets over HTTP: answers, cluster effects, audit rows, and
how Kubernetes failures (404, 409, 403, 422, 429/5xx, hangs) come back to the caller."""

from __future__ import annotations

import pytest

from tests.ops.conftest import CLIENT_IP, DB, TRANSACTIONAL_DB, audit_log, mutations

pytestmark = DB

STS = "/ops/namespaces/prod/statefulsets/postgres/scale"
DEPLOY = "/ops/namespaces/prod/deployments/web/scale"


def test_statefulset_scale_answers_new_and_previous_replicas_and_reaches_the_cluster(api, cluster):
    response = api.post(STS, {"replicas": 2}, format="json")

    assert response.status_code == 200
    assert response.json() == {
        "namespace": "prod",
        "kind": "statefulset",
        "name": "postgres",
        "replicas": 2,
        "previous_replicas": 3,
    }
    assert cluster.get("statefulsets", "prod", "postgres")["spec"]["replicas"] == 2
    calls = [(r.method, r.resource, r.subresource, r.name) for r in cluster.requests]
    assert calls == [
        ("GET", "statefulsets", "scale", "postgres"),
        ("PATCH", "statefulsets", "scale", "postgres"),
    ]


def test_deployment_scale_reaches_the_cluster_with_one_patch(api, cluster):
    response = api.post(DEPLOY, {"replicas": 3}, format="json")

    assert response.status_code == 200
    assert response.json()["kind"] == "deployment"
    assert response.json()["replicas"] == 3
    assert cluster.get("deployments", "prod", "web")["spec"]["replicas"] == 3
    assert [(m.method, m.resource, m.subresource) for m in mutations(cluster)] == [
        ("PATCH", "deployments", "scale")
    ]


def test_scale_to_zero_and_to_the_maximum_are_allowed(api, cluster, apiops):
    apiops(MAX_REPLICAS=4)
    assert api.post(STS, {"replicas": 0}, format="json").status_code == 200
    assert api.post(STS, {"replicas": 4}, format="json").status_code == 200
    assert cluster.get("statefulsets", "prod", "postgres")["spec"]["replicas"] == 4


def test_successful_scale_writes_one_success_row_with_actor_ip_and_body(api, cluster):
    api.post(STS, {"replicas": 1}, format="json")

    [row] = audit_log()
    assert row.status == "success"
    assert row.actor == "bootstrap"
    assert row.source_ip == CLIENT_IP
    assert (row.action, row.resource_kind, row.namespace, row.resource_name) == (
        "scale",
        "statefulset",
        "prod",
        "postgres",
    )
    assert row.request_body == {"replicas": 1}
    assert row.http_status == 200
    assert row.error_message is None
    assert row.finished_at is not None


def test_scale_of_a_missing_statefulset_is_404_audited_as_error_without_a_patch(api, cluster):
    response = api.post(
        "/ops/namespaces/prod/statefulsets/no-such-sts/scale", {"replicas": 1}, format="json"
    )

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert "no-such-sts" in response.json()["detail"]
    assert mutations(cluster) == []
    [row] = audit_log()
    assert (row.status, row.code, row.http_status) == ("error", "not_found", 404)
    assert "not found" in row.error_message


def test_a_conflict_from_the_cluster_is_retried_then_answered_409(api, cluster):
    rule = cluster.faults.add(method="PATCH", path=r"/statefulsets/postgres/scale$", status=409)

    response = api.post(STS, {"replicas": 2}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "conflict"
    assert rule.fired == 4  # the first attempt and three retries
    [row] = audit_log()
    assert (row.status, row.http_status) == ("error", 409)


def test_a_conflict_that_clears_is_retried_to_success(api, cluster):
    cluster.faults.add(method="PATCH", path=r"/statefulsets/postgres/scale$", status=409, times=1)

    response = api.post(STS, {"replicas": 2}, format="json")

    assert response.status_code == 200
    assert cluster.get("statefulsets", "prod", "postgres")["spec"]["replicas"] == 2


@pytest.mark.parametrize("status", [429, 500, 503])
def test_transient_errors_on_patch_are_retried_until_they_clear(api, cluster, status):
    rule = cluster.faults.add(
        method="PATCH", path=r"/statefulsets/postgres/scale$", status=status, times=2
    )

    response = api.post(STS, {"replicas": 2}, format="json")

    assert response.status_code == 200
    assert rule.fired == 2
    patches = [r for r in cluster.requests if r.method == "PATCH"]
    assert [r.status for r in patches] == [status, status, 200]
    [row] = audit_log()
    assert row.status == "success"


@pytest.mark.parametrize("status", [429, 500, 503])
def test_persistent_transient_errors_end_in_502_after_bounded_retries(api, cluster, status):
    rule = cluster.faults.add(method="PATCH", path=r"/statefulsets/postgres/scale$", status=status)

    response = api.post(STS, {"replicas": 2}, format="json")

    assert response.status_code == 502
    assert response.json()["code"] == "kubernetes_unavailable"
    assert rule.fired == 4
    [row] = audit_log()
    assert (row.status, row.http_status, row.code) == ("error", 502, "kubernetes_unavailable")
    assert str(status) in row.error_message


def test_retry_after_from_the_cluster_is_honoured_up_to_the_cap(api, cluster, apiops):
    apiops(K8S_RETRY_MAX_WAIT=0.2)
    cluster.faults.add(
        method="PATCH", path=r"/statefulsets/postgres/scale$", status=429, times=1, retry_after=1
    )

    response = api.post(STS, {"replicas": 2}, format="json")

    assert response.status_code == 200
    [failed, ok] = [r for r in cluster.requests if r.method == "PATCH"]
    assert (failed.status, ok.status) == (429, 200)


def test_transient_errors_on_the_read_are_retried_too(api, cluster):
    cluster.faults.add(method="GET", path=r"/statefulsets/postgres/scale$", status=503, times=3)

    assert api.post(STS, {"replicas": 2}, format="json").status_code == 200


def test_a_hanging_api_server_gives_504_audited_as_error(api, cluster, apiops):
    apiops(K8S_TIMEOUT=0.3)
    cluster.faults.add(method="PATCH", path=r"/statefulsets/postgres/scale$", hang=True)

    response = api.post(STS, {"replicas": 2}, format="json")

    assert response.status_code == 504
    assert response.json()["code"] == "kubernetes_timeout"
    [row] = audit_log()
    assert (row.status, row.http_status, row.code) == ("error", 504, "kubernetes_timeout")


def test_a_dropped_connection_is_retried(api, cluster):
    rule = cluster.faults.add(
        method="PATCH", path=r"/statefulsets/postgres/scale$", drop=True, times=1
    )

    response = api.post(STS, {"replicas": 2}, format="json")

    assert response.status_code == 200
    assert rule.fired == 1
    assert cluster.get("statefulsets", "prod", "postgres")["spec"]["replicas"] == 2


def test_the_cluster_refusing_our_service_account_is_502_not_403(api, cluster):
    cluster.faults.add(method="PATCH", path=r"/statefulsets/postgres/scale$", status=403)

    response = api.post(STS, {"replicas": 2}, format="json")

    assert response.status_code == 502
    assert response.json()["code"] == "kubernetes_forbidden"
    [row] = audit_log()
    assert row.status == "error"


def test_the_cluster_rejecting_the_request_as_invalid_is_502(api, cluster):
    cluster.faults.add(method="PATCH", path=r"/statefulsets/postgres/scale$", status=422)

    response = api.post(STS, {"replicas": 2}, format="json")

    assert response.status_code == 502
    assert response.json()["code"] == "kubernetes_rejected"


def test_an_unreachable_cluster_is_502(api, cluster, apiops, tmp_path):
    kubeconfig = tmp_path / "dead.kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: dead\n"
        "clusters: [{name: dead, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "users: [{name: dead, user: {}}]\n"
        "contexts: [{name: dead, context: {cluster: dead, user: dead}}]\n"
    )
    apiops(KUBECONFIG=str(kubeconfig))

    response = api.post(STS, {"replicas": 2}, format="json")

    assert response.status_code == 502
    assert response.json()["code"] == "kubernetes_unavailable"
    [row] = audit_log()
    assert row.status == "error"


@TRANSACTIONAL_DB
def test_the_audit_row_of_a_failed_request_survives_the_request_rollback(api, cluster):
    response = api.post(
        "/ops/namespaces/prod/statefulsets/no-such-sts/scale", {"replicas": 1}, format="json"
    )

    assert response.status_code == 404
    # Committed on its own connection: visible through the request connection as well.
    from ops.models import OpsLog

    assert OpsLog.objects.using("default").filter(resource_name="no-such-sts").count() == 1
