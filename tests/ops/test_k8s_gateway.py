"""The Kubernetes gateway against kubesim through the real client: the reads the jobs app
uses, error mapping into our hierarchy, retry bounds, timeouts and client caching."""

from __future__ import annotations

from pathlib import Path

import pytest
import urllib3
from kubernetes import client

from ops import k8s
from ops.k8s import PodInfo, StatefulSetInfo

pytestmark = pytest.mark.usefixtures("cluster")


def test_statefulset_read_gives_replicas_selector_claims_and_generations(cluster):
    info = k8s.statefulset_read(namespace="prod", name="postgres")

    assert isinstance(info, StatefulSetInfo)
    assert info.replicas == 3
    assert info.label_selector == "app=postgres"
    assert "data" in info.claim_templates
    assert info.pvc_names(1) == [f"{t}-postgres-1" for t in info.claim_templates]
    assert info.generation >= 1
    assert info.ready_replicas == 3


def test_statefulset_read_of_a_missing_object_raises_not_found():
    with pytest.raises(k8s.K8sNotFound) as caught:
        k8s.statefulset_read(namespace="prod", name="nope")
    assert caught.value.status == 404
    assert 'statefulsets.apps "nope" not found' in caught.value.message


def test_scale_read_gives_the_current_spec_replicas():
    assert k8s.scale_read(kind="deployment", namespace="prod", name="web").spec_replicas >= 0
    assert k8s.scale_read(kind="statefulset", namespace="prod", name="postgres").spec_replicas == 3


def test_scale_read_refuses_an_unknown_kind():
    with pytest.raises(ValueError, match="kind"):
        k8s.scale_read(kind="daemonset", namespace="prod", name="x")


def test_pod_list_filters_by_label_selector_and_reports_readiness(cluster):
    pods = k8s.pod_list(namespace="prod", label_selector="app=postgres")

    assert {p.name for p in pods} == {"postgres-0", "postgres-1", "postgres-2"}
    assert all(isinstance(p, PodInfo) and p.ready and not p.terminating for p in pods)
    assert any(c.startswith("data-postgres-") for p in pods for c in p.claim_names)
    [request] = list(cluster.requests)
    assert request.query.get("labelSelector") == "app=postgres"


def test_a_deleted_pod_with_a_grace_period_lists_as_terminating(cluster):
    cluster.set_delays(termination_delay=30)
    k8s.pod_delete(namespace="prod", name="postgres-0")

    pods = {p.name: p for p in k8s.pod_list(namespace="prod", label_selector="app=postgres")}

    assert pods["postgres-0"].terminating


def test_pvc_read_returns_none_for_a_missing_claim_and_info_for_a_present_one():
    assert k8s.pvc_read(namespace="prod", name="no-such-claim") is None
    pvc = k8s.pvc_read(namespace="prod", name="data-postgres-0")
    assert pvc is not None
    assert pvc.uid
    assert "kubernetes.io/pvc-protection" in pvc.finalizers


def test_a_deleted_pvc_in_use_reads_as_terminating(cluster):
    k8s.pvc_delete(namespace="prod", name="data-postgres-0")

    pvc = k8s.pvc_read(namespace="prod", name="data-postgres-0")

    assert pvc is not None
    assert pvc.terminating


def _delete_pod_pinned_to(uid: str, name: str = "postgres-0") -> None:
    """The gateway's pinned DELETE with a chosen uid: how the pod looks to a delete whose pod
    was replaced between its read and its DELETE, which no fault can arrange on cue."""
    core = client.CoreV1Api(k8s.api_client())
    k8s._delete_object(
        what=f"delete pod prod/{name}",
        fn=core.delete_namespaced_pod,
        namespace="prod",
        name=name,
        uid=uid,
    )


def test_pod_delete_reads_the_pod_for_its_uid_then_deletes_that_pod(cluster):
    k8s.pod_delete(namespace="prod", name="postgres-1")

    assert [(r.method, r.name, r.status) for r in cluster.requests] == [
        ("GET", "postgres-1", 200),
        ("DELETE", "postgres-1", 200),  # the uid precondition held
    ]


def test_a_first_attempt_refused_by_the_uid_precondition_is_a_conflict(cluster):
    with pytest.raises(k8s.K8sConflict, match="UID in precondition"):
        _delete_pod_pinned_to("uid-of-a-pod-that-was-replaced")

    assert not cluster.get("pods", "prod", "postgres-0")["metadata"].get("deletionTimestamp")
    assert [r.status for r in cluster.requests.filter(method="DELETE")] == [409]


def test_a_retried_delete_carries_the_uid_precondition(cluster):
    cluster.faults.add(method="DELETE", path=r"/pods/postgres-0$", status=503, times=1)

    # The 503 may have hidden a delete of the pinned pod, so the retry's 409 means "done"...
    _delete_pod_pinned_to("uid-of-a-pod-that-was-replaced")

    # ...and the pod now named postgres-0 (another uid) was not touched by the retry.
    assert [r.status for r in cluster.requests.filter(method="DELETE")] == [503, 409]
    assert not cluster.get("pods", "prod", "postgres-0")["metadata"].get("deletionTimestamp")


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (503, None),  # the first attempt may have deleted it: a 404 on the retry is success
        (500, None),
        (429, k8s.K8sNotFound),  # refused before it ran: the 404 is someone else's doing
    ],
)
def test_a_404_on_a_retry_is_success_only_after_an_attempt_that_may_have_run(
    cluster, status, outcome
):
    cluster.faults.add(method="DELETE", path=r"/pods/gone$", status=status, times=1)

    if outcome is None:
        _delete_pod_pinned_to("some-uid", name="gone")
    else:
        with pytest.raises(outcome):
            _delete_pod_pinned_to("some-uid", name="gone")
    assert [r.status for r in cluster.requests.filter(method="DELETE")] == [status, 404]


def test_a_delete_of_a_missing_object_is_not_found_without_a_delete(cluster):
    with pytest.raises(k8s.K8sNotFound):
        k8s.pvc_delete(namespace="prod", name="no-such-claim")
    assert cluster.requests.filter(method="DELETE") == []


def test_connection_failures_tell_whether_the_request_may_have_run():
    refused = urllib3.exceptions.NewConnectionError(None, "Connection refused")
    connect_timeout = urllib3.exceptions.ConnectTimeoutError(None, "timed out")
    reset = urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError())
    read_timeout = urllib3.exceptions.ReadTimeoutError(None, "/", "read timed out")

    assert not k8s._from_urllib3(refused, "x").maybe_applied
    assert not k8s._from_urllib3(connect_timeout, "x").maybe_applied
    assert k8s._from_urllib3(reset, "x").maybe_applied
    assert k8s._from_urllib3(read_timeout, "x").maybe_applied


def test_ping_answers_the_server_version():
    assert isinstance(k8s.ping(), str)


def test_ping_does_not_retry(cluster):
    rule = cluster.faults.add(method="GET", path=r"^/version", status=503)

    with pytest.raises(k8s.K8sUnavailable):
        k8s.ping()
    assert rule.fired == 1


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, k8s.K8sInvalid),
        (401, k8s.K8sForbidden),
        (403, k8s.K8sForbidden),
        (404, k8s.K8sNotFound),
        (409, k8s.K8sConflict),
        (422, k8s.K8sInvalid),
        (429, k8s.K8sUnavailable),
        (500, k8s.K8sUnavailable),
        (503, k8s.K8sUnavailable),
        (504, k8s.K8sTimeout),
    ],
)
def test_http_errors_map_onto_our_hierarchy(cluster, status, error):
    cluster.faults.add(method="GET", path=r"/statefulsets/postgres$", status=status)

    with pytest.raises(error) as caught:
        k8s.statefulset_read(namespace="prod", name="postgres")

    assert isinstance(caught.value, k8s.K8sError)
    assert caught.value.status == status
    assert caught.value.__cause__ is not None  # raised from the client's exception


@pytest.mark.parametrize("status", [400, 403, 404, 422])
def test_client_errors_are_not_retried(cluster, status):
    rule = cluster.faults.add(method="GET", path=r"/statefulsets/postgres$", status=status)

    with pytest.raises(k8s.K8sError):
        k8s.statefulset_read(namespace="prod", name="postgres")
    assert rule.fired == 1


def test_the_number_of_retries_is_bounded_by_settings(cluster, apiops):
    apiops(K8S_RETRIES=1)
    rule = cluster.faults.add(method="GET", path=r"/statefulsets/postgres$", status=500)

    with pytest.raises(k8s.K8sUnavailable):
        k8s.statefulset_read(namespace="prod", name="postgres")
    assert rule.fired == 2


def test_a_plain_text_429_from_the_throttling_filters_is_retried_then_unavailable(cluster):
    # Max-in-flight and APF answer 429 as plain text (not a Status) with Retry-After: 1.
    scale = r"/statefulsets/postgres/scale$"
    once = cluster.faults.add(method="PATCH", path=scale, status=429, plain=True, times=1)

    info = k8s.scale_patch(kind="statefulset", namespace="prod", name="postgres", replicas=2)

    assert info.spec_replicas == 2
    assert once.fired == 1
    assert [r.status for r in cluster.requests.filter(method="PATCH")] == [429, 200]

    always = cluster.faults.add(method="PATCH", path=scale, status=429, plain=True)
    with pytest.raises(k8s.K8sUnavailable) as caught:
        k8s.scale_patch(kind="statefulset", namespace="prod", name="postgres", replicas=3)
    assert caught.value.status == 429
    assert not caught.value.maybe_applied
    assert always.fired == 4  # K8S_RETRIES=3 in these tests
    assert cluster.get("statefulsets", "prod", "postgres")["spec"]["replicas"] == 2


def test_a_hang_on_a_read_ends_in_our_timeout_error_not_a_urllib3_error(cluster, apiops):
    apiops(K8S_TIMEOUT=0.2)
    cluster.faults.add(method="GET", path=r"/pods$", hang=True)

    with pytest.raises(k8s.K8sTimeout):
        k8s.pod_list(namespace="prod", label_selector="app=postgres")


def test_a_dropped_connection_that_persists_ends_in_unavailable(cluster):
    rule = cluster.faults.add(method="GET", path=r"/statefulsets/postgres$", drop=True)

    with pytest.raises(k8s.K8sUnavailable):
        k8s.statefulset_read(namespace="prod", name="postgres")
    assert rule.fired == 4


def test_the_client_follows_the_configured_kubeconfig(cluster, apiops):
    from kubesim import KubeSim

    with KubeSim() as other:
        apiops(KUBECONFIG=other.kubeconfig_path)

        with pytest.raises(k8s.K8sNotFound):
            k8s.statefulset_read(namespace="prod", name="postgres")

        assert [r.name for r in other.requests] == ["postgres"]
    assert list(cluster.requests) == []


def test_a_missing_kubeconfig_is_unavailable(apiops, tmp_path):
    apiops(KUBECONFIG=str(tmp_path / "nope"))
    k8s.reset_client()

    with pytest.raises(k8s.K8sUnavailable, match="kubeconfig"):
        k8s.ping()


def test_label_selectors_with_expressions_are_rendered_in_query_syntax():
    from kubernetes.client import V1LabelSelector, V1LabelSelectorRequirement

    selector = V1LabelSelector(
        match_labels={"app": "pg", "tier": "db"},
        match_expressions=[
            V1LabelSelectorRequirement(key="zone", operator="In", values=["b", "a"]),
            V1LabelSelectorRequirement(key="env", operator="NotIn", values=["dev"]),
            V1LabelSelectorRequirement(key="managed", operator="Exists"),
            V1LabelSelectorRequirement(key="legacy", operator="DoesNotExist"),
        ],
    )

    assert k8s._label_selector(selector) == (
        "app=pg,tier=db,zone in (a,b),env notin (dev),managed,!legacy"
    )


def test_the_credential_refresh_hook_runs_at_most_once_a_second_and_keeps_refreshing(
    monkeypatch,
):
    # As the kubeconfig loader's hook does: it refreshes, then installs a new copy of itself.
    now = [1000.0]
    monkeypatch.setattr(k8s.time, "monotonic", lambda: now[0])
    refreshed = []

    def loader_hook(configuration):
        refreshed.append(now[0])
        configuration.refresh_api_key_hook = loader_hook

    cfg = client.Configuration()
    cfg.api_key = {"BearerToken": "a-token"}
    cfg.refresh_api_key_hook = loader_hook
    k8s._refresh_at_most_once_a_second(cfg)

    for _ in range(5):
        cfg.auth_settings()  # what the client asks before every request
    now[0] += 0.5
    cfg.auth_settings()
    now[0] += 0.6
    cfg.auth_settings()
    cfg.auth_settings()

    assert refreshed == [1000.0, 1001.1]
    assert cfg.refresh_api_key_hook is not loader_hook  # still behind the gate


def _count_call_api(monkeypatch, api) -> list[str]:
    """The methods ``api.call_api`` is asked to send (it still sends them)."""
    sent: list[str] = []
    call_api = api.call_api

    def counted(method, url, *args, **kwargs):
        sent.append(method)
        return call_api(method, url, *args, **kwargs)

    monkeypatch.setattr(api, "call_api", counted)
    return sent


def test_a_scale_goes_out_on_the_clients_own_pool_for_the_api_server(cluster, monkeypatch):
    api = k8s.api_client()
    host = api.configuration.host
    through_call_api = _count_call_api(monkeypatch, api)

    k8s.scale_read(kind="statefulset", namespace="prod", name="postgres")

    assert through_call_api == []  # sent on the pool, not through the client's request code
    assert api._pool_for(host) is api.rest_client.pool_manager.connection_from_url(host)
    assert [(r.method, r.subresource) for r in cluster.requests] == [("GET", "scale")]


def test_behind_a_proxy_a_scale_goes_through_the_clients_proxy_manager(
    cluster, apiops, tmp_path, monkeypatch
):
    """A kubeconfig's proxy-url makes the client send through urllib3's ProxyManager (absolute
    URLs to the proxy): the pool shortcut is not taken. kubesim stands in for the proxy, as it
    serves an absolute-form request like any other."""
    import yaml

    kubeconfig = yaml.safe_load(Path(cluster.kubeconfig_path).read_text(encoding="utf-8"))
    server = kubeconfig["clusters"][0]["cluster"]["server"]
    kubeconfig["clusters"][0]["cluster"]["proxy-url"] = server
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig), encoding="utf-8")
    apiops(KUBECONFIG=str(path))
    k8s.reset_client()
    api = k8s.api_client()
    through_call_api = _count_call_api(monkeypatch, api)

    info = k8s.scale_patch(kind="statefulset", namespace="prod", name="postgres", replicas=2)

    assert through_call_api == ["PATCH"]
    assert isinstance(api.rest_client.pool_manager, urllib3.ProxyManager)
    assert api._pool_for(api.configuration.host) is None
    assert info.spec_replicas == 2
    assert [(r.method, r.subresource) for r in cluster.requests] == [("PATCH", "scale")]
