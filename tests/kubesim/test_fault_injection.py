"""Injected faults, seen through the real client: statuses with real Status bodies and
Retry-After, delays, hangs, dropped connections, probabilities, watch faults and paused
controllers — and what urllib3 and the client make of each (the gateway must cope with it)."""

from __future__ import annotations

import http.client
import json

import pytest
import urllib3
from kubernetes import watch
from kubernetes.client.exceptions import ApiException
from kubesim_helpers import deployment_yaml, pod_ready, statefulset_yaml

SCALE = r"/deployments/web/scale$"
WEB = r"/deployments/web$"


@pytest.fixture
def web(kubesim):
    """A Deployment `web` with both its pods Ready (the controllers create them a little later)."""
    kubesim.apply(deployment_yaml(replicas=2))
    kubesim.wait_for(
        lambda: sum(pod_ready(p) for p in kubesim.list("pods", "default", "app=web")) == 2
    )
    return kubesim


def test_a_503_on_patch_reaches_the_caller_with_retry_after(apps, web):
    rule = web.faults.add(method="PATCH", path=SCALE, status=503, retry_after=7, times=1)
    with pytest.raises(ApiException) as exc:
        apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 3}})
    assert exc.value.status == 503
    assert exc.value.headers["Retry-After"] == "7"
    body = json.loads(exc.value.body)
    assert body["reason"] == "ServiceUnavailable"
    assert body["details"]["retryAfterSeconds"] == 7
    assert rule.fired == 1
    assert web.get("deployments", "default", "web")["spec"]["replicas"] == 2  # nothing applied
    apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 3}})
    assert web.get("deployments", "default", "web")["spec"]["replicas"] == 3
    assert rule.fired == 1  # exhausted after `times`


def test_urllib3_retries_a_get_answered_429_with_retry_after(apps, web):
    rule = web.faults.add(method="GET", path=WEB, status=429, retry_after=0, times=2)
    dep = apps.read_namespaced_deployment("web", "default")
    assert dep.metadata.name == "web"
    assert rule.fired == 2
    assert [r.status for r in web.requests.filter(method="GET", name="web")] == [429, 429, 200]


def test_a_429_carries_retry_after_one_second_unless_told_otherwise(raw, web):
    web.faults.add(method="GET", path=WEB, status=429, times=1)
    status, headers, body = raw("GET", "/apis/apps/v1/namespaces/default/deployments/web")
    assert (status, headers["retry-after"]) == (429, "1")
    assert (body["reason"], body["details"]["retryAfterSeconds"]) == ("TooManyRequests", 1)
    web.faults.add(method="GET", path=WEB, status=429, retry_after=None, times=1)
    status, headers, body = raw("GET", "/apis/apps/v1/namespaces/default/deployments/web")
    assert status == 429
    assert "retry-after" not in headers  # as the eviction API's 429
    assert body["details"] == {}
    web.faults.add(method="GET", path=WEB, status=503, times=1)
    assert "retry-after" not in raw("GET", "/apis/apps/v1/namespaces/default/deployments/web")[1]


def test_a_plain_429_is_the_text_the_throttling_filters_send(raw, apps, web):
    rule = web.faults.add(method="PATCH", path=SCALE, status=429, plain=True, times=1)
    with pytest.raises(ApiException) as exc:
        apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 3}})
    assert exc.value.status == 429
    assert exc.value.body == "Too many requests, please try again later.\n"
    assert exc.value.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert exc.value.headers["X-Content-Type-Options"] == "nosniff"
    assert exc.value.headers["Retry-After"] == "1"
    assert rule.fired == 1
    assert web.get("deployments", "default", "web")["spec"]["replicas"] == 2
    web.faults.add(method="GET", path=WEB, status=503, plain=True, message="busy", times=1)
    status, headers, body = raw("GET", "/apis/apps/v1/namespaces/default/deployments/web")
    assert (status, body, headers["content-type"]) == (503, "busy\n", "text/plain; charset=utf-8")


def test_urllib3_retries_a_get_answered_with_a_plain_429(apps, web):
    rule = web.faults.add(method="GET", path=WEB, status=429, plain=True, retry_after=0, times=2)
    assert apps.read_namespaced_deployment("web", "default").metadata.name == "web"
    assert rule.fired == 2


def test_plain_needs_a_status_and_retry_after_cannot_be_negative():
    from kubesim.faults import Faults

    with pytest.raises(ValueError, match="plain"):
        Faults().add(path="/", plain=True, delay=1)
    with pytest.raises(ValueError, match="retry_after"):
        Faults().add(path="/", status=429, retry_after=-1)


def test_a_500_without_retry_after_is_not_retried(apps, web):
    web.faults.add(method="GET", path=WEB, status=500, times=1)
    with pytest.raises(ApiException) as exc:
        apps.read_namespaced_deployment("web", "default")
    assert exc.value.status == 500
    assert json.loads(exc.value.body)["reason"] == "InternalError"
    assert len(web.requests.filter(method="GET", name="web")) == 1


def test_a_forbidden_fault_uses_the_given_message(apps, web):
    message = (
        'deployments.apps "web" is forbidden: User "system:serviceaccount:ops:apiops" cannot '
        'patch resource "deployments/scale" in API group "apps" in the namespace "default"'
    )
    web.faults.add(method="PATCH", path=SCALE, status=403, message=message)
    with pytest.raises(ApiException) as exc:
        apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 3}})
    body = json.loads(exc.value.body)
    assert (exc.value.status, body["reason"], body["message"]) == (403, "Forbidden", message)


def test_a_delay_longer_than_the_client_timeout_times_out_a_patch(apps, web):
    rule = web.faults.add(method="PATCH", path=SCALE, delay=0.3, times=1)
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        apps.patch_namespaced_deployment_scale(
            "web", "default", {"spec": {"replicas": 3}}, _request_timeout=0.05
        )
    # The server still finishes the request after the delay, as a real one would.
    web.wait_for(lambda: web.get("deployments", "default", "web")["spec"]["replicas"] == 3)
    assert rule.fired == 1


def test_a_delayed_request_is_otherwise_served_normally(apps, web):
    rule = web.faults.add(method="GET", path=WEB, delay=0.05)
    assert apps.read_namespaced_deployment("web", "default").metadata.name == "web"
    assert rule.fired == 1


def test_a_hanging_get_ends_in_max_retry_error_not_api_exception(apps, web):
    web.faults.add(method="GET", path=WEB, hang=True)
    with pytest.raises(urllib3.exceptions.MaxRetryError) as exc:
        apps.read_namespaced_deployment("web", "default", _request_timeout=0.05)
    assert isinstance(exc.value.reason, urllib3.exceptions.ReadTimeoutError)
    assert {r.status for r in web.requests.filter(name="web")} == {0}


def test_a_dropped_patch_raises_a_protocol_error(apps, web):
    web.faults.add(method="PATCH", path=SCALE, drop=True, times=1)
    with pytest.raises(urllib3.exceptions.ProtocolError):
        apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 3}})
    assert web.get("deployments", "default", "web")["spec"]["replicas"] == 2
    apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 3}})


def test_a_dropped_get_is_retried_until_urllib3_gives_up(apps, web):
    rule = web.faults.add(method="GET", path=WEB, drop=True)
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        apps.read_namespaced_deployment("web", "default")
    assert rule.fired == 4  # the first try and urllib3's three retries


def test_a_patch_dropped_after_it_was_applied_changes_the_object_but_gets_no_answer(apps, web):
    rule = web.faults.add(method="PATCH", path=SCALE, drop_after=True, times=1)
    with pytest.raises(urllib3.exceptions.ProtocolError):
        apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 3}})
    assert web.get("deployments", "default", "web")["spec"]["replicas"] == 3  # applied
    assert rule.fired == 1
    assert [r.status for r in web.requests.filter(method="PATCH")] == [0]  # nothing answered


def test_a_delete_dropped_after_it_was_applied_deletes_the_pod(raw, web):
    pod = web.list("pods", "default", label_selector="app=web")[0]["metadata"]["name"]
    web.faults.add(method="DELETE", path=rf"/pods/{pod}$", drop_after=True, times=1)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        raw("DELETE", f"/api/v1/namespaces/default/pods/{pod}")
    web.wait_for(
        lambda: (
            (p := web.get("pods", "default", pod)) is None or p["metadata"].get("deletionTimestamp")
        )
    )


def test_a_refused_request_dropped_after_sends_no_error_either(raw, web):
    web.faults.add(method="DELETE", path=r"/pods/", drop_after=True, times=1)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        raw("DELETE", "/api/v1/namespaces/default/pods/no-such-pod")
    assert [r.status for r in web.requests.filter(method="DELETE")] == [0]


def test_drop_after_cannot_combine_with_effects_that_skip_the_request():
    from kubesim.faults import Faults

    for other in ({"status": 500}, {"drop": True}, {"hang": True}):
        with pytest.raises(ValueError, match="drop_after"):
            Faults().add(method="DELETE", path="/", drop_after=True, **other)
    assert Faults().add_from_dict({"path": "/", "drop_after": True}).drop_after


def test_a_probability_fires_on_a_share_of_requests(kubesim):
    rule = kubesim.faults.add(method="GET", path=r"^/version$", status=503, probability=0.5)
    statuses = []
    conn = http.client.HTTPConnection("127.0.0.1", kubesim.port, timeout=5)
    for _ in range(200):
        conn.request("GET", "/version")
        resp = conn.getresponse()
        resp.read()
        statuses.append(resp.status)
    conn.close()
    assert statuses.count(503) == rule.fired
    assert 40 < rule.fired < 160  # P(outside) < 1e-15 for a fair coin
    assert set(statuses) == {200, 503}


def test_a_rule_matches_method_and_path_only(apps, core, web):
    rule = web.faults.add(method="PATCH", path=SCALE, status=503)
    apps.read_namespaced_deployment_scale("web", "default")  # GET: not matched
    apps.patch_namespaced_deployment("web", "default", {"metadata": {"labels": {"a": "b"}}})
    assert rule.fired == 0
    web.faults.remove(rule)
    apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 1}})


def test_a_watch_closed_after_k_events_ends_the_stream(core, kubesim):
    kubesim.controllers.pause()
    for name in ("a", "b", "c"):
        core.create_namespaced_pod(
            "default",
            {"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
        )
    rule = kubesim.faults.add(method="GET", path=r"/pods$", watch_close_after=2, times=1)
    events = list(watch.Watch().stream(core.list_namespaced_pod, "default", timeout_seconds=30))
    assert [e["object"].metadata.name for e in events] == ["a", "b"]
    assert rule.fired == 1
    assert core.list_namespaced_pod("default").items  # lists are not affected


def test_a_watch_expired_by_fault_raises_410_in_the_client(core, kubesim):
    kubesim.faults.add(method="GET", path=r"/pods$", watch_expire=True)
    with pytest.raises(ApiException) as exc:
        list(watch.Watch().stream(core.list_namespaced_pod, "default", timeout_seconds=30))
    assert exc.value.status == 410


def test_a_stalled_watch_delivers_nothing_until_its_timeout(core, kubesim):
    kubesim.faults.add(method="GET", path=r"/pods$", watch_stall=True)
    kubesim.controllers.pause()
    core.create_namespaced_pod(
        "default",
        {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
    )
    assert list(watch.Watch().stream(core.list_namespaced_pod, "default", timeout_seconds=1)) == []


def test_paused_controllers_leave_the_cluster_frozen_until_resumed(kubesim):
    kubesim.controllers.pause()
    passes = kubesim.controllers.passes
    kubesim.apply(statefulset_yaml(replicas=1))
    kubesim.apply(deployment_yaml(replicas=1))
    assert kubesim.controllers.passes == passes
    assert kubesim.list("pods") == []
    kubesim.controllers.resume()
    kubesim.wait_for(lambda: len(kubesim.list("pods")) == 2)


def test_faults_need_an_effect():
    from kubesim.faults import Faults

    with pytest.raises(ValueError, match="needs an effect"):
        Faults().add(method="GET", path="/")
