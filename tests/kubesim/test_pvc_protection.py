"""PersistentVolumeClaims: the pvc-protection finalizer, Pending → Bound, a claim in use
staying Terminating until no scheduled pod (terminating ones included) references it, and the
stuck-finalizer fault."""

from __future__ import annotations

from kubernetes import client, watch
from kubesim_helpers import pod_ready


def _claim(name: str) -> dict:
    return {
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}}},
    }


def _pod_using(name: str, claim: str) -> dict:
    return {
        "metadata": {"name": name},
        "spec": {
            "containers": [{"name": "c", "image": "busybox:1.36"}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
        },
    }


def test_a_new_claim_is_protected_and_gets_bound(core, kubesim):
    pvc = core.create_namespaced_persistent_volume_claim("default", _claim("c"))
    assert pvc.metadata.finalizers == ["kubernetes.io/pvc-protection"]
    assert pvc.status.phase == "Pending"

    def bound():
        obj = kubesim.get("pvc", "default", "c")
        return obj if obj["status"]["phase"] == "Bound" else None

    obj = kubesim.wait_for(bound)
    assert obj["spec"]["volumeName"].startswith("pvc-")
    assert obj["status"]["capacity"] == {"storage": "2Gi"}


def test_a_claim_in_use_stays_terminating_until_its_pod_is_gone(core, kubesim):
    core.create_namespaced_persistent_volume_claim("default", _claim("c"))
    core.create_namespaced_pod("default", _pod_using("p", "c"))
    kubesim.wait_for(lambda: pod_ready(kubesim.get("pods", "default", "p")))
    deleted = core.delete_namespaced_persistent_volume_claim("c", "default")
    assert isinstance(deleted, client.V1PersistentVolumeClaim)
    assert deleted.metadata.deletion_timestamp is not None
    pvc = core.read_namespaced_persistent_volume_claim("c", "default")
    assert pvc.metadata.finalizers == ["kubernetes.io/pvc-protection"]
    rv = pvc.metadata.resource_version
    core.delete_namespaced_pod("p", "default")
    w = watch.Watch()
    deleted_after_pod = None
    for ev in w.stream(
        core.list_namespaced_persistent_volume_claim,
        "default",
        resource_version=rv,
        timeout_seconds=10,
    ):
        if ev["type"] == "DELETED":
            deleted_after_pod = kubesim.get("pods", "default", "p") is None
            w.stop()
    assert deleted_after_pod is not None, "the claim was never deleted"
    assert deleted_after_pod, "the claim went while its pod was still there"
    assert kubesim.get("pvc", "default", "c") is None


def test_a_terminating_pod_still_holds_its_claim(core, kubesim):
    core.create_namespaced_persistent_volume_claim("default", _claim("c"))
    core.create_namespaced_pod("default", _pod_using("p", "c"))
    kubesim.wait_for(lambda: pod_ready(kubesim.get("pods", "default", "p")))
    kubesim.slow_termination("default", "p", 30)
    core.delete_namespaced_pod("p", "default")
    core.delete_namespaced_persistent_volume_claim("c", "default")
    kubesim.wait_passes(2)  # the PVC-protection controller has seen both deletes
    assert kubesim.get("pods", "default", "p")["metadata"]["deletionTimestamp"]
    assert kubesim.get("pvc", "default", "c")["metadata"]["deletionTimestamp"]
    core.delete_namespaced_pod("p", "default", grace_period_seconds=0)
    kubesim.wait_for(lambda: kubesim.get("pvc", "default", "c") is None)


def test_a_free_claim_is_deleted_promptly(core, kubesim):
    core.create_namespaced_persistent_volume_claim("default", _claim("c"))
    core.delete_namespaced_persistent_volume_claim("c", "default")
    kubesim.wait_for(lambda: kubesim.get("pvc", "default", "c") is None)


def test_an_unscheduled_pod_does_not_hold_a_claim(core, kubesim):
    core.create_namespaced_persistent_volume_claim("default", _claim("c"))
    kubesim.controllers.pause()
    core.create_namespaced_pod("default", _pod_using("p", "c"))
    core.delete_namespaced_persistent_volume_claim("c", "default")
    kubesim.controllers.resume()
    kubesim.wait_for(lambda: kubesim.get("pvc", "default", "c") is None)
    assert "nodeName" not in kubesim.get("pods", "default", "p")["spec"]


def test_a_stuck_finalizer_keeps_a_claim_terminating_until_released(core, kubesim):
    core.create_namespaced_persistent_volume_claim("default", _claim("c"))
    kubesim.stuck_finalizer("default", "c")
    core.delete_namespaced_persistent_volume_claim("c", "default")
    kubesim.wait_passes(3)
    assert kubesim.get("pvc", "default", "c")["metadata"]["deletionTimestamp"]
    kubesim.stuck_finalizer("default", "c", stuck=False)
    kubesim.wait_for(lambda: kubesim.get("pvc", "default", "c") is None)


def test_removing_the_finalizer_by_hand_releases_a_terminating_claim(core, kubesim):
    core.create_namespaced_persistent_volume_claim("default", _claim("c"))
    kubesim.stuck_finalizer("default", "c")
    core.delete_namespaced_persistent_volume_claim("c", "default")
    core.patch_namespaced_persistent_volume_claim(
        "c", "default", {"metadata": {"finalizers": None}}
    )
    assert kubesim.get("pvc", "default", "c") is None


def test_a_pod_whose_claim_is_terminating_stays_pending_and_unscheduled(core, kubesim):
    core.create_namespaced_persistent_volume_claim("default", _claim("c"))
    kubesim.stuck_finalizer("default", "c")  # Terminating for as long as the test needs
    core.delete_namespaced_persistent_volume_claim("c", "default")
    core.create_namespaced_pod("default", _pod_using("p", "c"))  # no StatefulSet involved

    def unschedulable():
        pod = kubesim.get("pods", "default", "p")
        for c in pod["status"].get("conditions") or []:
            if c["type"] == "PodScheduled" and c["status"] == "False":
                return c
        return None

    cond = kubesim.wait_for(unschedulable)
    assert cond["reason"] == "Unschedulable"
    assert 'persistentvolumeclaim "c" is being deleted' in cond["message"]
    kubesim.wait_passes(2)
    pod = kubesim.get("pods", "default", "p")
    assert "nodeName" not in pod["spec"]
    assert pod["status"]["phase"] == "Pending"
    # Once the claim is gone the pod is still Pending: its claim is now missing.
    kubesim.stuck_finalizer("default", "c", stuck=False)
    kubesim.wait_for(lambda: kubesim.get("pvc", "default", "c") is None)
    kubesim.wait_for(lambda: 'persistentvolumeclaim "c" not found' in unschedulable()["message"])
    assert "nodeName" not in kubesim.get("pods", "default", "p")["spec"]
