"""The real `kubectl rollout restart` and `kubectl rollout status` against kubesim, for
Deployments and StatefulSets: what kubectl sends, what it prints, when it waits and fails."""

from __future__ import annotations

import pytest
from kubesim_helpers import deployment_yaml, pod_ready
from test_deployment_rollouts import RESTARTED_AT, rolled_out, settled, web

pytestmark = pytest.mark.kubectl


def test_rollout_restart_is_a_strategic_merge_patch_that_bumps_the_generation(kubectl, kubesim):
    kubesim.apply(deployment_yaml(replicas=2))
    settled(kubesim)
    kubesim.requests.clear()
    assert kubectl("rollout", "restart", "deployment/web").stdout.strip() == (
        "deployment.apps/web restarted"
    )
    (patch,) = kubesim.requests.filter(verb="patch")
    assert (patch.resource, patch.subresource, patch.content_type) == (
        "deployments",
        "",
        "application/strategic-merge-patch+json",
    )
    assert patch.query["fieldManager"] == "kubectl-rollout"
    dep = kubesim.get("deployments", "default", "web")
    assert dep["metadata"]["generation"] == 2
    assert dep["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT]


def test_rollout_restart_then_status_replaces_every_deployment_pod(kubectl, kubesim):
    kubesim.apply(deployment_yaml(replicas=3))
    old = {p["metadata"]["uid"] for p in settled(kubesim)}
    kubectl("rollout", "restart", "deployment/web")
    out = kubectl("rollout", "status", "deployment/web", "--timeout=60s").stdout
    assert out.splitlines()[-1] == 'deployment "web" successfully rolled out'
    assert rolled_out(kubesim)
    pods = [p for p in kubesim.list("pods", "default", "app=web") if pod_ready(p)]
    new = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    assert len(new) == 3
    assert not {p["metadata"]["uid"] for p in new} & old
    assert all(p["metadata"]["annotations"][RESTARTED_AT] for p in new)


def test_rollout_status_fails_once_the_progress_deadline_is_exceeded(kubectl, kubesim):
    kubesim.create("deployments", "default", web(2, progressDeadlineSeconds=1))
    settled(kubesim)
    kubesim.pods_never_ready("default", "track=broken")
    kubectl(
        "patch",
        "deployment/web",
        "-p",
        '{"spec":{"template":{"metadata":{"labels":{"track":"broken"}}}}}',
    )
    proc = kubectl("rollout", "status", "deployment/web", "--timeout=30s", check=False)
    assert proc.returncode == 1
    assert 'error: deployment "web" exceeded its progress deadline' in proc.stderr
    assert 'Waiting for deployment "web" rollout to finish' in proc.stdout


def test_rollout_status_waits_for_the_spec_update_to_be_observed(kubectl, kubesim):
    kubesim.apply(deployment_yaml(replicas=2))
    settled(kubesim)
    kubesim.set_delays(observe_delay=30)
    kubectl("rollout", "restart", "deployment/web")
    proc = kubectl("rollout", "status", "deployment/web", "--timeout=1s", check=False)
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[0] == "Waiting for deployment spec update to be observed..."
    assert "timed out waiting for the condition" in proc.stderr
    kubesim.set_delays(observe_delay=0)
    out = kubectl("rollout", "status", "deployment/web", "--timeout=60s").stdout
    assert out.splitlines()[-1] == 'deployment "web" successfully rolled out'
