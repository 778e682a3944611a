"""The real kubectl on VolumeSnapshots: discovery by short name, the CRDs' printer columns in
`get volumesnapshots` (and for classes and contents), `-o json`, and `delete`, which waits
until the snapshot controller has let the snapshot go."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.kubectl

SETUP = """
apiVersion: v1
kind: Namespace
metadata: {name: prod}
---
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata:
  name: csi-snapclass
  annotations: {snapshot.storage.kubernetes.io/is-default-class: "true"}
driver: hostpath.csi.k8s.io
deletionPolicy: Delete
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: prod}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshot
metadata: {name: nightly, namespace: prod}
spec: {source: {persistentVolumeClaimName: data}}
"""


@pytest.fixture
def prod(kubesim):
    kubesim.apply(SETUP)
    kubesim.wait_for(
        lambda: (kubesim.get("volumesnapshots", "prod", "nightly").get("status") or {}).get(
            "readyToUse"
        )
    )
    return kubesim


def test_get_volumesnapshots_prints_the_crds_printer_columns(kubectl, prod):
    content = prod.get("volumesnapshots", "prod", "nightly")["status"][
        "boundVolumeSnapshotContentName"
    ]
    lines = kubectl("get", "volumesnapshots", "-n", "prod").stdout.splitlines()
    assert lines[0].split() == [
        "NAME",
        "READYTOUSE",
        "SOURCEPVC",
        "SOURCESNAPSHOTCONTENT",
        "RESTORESIZE",
        "SNAPSHOTCLASS",
        "SNAPSHOTCONTENT",
        "CREATIONTIME",
        "AGE",
    ]
    # SOURCESNAPSHOTCONTENT is empty for a snapshot cut from a claim.
    assert lines[1].split()[:6] == ["nightly", "true", "data", "1Gi", "csi-snapclass", content]


def test_short_names_reach_classes_and_contents(kubectl, prod):
    classes = kubectl("get", "vsclass").stdout.splitlines()
    assert classes[0].split() == ["NAME", "DRIVER", "DELETIONPOLICY", "AGE"]
    assert classes[1].split()[:3] == ["csi-snapclass", "hostpath.csi.k8s.io", "Delete"]
    contents = kubectl("get", "vsc").stdout.splitlines()
    assert contents[0].split()[1:-1] == [
        "READYTOUSE",
        "RESTORESIZE",
        "DELETIONPOLICY",
        "DRIVER",
        "VOLUMESNAPSHOTCLASS",
        "VOLUMESNAPSHOT",
        "VOLUMESNAPSHOTNAMESPACE",
    ]
    assert contents[1].split()[1:8] == [
        "true",
        "1073741824",
        "Delete",
        "hostpath.csi.k8s.io",
        "csi-snapclass",
        "nightly",
        "prod",
    ]


def test_get_volumesnapshots_as_json_is_the_stored_snapshot(kubectl, prod):
    doc = json.loads(kubectl("get", "vs", "-n", "prod", "-o", "json").stdout)
    [item] = doc["items"]
    assert item["kind"] == "VolumeSnapshot"
    assert item["apiVersion"] == "snapshot.storage.k8s.io/v1"
    assert item["spec"]["volumeSnapshotClassName"] == "csi-snapclass"  # the default, filled in
    assert item["status"]["readyToUse"] is True
    assert item["status"]["restoreSize"] == "1Gi"


def test_kubectl_delete_waits_for_the_snapshot_and_its_content_to_go(kubectl, prod):
    out = kubectl("delete", "vs", "-n", "prod", "nightly").stdout
    assert 'volumesnapshot.snapshot.storage.k8s.io "nightly" deleted' in out
    assert prod.get("volumesnapshots", "prod", "nightly") is None
    prod.wait_for(lambda: prod.list("volumesnapshotcontents") == [])


def test_a_strategic_merge_patch_of_a_snapshot_is_refused_as_for_any_custom_resource(kubectl, prod):
    proc = kubectl(
        "patch",
        "vs",
        "-n",
        "prod",
        "nightly",
        "-p",
        '{"metadata":{"labels":{"a":"b"}}}',
        check=False,
    )
    assert proc.returncode != 0
    assert "application/strategic-merge-patch+json is not supported" in proc.stderr
    kubectl("label", "vs", "-n", "prod", "nightly", "a=b")  # a merge patch
    assert prod.get("volumesnapshots", "prod", "nightly")["metadata"]["labels"] == {"a": "b"}
