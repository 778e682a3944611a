"""The Python API other tests build on (apply, create, patch, get, list, wait_for, knobs), the
fixtures, and the transport: keep-alive connections with TCP_NODELAY on every accepted
socket."""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path

import pytest
from kubesim_helpers import deployment_yaml, pod_ready

from kubesim import ApiError, KubeSim


def test_the_demo_fixture_serves_the_demo_cluster_ready(kubesim_demo):
    sim = kubesim_demo
    assert {ns["metadata"]["name"] for ns in sim.list("namespaces")} >= {
        "prod",
        "staging",
        "kube-system",
    }
    for ns in ("prod", "staging"):
        sts = sim.get("statefulsets", ns, "postgres")
        assert sts["spec"]["replicas"] == 3
        assert sts["spec"]["serviceName"] == "postgres"
        assert sts["spec"]["selector"]["matchLabels"] == {"app": "postgres"}
        assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
        assert sts["status"]["readyReplicas"] == 3
        assert sim.get("deployments", ns, "web")["spec"]["replicas"] == 2
        assert len(sim.list("pods", ns, label_selector="app=web")) == 2
    assert sim.get("deployments", "kube-system", "coredns")["spec"]["replicas"] == 2
    assert all(pod_ready(p) for p in sim.list("pods"))


def test_apply_replaces_existing_objects_keeping_their_identity(kubesim):
    first = kubesim.apply(deployment_yaml(replicas=1))[0]
    second = kubesim.apply(deployment_yaml(replicas=4))[0]
    assert second["metadata"]["uid"] == first["metadata"]["uid"]
    assert second["spec"]["replicas"] == 4
    assert second["metadata"]["generation"] == 2


def test_apply_refuses_what_the_api_would_refuse(kubesim):
    with pytest.raises(ApiError) as exc:
        kubesim.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: Bad_Name}\n")
    assert exc.value.code == 422
    with pytest.raises(ValueError, match="does not serve"):
        kubesim.apply("apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\n")


def test_load_file_applies_a_manifest_file(kubesim, tmp_path):
    path = tmp_path / "web.yaml"
    path.write_text(deployment_yaml())
    kubesim.load_file(path)
    assert kubesim.get("deploy", "default", "web") is not None


def test_get_and_list_return_copies(kubesim):
    kubesim.apply(deployment_yaml())
    copy = kubesim.get("deployments", "default", "web")
    copy["spec"]["replicas"] = 99
    assert kubesim.get("deployments", "default", "web")["spec"]["replicas"] == 2
    assert kubesim.get("deployments", "default", "nope") is None
    listed = kubesim.list("deploy", "default", label_selector="app=web")
    assert [d["metadata"]["name"] for d in listed] == ["web"]


def test_wait_for_returns_the_value_or_raises_assertion_error(kubesim):
    assert kubesim.wait_for(lambda: 42, timeout=0.1) == 42
    with pytest.raises(AssertionError, match="never"):
        kubesim.wait_for(lambda: False, timeout=0.05, message="never")


def test_set_delays_changes_how_long_pods_take(kubesim):
    kubesim.set_delays(ready_delay=30)
    kubesim.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"
        "spec: {containers: [{name: c, image: x}]}\n"
    )
    with pytest.raises(AssertionError):  # ten times the fixture's ready delay: still not up
        kubesim.wait_for(
            lambda: kubesim.get("pods", "default", "p")["status"]["phase"] != "Pending",
            timeout=0.2,
        )
    kubesim.set_delays(ready_delay=0)
    kubesim.wait_for(lambda: pod_ready(kubesim.get("pods", "default", "p")))


def test_the_kubeconfig_is_written_where_asked(tmp_path):
    path = tmp_path / "kc"
    with KubeSim(kubeconfig_path=path) as sim:
        assert sim.kubeconfig_path == str(path)
        assert sim.url in path.read_text()


def test_connections_are_kept_alive_with_tcp_nodelay(kubesim):
    conn = http.client.HTTPConnection("127.0.0.1", kubesim.port, timeout=5)
    for _ in range(3):
        conn.request("GET", "/api/v1/namespaces")
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200
        assert resp.getheader("Connection") != "close"
    server_side = list(kubesim._server._conns)
    assert len(server_side) == 1  # three requests, one connection
    assert server_side[0].getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    conn.close()


def test_stop_ends_open_watches_and_hanging_requests():
    sim = KubeSim().start()
    sim.faults.add(method="GET", path="^/version$", hang=True)
    hanging = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=10)
    hanging.request("GET", "/version")
    watching = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=10)
    watching.request("GET", "/api/v1/namespaces?watch=true")
    watch_resp = watching.getresponse()
    sim.wait_for(lambda: len(sim.requests) == 2)
    sim.stop()
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        hanging.getresponse()
    watch_resp.read()  # the chunked stream ends instead of blocking for ever


def test_a_stopped_simulator_starts_again_with_its_objects_on_its_port():
    sim = KubeSim(ready_delay=0.02, termination_delay=0.02, tick=0.005).start()
    try:
        sim.apply(deployment_yaml(replicas=1))
        sim.wait_for(lambda: len(sim.list("pods", "default", "app=web")) == 1)
        port = sim.port
        sim.stop()

        sim.start()

        assert sim.port == port
        assert sim.url in Path(sim.kubeconfig_path).read_text()
        # The controllers run again...
        sim.apply(deployment_yaml(replicas=3))
        sim.wait_for(
            lambda: sum(pod_ready(p) for p in sim.list("pods", "default", "app=web")) == 3,
            message="no controller acts after a restart",
        )
        # ...and a watch waits for changes instead of ending at once (it saw `stopping`).
        conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=10)
        rv = sim.store.rv
        conn.request("GET", f"/api/v1/namespaces?watch=true&resourceVersion={rv}")
        resp = conn.getresponse()
        sim.apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: after-restart}\n")
        event = json.loads(resp.readline())
        assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", "after-restart")
        conn.close()
    finally:
        sim.stop()


def test_wait_passes_waits_for_whole_passes_that_start_after_the_call(kubesim):
    before = kubesim.controllers.passes
    assert kubesim.wait_passes(3) >= before + 3  # runs them even though nothing changed
    kubesim.controllers.pause()
    with pytest.raises(AssertionError, match="paused"):
        kubesim.wait_passes(timeout=1)


def test_an_idle_fixture_simulator_runs_no_controller_passes(kubesim_demo):
    passes = kubesim_demo.wait_passes(1)
    # The safety-net tick is 0.5 s: in the next 0.1 s nothing changes and nothing is due.
    with pytest.raises(AssertionError):
        kubesim_demo.wait_for(lambda: kubesim_demo.controllers.passes > passes, timeout=0.1)


def test_changes_timers_and_knobs_drive_the_controllers_without_the_tick():
    with KubeSim(ready_delay=0.02, termination_delay=0.02, tick=3600) as sim:
        sim.apply(deployment_yaml(replicas=2))  # a write, then readiness timers
        sim.wait_for(lambda: sum(pod_ready(p) for p in sim.list("pods", "default", "app=web")) == 2)
        pod = sim.list("pods", "default", "app=web")[0]["metadata"]["name"]
        sim.pod_never_ready("default", pod)  # a knob: no write, only a kick
        sim.wait_for(lambda: not pod_ready(sim.get("pods", "default", pod)))
        sim.controllers.pause()
        sim.pod_never_ready("default", pod, never=False)
        sim.controllers.resume()  # resuming runs a pass too
        sim.wait_for(lambda: pod_ready(sim.get("pods", "default", pod)))


def test_create_and_patch_go_through_the_api_like_a_client(kubesim):
    created = kubesim.create("cm", "default", {"metadata": {"name": "c"}, "data": {"a": "1"}})
    assert created["metadata"]["uid"]
    with pytest.raises(ApiError) as exc:
        kubesim.create("configmaps", None, {"metadata": {"name": "c"}})
    assert exc.value.code == 409  # the namespace defaults to `default`: it already exists there
    merged = kubesim.patch("cm", "default", "c", {"data": {"a": None, "b": "2"}}, "merge")
    assert merged["data"] == {"b": "2"}
    patched = kubesim.patch(
        "cm", "default", "c", [{"op": "add", "path": "/data/c", "value": "3"}], "json"
    )
    assert patched["data"] == {"b": "2", "c": "3"}
    strategic = kubesim.patch("cm", "default", "c", {"metadata": {"labels": {"role": "x"}}})
    assert strategic["metadata"]["labels"] == {"role": "x"}
    versions = [
        int(o["metadata"]["resourceVersion"]) for o in (created, merged, patched, strategic)
    ]
    assert versions == sorted(set(versions))
    with pytest.raises(ApiError) as exc:
        kubesim.patch("cm", "default", "c", {"metadata": {"labels": {"role": "not valid"}}})
    assert exc.value.code == 422
    assert kubesim.get("cm", "default", "c")["metadata"]["labels"] == {"role": "x"}
    assert kubesim.requests.mutations() == []  # not HTTP requests: nothing is logged
