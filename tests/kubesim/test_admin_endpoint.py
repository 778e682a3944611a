"""The `/_kubesim/` admin endpoint: the request log, faults, run-time loading and controller
knobs over HTTP, for processes that do not share the simulator's Python objects."""

from __future__ import annotations

from kubesim_helpers import deployment_yaml, pod_ready


def test_the_request_log_is_readable_and_clearable_over_http(core, kubesim, raw):
    core.list_namespace()
    status, _, body = raw("GET", "/_kubesim/requests")
    assert status == 200
    assert body["items"][-1]["verb"] == "list"
    assert body["items"][-1]["resource"] == "namespaces"
    assert set(body["items"][-1]) >= {
        "method",
        "path",
        "query",
        "verb",
        "resource",
        "subresource",
        "namespace",
        "name",
        "status",
        "api_group",
    }
    assert raw("DELETE", "/_kubesim/requests")[0] == 200
    assert raw("GET", "/_kubesim/requests")[2]["items"] == []


def test_faults_can_be_added_listed_and_cleared_over_http(kubesim, raw):
    status, _, rule = raw(
        "POST",
        "/_kubesim/faults",
        {"method": "GET", "path": "^/version$", "status": 429, "retry_after": 3},
    )
    assert status == 201
    status, headers, body = raw("GET", "/version")
    assert status == 429
    assert headers["retry-after"] == "3"
    assert body["reason"] == "TooManyRequests"
    listed = raw("GET", "/_kubesim/faults")[2]["items"]
    assert [(r["id"], r["fired"]) for r in listed] == [(rule["id"], 1)]
    raw("DELETE", "/_kubesim/faults")
    assert raw("GET", "/version")[0] == 200


def test_a_plain_429_fault_over_http_and_retry_after_null_for_none(kubesim, raw):
    raw("POST", "/_kubesim/faults", {"path": "^/version$", "status": 429, "plain": True})
    status, headers, body = raw("GET", "/version")
    assert (status, body, headers["retry-after"]) == (
        429,
        "Too many requests, please try again later.\n",
        "1",
    )
    raw("DELETE", "/_kubesim/faults")
    raw("POST", "/_kubesim/faults", {"path": "^/version$", "status": 429, "retry_after": None})
    status, headers, _ = raw("GET", "/version")
    assert status == 429
    assert "retry-after" not in headers


def test_a_bad_fault_is_a_400_with_a_reason(raw):
    status, _, body = raw(
        "POST", "/_kubesim/faults", {"method": "GET", "path": "/", "colour": "red"}
    )
    assert status == 400
    assert "colour" in body["error"]


def test_manifests_can_be_applied_at_run_time(kubesim, raw):
    status, _, body = raw(
        "POST", "/_kubesim/apply", deployment_yaml(replicas=1), {"Content-Type": "application/yaml"}
    )
    assert status == 200
    assert body["items"] == [
        {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "default", "name": "web"}
    ]
    kubesim.wait_for(lambda: len(kubesim.list("pods", "default", "app=web")) == 1)


def test_an_invalid_manifest_is_refused_with_the_api_status(kubesim, raw):
    bad = "apiVersion: v1\nkind: Namespace\nmetadata: {name: Not_Valid}\n"
    status, _, body = raw("POST", "/_kubesim/apply", bad, {"Content-Type": "application/yaml"})
    assert status == 422
    assert body["reason"] == "Invalid"


def test_controllers_pause_and_resume_over_http(kubesim, raw):
    assert raw("POST", "/_kubesim/controllers/pause")[2] == {"paused": True}
    assert kubesim.controllers.paused
    assert raw("POST", "/_kubesim/controllers/resume")[2] == {"paused": False}
    assert not kubesim.controllers.paused


def test_pod_and_claim_knobs_over_http(core, kubesim, raw):
    assert raw("POST", "/_kubesim/pods/default/p/never-ready")[0] == 200
    core.create_namespaced_pod(
        "default",
        {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
    )
    kubesim.wait_for(
        lambda: kubesim.get("pods", "default", "p")["status"].get("phase") == "Running"
    )
    assert not pod_ready(kubesim.get("pods", "default", "p"))
    raw("DELETE", "/_kubesim/pods/default/p/never-ready")
    kubesim.wait_for(lambda: pod_ready(kubesim.get("pods", "default", "p")))
    assert raw("POST", "/_kubesim/persistentvolumeclaims/default/c/stuck-finalizer")[0] == 200
    assert ("default", "c") in kubesim.knobs.stuck_finalizers
    assert raw("POST", "/_kubesim/delays", {"ready_delay": 0.5})[2]["ready_delay"] == 0.5


def test_unknown_admin_routes_are_404(raw):
    assert raw("GET", "/_kubesim/nothing")[0] == 404
