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


def test_rollout_restart_then_status_replaces_every_statefulset_pod_on_its_claims(
    kubectl, kubesim, ready_statefulset
):
    ready_statefulset(replicas=3)
    old = {p["metadata"]["uid"] for p in kubesim.list("pods", "default", "app=pg")}
    claims = {c["metadata"]["uid"] for c in kubesim.list("pvc", "default")}
    assert kubectl("rollout", "restart", "statefulset/pg").stdout.strip() == (
        "statefulset.apps/pg restarted"
    )
    out = kubectl("rollout", "status", "statefulset/pg", "--timeout=60s").stdout
    assert out.splitlines()[-1] == "partitioned roll out complete: 3 new pods have been updated..."
    pods = kubesim.list("pods", "default", "app=pg")
    assert [p["metadata"]["name"] for p in pods] == ["pg-0", "pg-1", "pg-2"]
    assert not {p["metadata"]["uid"] for p in pods} & old
    assert {c["metadata"]["uid"] for c in kubesim.list("pvc", "default")} == claims


def test_statefulset_rollout_status_waits_while_a_replacement_is_not_ready(
    kubectl, kubesim, ready_statefulset
):
    ready_statefulset(replicas=3)
    kubesim.pods_never_ready("default", "track=broken")
    kubectl(
        "patch", "sts/pg", "-p", '{"spec":{"template":{"metadata":{"labels":{"track":"broken"}}}}}'
    )
    proc = kubectl("rollout", "status", "statefulset/pg", "--timeout=2s", check=False)
    assert proc.returncode == 1
    assert "Waiting for 1 pods to be ready..." in proc.stdout
    assert "timed out waiting for the condition" in proc.stderr
    kubesim.pods_never_ready("default", "track=broken", never=False)
    out = kubectl("rollout", "status", "statefulset/pg", "--timeout=60s").stdout
    assert out.splitlines()[-1] == "partitioned roll out complete: 3 new pods have been updated..."


def test_statefulset_rollout_status_reports_a_partitioned_rollout_done(
    kubectl, kubesim, ready_statefulset
):
    ready_statefulset(replicas=3)
    kubectl(
        "patch", "sts/pg", "-p", '{"spec":{"updateStrategy":{"rollingUpdate":{"partition":1}}}}'
    )
    kubectl("rollout", "restart", "statefulset/pg")
    out = kubectl("rollout", "status", "statefulset/pg", "--timeout=60s").stdout
    assert out.splitlines()[-1] == "partitioned roll out complete: 2 new pods have been updated..."
    sts = kubesim.get("sts", "default", "pg")
    assert sts["status"]["currentRevision"] != sts["status"]["updateRevision"]
    pg0 = kubesim.get("pods", "default", "pg-0")
    assert pg0["metadata"]["labels"]["controller-revision-hash"] == sts["status"]["currentRevision"]


def test_statefulset_rollout_status_refuses_on_delete(kubectl, kubesim, ready_statefulset):
    ready_statefulset(replicas=1)
    kubectl(
        "patch",
        "sts/pg",
        "--type=merge",
        "-p",
        '{"spec":{"updateStrategy":{"type":"OnDelete","rollingUpdate":null}}}',
    )
    proc = kubectl("rollout", "status", "statefulset/pg", "--timeout=5s", check=False)
    assert proc.returncode == 1
    assert "rollout status is only available for RollingUpdate strategy type" in proc.stderr
