"""The simulated scheduler and kubelet: Pending → scheduled → Running → Ready, pods waiting for
their claims, graceful and immediate deletion, and pods that never become Ready."""

from __future__ import annotations

from kubernetes import watch
from kubesim_helpers import pod_ready


def _pod(name: str, claim: str | None = None, grace: int | None = None) -> dict:
    spec: dict = {"containers": [{"name": "c", "image": "busybox:1.36"}]}
    if claim:
        spec["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    return {"metadata": {"name": name}, "spec": spec}


def _claim(name: str) -> dict:
    return {
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }


def test_a_pod_is_scheduled_then_running_then_ready(core, kubesim):
    rv = core.list_namespaced_pod("default").metadata.resource_version
    core.create_namespaced_pod("default", _pod("p"))
    states = []
    w = watch.Watch()
    for ev in w.stream(
        core.list_namespaced_pod, "default", resource_version=rv, timeout_seconds=10
    ):
        pod = ev["object"]
        states.append((pod.status.phase, bool(pod.spec.node_name), pod_ready(ev["raw_object"])))
        if states[-1][2]:
            w.stop()
    assert states[0] == ("Pending", False, False)
    assert ("Pending", True, False) in states
    assert ("Running", True, False) in states
    assert states[-1] == ("Running", True, True)
    pod = core.read_namespaced_pod("p", "default")
    assert pod.status.pod_ip
    assert pod.status.start_time is not None
    assert pod.status.container_statuses[0].ready is True
    assert {c.type for c in pod.status.conditions} >= {
        "PodScheduled",
        "Initialized",
        "ContainersReady",
        "Ready",
    }


def test_a_pod_waits_unschedulable_for_a_missing_claim(core, kubesim):
    core.create_namespaced_pod("default", _pod("p", claim="later"))

    def unschedulable():
        pod = kubesim.get("pods", "default", "p")
        conds = {c["type"]: c for c in pod["status"].get("conditions") or []}
        return conds.get("PodScheduled", {}).get("reason") == "Unschedulable" and pod

    pod = kubesim.wait_for(unschedulable)
    assert "nodeName" not in pod["spec"]
    message = {c["type"]: c for c in pod["status"]["conditions"]}["PodScheduled"]["message"]
    assert 'persistentvolumeclaim "later" not found' in message
    core.create_namespaced_persistent_volume_claim("default", _claim("later"))
    kubesim.wait_for(lambda: pod_ready(kubesim.get("pods", "default", "p")))


def test_graceful_deletion_keeps_the_pod_until_the_kubelet_is_done(core, kubesim):
    core.create_namespaced_pod("default", _pod("p"))
    kubesim.wait_for(lambda: pod_ready(kubesim.get("pods", "default", "p")))
    rv = core.list_namespaced_pod("default").metadata.resource_version
    core.delete_namespaced_pod("p", "default")
    kubesim.wait_for(lambda: kubesim.get("pods", "default", "p") is None)
    w = watch.Watch()
    types = []
    for ev in w.stream(
        core.list_namespaced_pod, "default", resource_version=rv, timeout_seconds=10
    ):
        types.append(ev["type"])
        if ev["type"] == "DELETED":
            w.stop()
    assert types[0] == "MODIFIED"  # deletionTimestamp set, still listed
    assert types[-1] == "DELETED"


def test_an_unscheduled_pod_is_deleted_at_once_whatever_its_grace(core, kubesim):
    kubesim.controllers.pause()
    core.create_namespaced_pod("default", _pod("p", grace=60))
    core.delete_namespaced_pod("p", "default")
    assert kubesim.get("pods", "default", "p") is None


def test_a_second_delete_with_grace_zero_cuts_termination_short(core, kubesim):
    core.create_namespaced_pod("default", _pod("p"))
    kubesim.wait_for(lambda: pod_ready(kubesim.get("pods", "default", "p")))
    kubesim.slow_termination("default", "p", 60)
    core.delete_namespaced_pod("p", "default")
    assert kubesim.get("pods", "default", "p")["metadata"]["deletionTimestamp"]
    core.delete_namespaced_pod("p", "default", grace_period_seconds=0)
    assert kubesim.get("pods", "default", "p") is None


def test_a_pod_marked_never_ready_runs_but_stays_unready(core, kubesim):
    kubesim.pod_never_ready("default", "p")
    core.create_namespaced_pod("default", _pod("p"))

    def running():
        pod = kubesim.get("pods", "default", "p")
        return pod if pod["status"].get("phase") == "Running" else None

    pod = kubesim.wait_for(running)
    conds = {c["type"]: c for c in pod["status"]["conditions"]}
    assert conds["Ready"]["status"] == "False"
    assert conds["Ready"]["reason"] == "ContainersNotReady"
    kubesim.pod_never_ready("default", "p", never=False)
    kubesim.wait_for(lambda: pod_ready(kubesim.get("pods", "default", "p")))


def test_a_ready_pod_marked_never_ready_loses_readiness(core, kubesim):
    core.create_namespaced_pod("default", _pod("p"))
    kubesim.wait_for(lambda: pod_ready(kubesim.get("pods", "default", "p")))
    kubesim.pod_never_ready("default", "p")
    kubesim.wait_for(lambda: not pod_ready(kubesim.get("pods", "default", "p")))


def test_pod_phase_field_selector_finds_running_pods(core, kubesim):
    core.create_namespaced_pod("default", _pod("p"))
    kubesim.wait_for(lambda: pod_ready(kubesim.get("pods", "default", "p")))
    running = core.list_namespaced_pod("default", field_selector="status.phase=Running").items
    assert [p.metadata.name for p in running] == ["p"]
    assert core.list_namespaced_pod("default", field_selector="status.phase=Pending").items == []
