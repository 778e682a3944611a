"""Watches through the real client (and raw HTTP for the wire format): synthetic ADDED events,
resourceVersion semantics, bookmarks only when asked, timeoutSeconds, 410 Expired as an
ERROR event, and filtered watches that see objects leave their selection."""

from __future__ import annotations

import http.client
import json

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from kubesim import KubeSim


def _pod(name: str, labels: dict | None = None) -> dict:
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]},
    }


def _until(stream, sentinel: str) -> list[dict]:
    """Events of a client watch up to (excluding) the one about the object named `sentinel`.

    Changes arrive in resourceVersion order, so writing the sentinel last proves that no
    other event was pending, without waiting for a timeout."""
    events = []
    for ev in stream:
        if ev["object"].metadata.name == sentinel:
            return events
        events.append(ev)
    raise AssertionError(f"the watch ended before {sentinel} appeared: {events}")


def _raw_watch(sim: KubeSim, path: str) -> tuple[http.client.HTTPResponse, list[dict]]:
    conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=10)
    conn.request("GET", path)
    resp = conn.getresponse()
    lines = [json.loads(line) for line in resp.read().splitlines() if line.strip()]
    conn.close()
    return resp, lines


def test_a_watch_without_version_starts_with_added_events_then_follows_changes(core, kubesim):
    kubesim.controllers.pause()
    core.create_namespaced_pod("default", _pod("a"))
    core.create_namespaced_pod("default", _pod("b"))
    w = watch.Watch()
    seen = []
    for ev in w.stream(core.list_namespaced_pod, "default", timeout_seconds=10):
        seen.append((ev["type"], ev["object"].metadata.name))
        if len(seen) == 2:
            core.create_namespaced_pod("default", _pod("c"))
            core.patch_namespaced_pod("a", "default", {"metadata": {"labels": {"x": "1"}}})
            core.delete_namespaced_pod("b", "default")
        if len(seen) == 5:
            w.stop()
    assert seen == [
        ("ADDED", "a"),
        ("ADDED", "b"),
        ("ADDED", "c"),
        ("MODIFIED", "a"),
        ("DELETED", "b"),
    ]


def test_a_watch_from_a_version_reports_only_later_changes(core, kubesim):
    kubesim.controllers.pause()
    core.create_namespaced_pod("default", _pod("old"))
    rv = core.list_namespaced_pod("default").metadata.resource_version
    core.create_namespaced_pod("default", _pod("new"))
    core.create_namespaced_pod("default", _pod("end"))
    stream = watch.Watch().stream(
        core.list_namespaced_pod, "default", resource_version=rv, timeout_seconds=10
    )
    assert [(e["type"], e["object"].metadata.name) for e in _until(stream, "end")] == [
        ("ADDED", "new")
    ]


def test_deleted_events_carry_the_last_state(core, kubesim):
    kubesim.controllers.pause()
    core.create_namespaced_pod("default", _pod("p", {"keep": "me"}))
    rv = core.list_namespaced_pod("default").metadata.resource_version
    core.delete_namespaced_pod("p", "default")  # unscheduled: removed at once
    core.create_namespaced_pod("default", _pod("end"))
    stream = watch.Watch().stream(
        core.list_namespaced_pod, "default", resource_version=rv, timeout_seconds=10
    )
    events = _until(stream, "end")
    assert [e["type"] for e in events] == ["DELETED"]
    gone = events[0]["object"]
    assert gone.metadata.labels == {"keep": "me"}
    assert int(gone.metadata.resource_version) > int(rv)


def test_a_filtered_watch_sees_objects_enter_and_leave_its_selection(core, kubesim):
    kubesim.controllers.pause()
    core.create_namespaced_pod("default", _pod("p", {"role": "primary"}))
    rv = core.list_namespaced_pod("default").metadata.resource_version
    core.patch_namespaced_pod("p", "default", {"metadata": {"labels": {"role": "replica"}}})
    core.patch_namespaced_pod("p", "default", {"metadata": {"labels": {"role": "primary"}}})
    core.create_namespaced_pod("default", _pod("end", {"role": "primary"}))
    stream = watch.Watch().stream(
        core.list_namespaced_pod,
        "default",
        label_selector="role=primary",
        resource_version=rv,
        timeout_seconds=10,
    )
    events = _until(stream, "end")
    assert [e["type"] for e in events] == ["DELETED", "ADDED"]


def test_bookmarks_come_only_when_asked_for():
    with KubeSim(
        ready_delay=0.02, termination_delay=0.02, tick=0.005, bookmark_interval=0.02
    ) as sim:
        core = client.CoreV1Api(sim.api_client())
        rv = core.list_namespaced_pod("default").metadata.resource_version
        plain = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=10)
        plain.request("GET", f"/api/v1/namespaces/default/pods?watch=true&resourceVersion={rv}")
        plain_resp = plain.getresponse()
        w = watch.Watch()
        bookmarks = []
        for ev in w.stream(
            core.list_namespaced_pod,
            "default",
            resource_version=rv,
            allow_watch_bookmarks=True,
            timeout_seconds=10,
        ):
            bookmarks.append(ev)
            if len(bookmarks) == 3:
                w.stop()
        assert {e["type"] for e in bookmarks} == {"BOOKMARK"}
        assert bookmarks[0]["raw_object"]["kind"] == "Pod"
        assert bookmarks[0]["raw_object"]["metadata"]["resourceVersion"] == rv
        # Meanwhile the watch that did not ask got nothing: its first event is the next change.
        core.create_namespaced_pod("default", _pod("end"))
        first = json.loads(plain_resp.readline())
        assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "end")
        plain.close()


def test_send_initial_events_ends_with_an_annotated_bookmark(kubesim, core):
    kubesim.controllers.pause()
    core.create_namespaced_pod("default", _pod("a"))
    conn = http.client.HTTPConnection("127.0.0.1", kubesim.port, timeout=10)
    conn.request(
        "GET",
        "/api/v1/namespaces/default/pods?watch=true&sendInitialEvents=true"
        "&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true",
    )
    resp = conn.getresponse()
    events = [json.loads(resp.readline()), json.loads(resp.readline())]
    conn.close()
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_a_too_old_version_gets_200_and_a_410_error_event(kubesim, core):
    kubesim.controllers.pause()
    core.create_namespaced_pod("default", _pod("a"))
    core.create_namespaced_pod("default", _pod("b"))
    kubesim.compact()
    resp, events = _raw_watch(
        kubesim, "/api/v1/namespaces/default/pods?watch=true&resourceVersion=2"
    )
    assert resp.status == 200
    assert resp.getheader("Transfer-Encoding") == "chunked"
    assert len(events) == 1
    assert events[0]["type"] == "ERROR"
    status = events[0]["object"]
    assert status["kind"] == "Status"
    assert status["code"] == 410
    assert status["reason"] == "Expired"
    assert status["message"].startswith("too old resource version: 2 (")


def test_the_client_raises_410_for_an_expired_watch(kubesim, core):
    kubesim.controllers.pause()
    core.create_namespaced_pod("default", _pod("a"))
    kubesim.compact()
    with pytest.raises(ApiException) as exc:
        list(
            watch.Watch().stream(
                core.list_namespaced_pod, "default", resource_version="1", timeout_seconds=5
            )
        )
    assert exc.value.status == 410
    assert "Expired: too old resource version" in exc.value.reason


def test_watch_across_all_namespaces_and_cluster_scoped_namespaces(kubesim, core):
    rv = core.list_namespace().metadata.resource_version
    core.create_namespace({"metadata": {"name": "extra"}})
    kubesim.controllers.pause()
    core.create_namespaced_pod("extra", _pod("p"))
    core.create_namespace({"metadata": {"name": "end"}})
    core.create_namespaced_pod("default", _pod("end"))
    ns_stream = watch.Watch().stream(core.list_namespace, resource_version=rv, timeout_seconds=10)
    ns_events = _until(ns_stream, "end")
    assert [(e["type"], e["object"].metadata.name) for e in ns_events] == [("ADDED", "extra")]
    pod_stream = watch.Watch().stream(
        core.list_pod_for_all_namespaces, resource_version=rv, timeout_seconds=10
    )
    pod_events = _until(pod_stream, "end")
    assert [(e["type"], e["object"].metadata.namespace) for e in pod_events] == [("ADDED", "extra")]


def test_timeout_seconds_ends_the_stream(kubesim, core):
    rv = str(kubesim.store.rv)
    events = list(watch.Watch().stream(core.list_namespace, resource_version=rv, timeout_seconds=1))
    assert events == []


@pytest.mark.parametrize("seconds", [10**10, 2**63 - 1])
def test_a_huge_timeout_seconds_is_a_watch_that_stays_open(kubesim, seconds):
    conn = http.client.HTTPConnection("127.0.0.1", kubesim.port, timeout=10)
    rv = kubesim.store.rv
    conn.request(
        "GET", f"/api/v1/namespaces?watch=true&resourceVersion={rv}&timeoutSeconds={seconds}"
    )
    resp = conn.getresponse()
    assert resp.status == 200
    kubesim.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: later}\n")
    event = json.loads(resp.readline())  # the stream is alive and delivers changes
    assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", "later")
    conn.close()


@pytest.mark.parametrize("text", [str(2**63), "1.5", "soon"])
def test_a_timeout_seconds_that_is_not_an_int64_is_a_bad_request(raw, text):
    status, _, body = raw("GET", f"/api/v1/namespaces?watch=true&timeoutSeconds={text}")
    assert status == 400
    assert body["message"] == f'invalid value for timeoutSeconds: "{text}"'
