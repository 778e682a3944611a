"""The real kubectl against kubesim: tables, scale of both kinds, delete of pods and claims,
`wait --for=delete` and `--for=condition=Ready`, errors and discovery."""

from __future__ import annotations

import json

import pytest
from kubesim_helpers import deployment_yaml, pod_ready

pytestmark = pytest.mark.kubectl


@pytest.fixture
def cluster(kubesim, ready_statefulset):
    """A Ready StatefulSet pg (3 pods, claims data-pg-*) and a Deployment web (2 pods)."""
    ready_statefulset(replicas=3)
    kubesim.apply(deployment_yaml(replicas=2))
    kubesim.wait_for(
        lambda: sum(pod_ready(p) for p in kubesim.list("pods", "default", "app=web")) == 2
    )
    return kubesim


def test_get_pods_prints_the_server_side_table(kubectl, cluster):
    out = kubectl("get", "pods", "-l", "app=pg").stdout.splitlines()
    assert out[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    rows = [line.split()[:4] for line in out[1:]]
    assert rows == [[f"pg-{i}", "1/1", "Running", "0"] for i in range(3)]


def test_get_resolves_short_names_and_prints_workload_tables(kubectl, cluster):
    sts = kubectl("get", "sts").stdout.splitlines()
    assert sts[0].split() == ["NAME", "READY", "AGE"]
    assert sts[1].split()[:2] == ["pg", "3/3"]
    deploy = kubectl("get", "deploy", "web").stdout.splitlines()
    assert deploy[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert deploy[1].split()[:4] == ["web", "2/2", "2", "2"]
    pvc = kubectl("get", "pvc", "-o", "name").stdout.split()
    assert pvc == [
        "persistentvolumeclaim/data-pg-0",
        "persistentvolumeclaim/data-pg-1",
        "persistentvolumeclaim/data-pg-2",
    ]


def test_get_json_decodes_into_complete_objects(kubectl, cluster):
    sts = json.loads(kubectl("get", "sts", "pg", "-o", "json").stdout)
    assert sts["status"]["readyReplicas"] == 3
    assert sts["metadata"]["uid"]
    assert kubectl("get", "sts", "pg", "-o", "jsonpath={.spec.replicas}").stdout == "3"


def test_scale_statefulset_goes_through_the_scale_subresource(kubectl, cluster):
    cluster.requests.clear()
    kubectl("scale", "sts", "pg", "--replicas=1")
    patches = cluster.requests.filter(verb="patch")
    assert [(r.resource, r.subresource, r.status) for r in patches] == [
        ("statefulsets", "scale", 200)
    ]
    cluster.wait_for(
        lambda: (
            [p["metadata"]["name"] for p in cluster.list("pods", "default", "app=pg")] == ["pg-0"]
        )
    )


def test_scale_deployment_adds_pods(kubectl, cluster):
    kubectl("scale", "deploy", "web", "--replicas=4")
    cluster.wait_for(
        lambda: sum(pod_ready(p) for p in cluster.list("pods", "default", "app=web")) == 4
    )
    assert cluster.get("deploy", "default", "web")["spec"]["replicas"] == 4


def test_delete_pod_waits_until_it_is_gone(kubectl, cluster):
    old_uid = cluster.get("pods", "default", "pg-1")["metadata"]["uid"]
    out = kubectl("delete", "pod", "pg-1").stdout
    assert out.strip() == 'pod "pg-1" deleted'
    pod = cluster.get("pods", "default", "pg-1")
    assert pod is None or pod["metadata"]["uid"] != old_uid  # gone, maybe already recreated


def test_a_claim_in_use_stays_terminating_and_wait_for_delete_sees_it_go(kubectl, cluster):
    kubectl("delete", "pvc", "data-pg-2", "--wait=false")
    ts = kubectl("get", "pvc", "data-pg-2", "-o", "jsonpath={.metadata.deletionTimestamp}").stdout
    assert ts
    kubectl("scale", "sts", "pg", "--replicas=2")
    kubectl("wait", "--for=delete", "pvc/data-pg-2", "--timeout=20s")
    assert cluster.get("pvc", "default", "data-pg-2") is None
    assert cluster.get("pods", "default", "pg-2") is None


def test_delete_of_a_free_claim_waits_for_it_to_be_gone(kubectl, cluster):
    kubectl("scale", "sts", "pg", "--replicas=0")
    cluster.wait_for(lambda: not cluster.list("pods", "default", "app=pg"))
    out = kubectl("delete", "pvc", "data-pg-0").stdout
    assert out.strip() == 'persistentvolumeclaim "data-pg-0" deleted'
    assert cluster.get("pvc", "default", "data-pg-0") is None


def test_wait_for_condition_ready_follows_new_pods(kubectl, cluster):
    kubectl("scale", "deploy", "web", "--replicas=3")
    cluster.wait_for(lambda: len(cluster.list("pods", "default", "app=web")) == 3)
    proc = kubectl("wait", "--for=condition=Ready", "pod", "-l", "app=web", "--timeout=20s")
    assert proc.stdout.count("condition met") == 3


def test_wait_times_out_on_a_pod_that_never_becomes_ready(kubectl, kubesim):
    kubesim.pod_never_ready("default", "stuck")
    kubesim.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: stuck}\n"
        "spec: {containers: [{name: c, image: x}]}\n"
    )
    proc = kubectl("wait", "--for=condition=Ready", "pod/stuck", "--timeout=1s", check=False)
    assert proc.returncode != 0
    assert "timed out waiting for the condition" in proc.stderr


def test_not_found_reads_like_a_real_server(kubectl, kubesim):
    proc = kubectl("get", "sts", "does-not-exist", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        'Error from server (NotFound): statefulsets.apps "does-not-exist" not found'
    )


def test_api_resources_lists_the_served_kinds(kubectl, kubesim):
    out = kubectl("api-resources", "--no-headers").stdout.splitlines()
    names = {line.split()[0]: line.split()[1] for line in out}
    assert names["statefulsets"] == "sts"
    assert names["deployments"] == "deploy"
    assert names["persistentvolumeclaims"] == "pvc"
    assert names["pods"] == "po"


APP = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers: [{name: api, image: "example/api:1"}]
"""


def _apply(kubectl, tmp_path, text: str, *extra: str, check: bool = True):
    path = tmp_path / "manifest.yaml"
    path.write_text(text)
    return kubectl("apply", "-f", str(path), *extra, check=check)


def test_apply_creates_then_patches_with_server_side_validation(kubectl, kubesim, tmp_path):
    assert _apply(kubectl, tmp_path, APP).stdout.strip() == "deployment.apps/api created"
    assert _apply(kubectl, tmp_path, APP).stdout.strip() == "deployment.apps/api unchanged"
    assert _apply(kubectl, tmp_path, APP.replace("replicas: 2", "replicas: 3")).stdout.strip() == (
        "deployment.apps/api configured"
    )
    assert kubesim.get("deploy", "default", "api")["spec"]["replicas"] == 3
    writes = kubesim.requests.mutations()
    assert [(r.verb, r.query.get("fieldValidation")) for r in writes] == [
        ("create", "Strict"),
        ("patch", "Strict"),
    ]


def test_apply_refuses_an_unknown_field_like_a_real_server(kubectl, kubesim, tmp_path):
    _apply(kubectl, tmp_path, APP)
    proc = _apply(kubectl, tmp_path, APP.replace("replicas: 2", "replica: 2"), check=False)
    assert proc.returncode != 0
    assert 'strict decoding error: unknown field "spec.replica"' in proc.stderr
    assert "replica" not in kubesim.get("deploy", "default", "api")["spec"]


def test_imperative_create_of_a_namespace_and_a_deployment(kubectl, kubesim):
    assert kubectl("create", "namespace", "team-a").stdout.strip() == "namespace/team-a created"
    kubectl("create", "deployment", "api", "--image=nginx:1.27", "--replicas=2", "-n", "team-a")
    dep = kubesim.get("deploy", "team-a", "api")
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27"
    assert kubesim.requests.filter(verb="create", resource="deployments")[0].content_type == (
        "application/vnd.kubernetes.protobuf"
    )
    kubectl("rollout", "status", "deploy/api", "-n", "team-a", "--timeout=20s")


def test_get_nodes_shows_the_one_ready_node_and_its_pods(kubectl, cluster):
    out = kubectl("get", "nodes").stdout.splitlines()
    assert out[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert out[1].split()[:3] == ["kubesim-node", "Ready", "control-plane"]
    on_node = kubectl(
        "get", "pods", "-A", "--field-selector=spec.nodeName=kubesim-node", "-o", "name"
    ).stdout.split()
    assert len(on_node) == 5
