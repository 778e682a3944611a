"""The Deployment controller (pods named `<deploy>-<hash>-<suffix>`, status, scale, replacement
and rollouts) and the HorizontalPodAutoscaler that fights a manual scale."""

from __future__ import annotations

import re

from kubesim_helpers import deployment_yaml, pod_ready


def _settled(sim, name="web", ns="default"):
    """The deployment once its status reflects its spec and every wanted pod is Ready."""

    def check():
        dep = sim.get("deployments", ns, name)
        status = dep.get("status") or {}
        want = dep["spec"]["replicas"]
        done = (
            status.get("observedGeneration") == dep["metadata"]["generation"]
            and status.get("readyReplicas", 0) == want
            and status.get("replicas", 0) == want
            and status.get("updatedReplicas", 0) == want
        )
        return dep if done else None

    return sim.wait_for(check, timeout=10)


def test_pods_are_named_after_the_deployment_and_template_hash(kubesim):
    kubesim.apply(deployment_yaml(replicas=3))
    _settled(kubesim)
    pods = kubesim.list("pods", "default", "app=web")
    assert len(pods) == 3
    hashes = {p["metadata"]["labels"]["pod-template-hash"] for p in pods}
    assert len(hashes) == 1
    (pod_hash,) = hashes
    for pod in pods:
        assert re.fullmatch(
            rf"web-{pod_hash}-[bcdfghjklmnpqrstvwxz2456789]{{5}}", pod["metadata"]["name"]
        )
        owner = pod["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["controller"]) == (
            "ReplicaSet",
            f"web-{pod_hash}",
            True,
        )


def test_status_reports_replicas_and_conditions(kubesim):
    kubesim.apply(deployment_yaml(replicas=2))
    dep = _settled(kubesim)
    status = dep["status"]
    assert status["availableReplicas"] == 2
    assert "unavailableReplicas" not in status
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Available"]["status"] == "True"
    assert conditions["Progressing"]["reason"] == "NewReplicaSetAvailable"
    assert dep["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"


def test_scaling_through_the_client_adds_and_removes_pods(apps, kubesim):
    kubesim.apply(deployment_yaml(replicas=2))
    _settled(kubesim)
    apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 4}})
    _settled(kubesim)
    assert len(kubesim.list("pods", "default", "app=web")) == 4
    apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 1}})
    kubesim.wait_for(lambda: len(kubesim.list("pods", "default", "app=web")) == 1)
    assert _settled(kubesim)["status"]["replicas"] == 1


def test_a_deleted_pod_is_replaced_while_it_terminates(core, kubesim):
    kubesim.apply(deployment_yaml(replicas=2))
    _settled(kubesim)
    victim = kubesim.list("pods", "default", "app=web")[0]["metadata"]["name"]
    kubesim.slow_termination("default", victim, 30)
    core.delete_namespaced_pod(victim, "default")

    def replaced():
        pods = kubesim.list("pods", "default", "app=web")
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        return len(pods) == 3 and len(live) == 2 and all(pod_ready(p) for p in live)

    kubesim.wait_for(replaced)
    assert kubesim.get("pods", "default", victim)["metadata"]["deletionTimestamp"]
    assert _settled(kubesim)["status"]["replicas"] == 2  # terminating pods do not count here


def test_a_template_change_rolls_out_a_new_hash(apps, kubesim):
    kubesim.apply(deployment_yaml(replicas=2))
    _settled(kubesim)
    old_hash = kubesim.list("pods", "default", "app=web")[0]["metadata"]["labels"][
        "pod-template-hash"
    ]
    patch = {
        "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.28"}]}}}
    }
    apps.patch_namespaced_deployment("web", "default", patch)
    dep = _settled(kubesim)
    kubesim.wait_for(lambda: len(kubesim.list("pods", "default", "app=web")) == 2)
    pods = kubesim.list("pods", "default", "app=web")
    assert {p["metadata"]["labels"]["pod-template-hash"] for p in pods} != {old_hash}
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {"nginx:1.28"}
    assert dep["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"


HPA = """
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: default}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 2
  maxReplicas: 3
"""


def test_an_hpa_pulls_a_manual_scale_back_inside_its_bounds(apps, kubesim):
    kubesim.apply(deployment_yaml(replicas=2))
    kubesim.apply(HPA)
    apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 6}})
    kubesim.wait_for(lambda: kubesim.get("deployments", "default", "web")["spec"]["replicas"] == 3)

    def scaled_by_hpa():
        hpa = kubesim.get("hpa", "default", "web")
        return hpa if hpa["status"].get("lastScaleTime") else None

    hpa = kubesim.wait_for(scaled_by_hpa)
    assert hpa["status"]["desiredReplicas"] == 3


def test_an_hpa_leaves_a_target_scaled_to_zero_alone(apps, kubesim):
    kubesim.apply(deployment_yaml(replicas=2))
    kubesim.apply(HPA)
    apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 0}})

    def disabled():
        hpa = kubesim.get("hpa", "default", "web")
        conds = {c["type"]: c for c in hpa["status"].get("conditions") or []}
        return conds.get("ScalingActive", {}).get("reason") == "ScalingDisabled"

    kubesim.wait_for(disabled)
    assert kubesim.get("deployments", "default", "web")["spec"]["replicas"] == 0


def test_a_read_straight_after_a_scale_sees_the_old_status(apps, kubesim):
    kubesim.apply(deployment_yaml(replicas=2))
    _settled(kubesim)
    kubesim.set_delays(observe_delay=5)
    apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 4}})
    dep = apps.read_namespaced_deployment("web", "default")
    assert (dep.metadata.generation, dep.status.observed_generation) == (2, 1)
    assert dep.status.replicas == 2
    kubesim.wait_passes(2)
    assert len(kubesim.list("pods", "default", "app=web")) == 2
    kubesim.set_delays(observe_delay=0)
    assert _settled(kubesim)["status"]["replicas"] == 4
