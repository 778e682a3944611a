"""The real kubectl on ConfigMaps, Endpoints and pod labels: `get cm,ep` tables and JSON,
`annotate` and `label` with and without --overwrite, `patch endpoints` with each patch type,
`create configmap` (a protobuf body) and `delete`."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.kubectl

LEADER = """
apiVersion: v1
kind: Namespace
metadata: {name: prod}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: postgres-leader
  namespace: prod
  labels: {cluster-name: postgres}
  annotations: {leader: postgres-0, ttl: "30"}
---
apiVersion: v1
kind: Endpoints
metadata: {name: postgres, namespace: prod}
subsets:
  - addresses: [{ip: 10.244.0.11}, {ip: 10.244.0.12}, {ip: 10.244.0.13}, {ip: 10.244.0.14}]
    ports: [{name: postgresql, port: 5432}]
---
apiVersion: v1
kind: Pod
metadata: {name: postgres-0, namespace: prod, labels: {role: primary}}
spec:
  containers: [{name: postgres, image: "postgres:16.4"}]
"""


@pytest.fixture
def prod(kubesim):
    kubesim.apply(LEADER)
    return kubesim


def test_get_cm_and_ep_prints_both_server_side_tables(kubectl, prod):
    out = kubectl("-n", "prod", "get", "cm,ep").stdout.split("\n\n")
    cms, eps = (block.strip().splitlines() for block in out[:2])
    assert cms[0].split() == ["NAME", "DATA", "AGE"]
    assert cms[1].split()[:2] == ["configmap/postgres-leader", "0"]
    assert eps[0].split() == ["NAME", "ENDPOINTS", "AGE"]
    assert eps[1].split()[:2] == [
        "endpoints/postgres",
        "10.244.0.11:5432,10.244.0.12:5432,10.244.0.13:5432",
    ]
    assert eps[1].split()[2:5] == ["+", "1", "more..."]


def test_get_cm_and_ep_as_json_is_one_list_of_complete_objects(kubectl, prod):
    doc = json.loads(kubectl("-n", "prod", "get", "cm,ep", "-o", "json").stdout)
    assert doc["kind"] == "List"
    kinds = [(o["kind"], o["apiVersion"], o["metadata"]["name"]) for o in doc["items"]]
    assert kinds == [("ConfigMap", "v1", "postgres-leader"), ("Endpoints", "v1", "postgres")]
    assert doc["items"][0]["metadata"]["annotations"]["leader"] == "postgres-0"
    assert doc["items"][1]["subsets"][0]["ports"] == [
        {"name": "postgresql", "port": 5432, "protocol": "TCP"}
    ]


def test_annotate_needs_overwrite_to_change_the_leader(kubectl, prod):
    refused = kubectl(
        "-n", "prod", "annotate", "configmap", "postgres-leader", "leader=postgres-1", check=False
    )
    assert refused.returncode != 0
    assert "--overwrite is false but found the following declared annotation(s)" in (refused.stderr)
    prod.requests.clear()
    out = kubectl(
        "-n", "prod", "annotate", "configmap", "postgres-leader", "leader=postgres-1", "--overwrite"
    ).stdout
    assert out.strip() == "configmap/postgres-leader annotated"
    cm = prod.get("configmaps", "prod", "postgres-leader")
    assert cm["metadata"]["annotations"] == {"leader": "postgres-1", "ttl": "30"}
    [write] = prod.requests.mutations()
    assert (write.verb, write.resource, write.name, write.status) == (
        "patch",
        "configmaps",
        "postgres-leader",
        200,
    )


def test_label_overwrites_a_pods_role(kubectl, prod):
    before = prod.get("pods", "prod", "postgres-0")["metadata"]["resourceVersion"]
    out = kubectl("-n", "prod", "label", "pod", "postgres-0", "role=replica", "--overwrite")
    assert out.stdout.strip() == "pod/postgres-0 labeled"
    pod = prod.get("pods", "prod", "postgres-0")
    assert pod["metadata"]["labels"] == {"role": "replica"}
    assert int(pod["metadata"]["resourceVersion"]) > int(before)
    names = kubectl("-n", "prod", "get", "pods", "-l", "role=replica", "-o", "name").stdout
    assert names.split() == ["pod/postgres-0"]


@pytest.mark.parametrize(
    ("patch_args", "expected_ips"),
    [
        (
            ["-p", '{"subsets":[{"addresses":[{"ip":"10.244.0.20"}],"ports":[{"port":5432}]}]}'],
            ["10.244.0.20"],
        ),
        (
            ["--type=merge", "-p", '{"metadata":{"annotations":{"leader":"postgres-1"}}}'],
            ["10.244.0.11", "10.244.0.12", "10.244.0.13", "10.244.0.14"],
        ),
        (
            [
                "--type=json",
                "-p",
                '[{"op":"replace","path":"/subsets/0/addresses","value":[{"ip":"10.244.0.30"}]}]',
            ],
            ["10.244.0.30"],
        ),
    ],
)
def test_patch_endpoints_with_each_patch_type(kubectl, prod, patch_args, expected_ips):
    out = kubectl("-n", "prod", "patch", "endpoints", "postgres", *patch_args).stdout
    assert out.strip() == "endpoints/postgres patched"
    ep = prod.get("endpoints", "prod", "postgres")
    assert [a["ip"] for a in ep["subsets"][0]["addresses"]] == expected_ips


def test_create_configmap_from_literals_and_a_binary_file(kubectl, prod, tmp_path):
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"\xff\x00\xfe")
    out = kubectl(
        "-n",
        "prod",
        "create",
        "configmap",
        "postgres-config",
        "--from-literal=ttl=30",
        f"--from-file={blob}",
    ).stdout
    assert out.strip() == "configmap/postgres-config created"
    cm = prod.get("configmaps", "prod", "postgres-config")
    assert cm["data"] == {"ttl": "30"}
    assert cm["binaryData"] == {"blob.bin": "/wD+"}
    assert prod.requests.filter(verb="create", resource="configmaps")[0].content_type == (
        "application/vnd.kubernetes.protobuf"
    )


def test_delete_configmap_and_endpoints(kubectl, prod):
    out = kubectl("-n", "prod", "delete", "cm/postgres-leader", "ep/postgres").stdout
    assert out.splitlines() == [
        'configmap "postgres-leader" deleted',
        'endpoints "postgres" deleted',
    ]
    assert prod.list("configmaps", "prod") == []
    assert prod.list("endpoints", "prod") == []
