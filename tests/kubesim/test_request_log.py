"""The request log names every call in RBAC terms, so a test can assert exactly which calls an
operation made (and which Role rules they need)."""

from __future__ import annotations

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from kubesim_helpers import deployment_yaml

from kubesim import RequestRecord


def _only(records):
    assert len(records) == 1, records
    return records[0]


def test_a_scale_patch_is_recorded_with_every_field(apps, kubesim):
    kubesim.apply(deployment_yaml())
    kubesim.requests.clear()
    apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 3}})
    rec = _only(list(kubesim.requests))
    assert isinstance(rec, RequestRecord)
    assert rec.method == "PATCH"
    assert rec.path == "/apis/apps/v1/namespaces/default/deployments/web/scale"
    assert rec.query == {}
    assert rec.verb == "patch"
    assert rec.api_group == "apps"
    assert rec.resource == "deployments"
    assert rec.subresource == "scale"
    assert rec.namespace == "default"
    assert rec.name == "web"
    assert rec.status == 200
    assert rec.content_type == "application/strategic-merge-patch+json"
    with pytest.raises(AttributeError):
        rec.status = 500  # frozen


def test_reads_are_get_list_and_watch_with_their_query(core, kubesim):
    kubesim.requests.clear()
    core.list_namespaced_pod("default", label_selector="app=x")
    w = watch.Watch()
    for _ in w.stream(core.list_namespace, timeout_seconds=10):
        w.stop()  # the synthetic ADDED events arrive at once
    with pytest.raises(ApiException):
        core.read_namespaced_pod("missing", "default")
    listed, watched, got = list(kubesim.requests)
    assert (listed.verb, listed.resource, listed.query) == (
        "list",
        "pods",
        {"labelSelector": "app=x"},
    )
    assert (watched.verb, watched.resource, watched.namespace) == ("watch", "namespaces", "")
    assert watched.query["watch"] == "true"
    assert (got.verb, got.name, got.status, got.api_group) == ("get", "missing", 404, "")


def test_mutations_are_the_writes_only(core, kubesim):
    kubesim.requests.clear()
    core.create_namespace({"metadata": {"name": "n"}})
    core.list_namespace()
    core.patch_namespace("n", {"metadata": {"labels": {"a": "b"}}})
    core.delete_namespace("n")
    assert [(r.verb, r.resource, r.name) for r in kubesim.requests.mutations()] == [
        ("create", "namespaces", ""),
        ("patch", "namespaces", "n"),
        ("delete", "namespaces", "n"),
    ]


def test_discovery_is_a_get_without_resource(kubesim, raw):
    kubesim.requests.clear()
    raw("GET", "/apis/apps/v1")
    rec = _only(list(kubesim.requests))
    assert (rec.verb, rec.resource, rec.status) == ("get", "", 200)


def test_admin_requests_are_not_recorded(kubesim, raw):
    kubesim.requests.clear()
    raw("GET", "/_kubesim/requests")
    assert len(kubesim.requests) == 0


def test_clear_empties_the_log(core, kubesim):
    core.list_namespace()
    assert len(kubesim.requests) >= 1
    kubesim.requests.clear()
    assert list(kubesim.requests) == []


def test_the_log_keeps_only_the_newest_requests_up_to_its_cap():
    from kubesim import KubeSim

    with KubeSim(request_log_size=3) as sim:
        api = sim.api_client()
        core = client.CoreV1Api(api)
        for name in ("a", "b", "c", "d", "e"):
            with pytest.raises(ApiException):
                core.read_namespace(name)
        api.close()
        assert [r.name for r in sim.requests] == ["c", "d", "e"]
        assert sim.requests[-1].name == "e"
        assert [r.name for r in sim.requests[:2]] == ["c", "d"]
        assert sim.requests.dropped == 2
        sim.requests.clear()
        assert (len(sim.requests), sim.requests.dropped) == (0, 0)


def test_the_default_cap_is_generous():
    from kubesim.requestlog import RequestLog

    assert RequestLog().maxlen == 100_000
