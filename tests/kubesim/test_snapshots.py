"""VolumeSnapshots through the real client's CustomObjectsApi: a snapshot of a claim becomes
ready with a content and its restore size, the default class is filled in, a missing class or
claim and a failing CSI driver are status errors worded as the snapshot controller's, deleting
a snapshot deletes its content under policy Delete; claims restored from a snapshot (through
CoreV1Api) wait for it to be ready, record their source and let a StatefulSet's pod run."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

GROUP, VERSION = "snapshot.storage.k8s.io", "v1"

SETUP = """
apiVersion: v1
kind: Namespace
metadata: {name: prod}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: prod}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 2Gi}}}
"""
DEFAULT_CLASS = """
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata:
  name: csi-snapclass
  annotations: {snapshot.storage.kubernetes.io/is-default-class: "true"}
driver: hostpath.csi.k8s.io
deletionPolicy: Delete
"""
RETAIN_CLASS = """
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata: {name: retained}
driver: hostpath.csi.k8s.io
deletionPolicy: Retain
"""


@pytest.fixture
def prod(kubesim):
    kubesim.apply(SETUP)
    kubesim.wait_for(lambda: kubesim.get("pvc", "prod", "data")["status"]["phase"] == "Bound")
    return kubesim


@pytest.fixture
def custom(kubesim_client: Any) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kubesim_client)


def snapshot(name: str, claim: str = "data", cls: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"source": {"persistentVolumeClaimName": claim}}
    if cls is not None:
        spec["volumeSnapshotClassName"] = cls
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "VolumeSnapshot",
        "metadata": {"name": name},
        "spec": spec,
    }


def create(custom: client.CustomObjectsApi, body: dict[str, Any]) -> dict[str, Any]:
    return custom.create_namespaced_custom_object(GROUP, VERSION, "prod", "volumesnapshots", body)


def read(custom: client.CustomObjectsApi, name: str) -> dict[str, Any]:
    return custom.get_namespaced_custom_object(GROUP, VERSION, "prod", "volumesnapshots", name)


def status_of(sim, name: str) -> dict[str, Any]:
    return (sim.get("volumesnapshots", "prod", name) or {}).get("status") or {}


def restored_claim(name: str, source: str, storage: str = "2Gi") -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": storage}},
            "dataSource": {"apiGroup": GROUP, "kind": "VolumeSnapshot", "name": source},
        },
    }


def test_a_snapshot_of_a_claim_becomes_ready_with_a_content_and_the_claims_size(prod, custom):
    prod.apply(DEFAULT_CLASS)
    created = create(custom, snapshot("nightly", cls="csi-snapclass"))
    assert created.get("status") is None  # nothing is cut synchronously

    prod.wait_for(lambda: status_of(prod, "nightly").get("readyToUse"), message="never ready")
    vs = read(custom, "nightly")
    uid = vs["metadata"]["uid"]
    assert vs["status"]["boundVolumeSnapshotContentName"] == f"snapcontent-{uid}"
    assert vs["status"]["restoreSize"] == "2Gi"
    assert vs["status"]["creationTime"].endswith("Z")
    assert "error" not in vs["status"]
    content = custom.get_cluster_custom_object(
        GROUP, VERSION, "volumesnapshotcontents", f"snapcontent-{uid}"
    )
    assert content["spec"]["volumeSnapshotRef"]["uid"] == uid
    assert content["spec"]["deletionPolicy"] == "Delete"
    assert content["spec"]["driver"] == "hostpath.csi.k8s.io"
    assert content["status"]["readyToUse"] is True
    assert content["status"]["restoreSize"] == 2 * 1024**3


def test_a_snapshot_naming_no_class_gets_the_default_one(prod, custom):
    prod.apply(DEFAULT_CLASS + "---\n" + RETAIN_CLASS)
    create(custom, snapshot("nightly"))

    prod.wait_for(lambda: status_of(prod, "nightly").get("readyToUse"))
    vs = read(custom, "nightly")
    assert vs["spec"]["volumeSnapshotClassName"] == "csi-snapclass"
    assert vs["metadata"]["generation"] == 2  # the controller wrote the class into the spec


def test_without_any_default_class_the_snapshot_reports_the_controllers_error(prod, custom):
    prod.apply(RETAIN_CLASS)  # a class, but not marked default
    create(custom, snapshot("nightly"))

    prod.wait_for(lambda: status_of(prod, "nightly").get("error"))
    status = read(custom, "nightly")["status"]
    assert status["error"]["message"] == (
        "Failed to set default snapshot class with error cannot find default snapshot class"
    )
    assert "readyToUse" not in status  # this error leaves readyToUse unset
    assert prod.list("volumesnapshotcontents") == []


def test_a_class_that_does_not_exist_is_an_error(prod, custom):
    create(custom, snapshot("nightly", cls="fast"))

    prod.wait_for(lambda: status_of(prod, "nightly").get("error"))
    assert status_of(prod, "nightly")["error"]["message"] == (
        "Failed to get snapshot class with error "
        'volumesnapshotclass.snapshot.storage.k8s.io "fast" not found'
    )


def test_a_snapshot_of_a_missing_claim_is_not_ready_with_an_error(prod, custom):
    prod.apply(DEFAULT_CLASS)
    create(custom, snapshot("named", claim="gone", cls="csi-snapclass"))
    create(custom, snapshot("defaulted", claim="gone"))

    prod.wait_for(lambda: status_of(prod, "named").get("error"))
    prod.wait_for(lambda: status_of(prod, "defaulted").get("error"))
    named = status_of(prod, "named")
    assert named["readyToUse"] is False
    assert named["error"]["message"] == (
        "Failed to create snapshot content with error snapshot controller failed to update "
        "named on API server: cannot get claim from snapshot"
    )
    assert status_of(prod, "defaulted")["error"]["message"] == (
        "Failed to set default snapshot class with error failed to retrieve PVC gone from the "
        'lister: "persistentvolumeclaim \\"gone\\" not found"'
    )
    assert prod.list("volumesnapshotcontents") == []


def test_a_snapshot_the_driver_fails_to_cut_reports_the_csi_error_until_it_succeeds(prod, custom):
    prod.apply(DEFAULT_CLASS)
    prod.fail_snapshot("prod", "nightly", "disk quota exceeded")
    create(custom, snapshot("nightly"))

    prod.wait_for(lambda: status_of(prod, "nightly").get("error"))
    status = status_of(prod, "nightly")
    handle = prod.get("pvc", "prod", "data")["spec"]["volumeName"]
    assert status["readyToUse"] is False
    assert status["error"]["message"] == (
        f"Failed to create snapshot: failed to take snapshot of the volume {handle}: "
        '"rpc error: code = Internal desc = disk quota exceeded"'
    )
    # The source claim stays protected while its snapshot is not cut.
    claim = prod.get("pvc", "prod", "data")
    assert (
        "snapshot.storage.kubernetes.io/pvc-as-source-protection" in claim["metadata"]["finalizers"]
    )

    prod.fail_snapshot("prod", "nightly", fail=False)  # the controller retries
    prod.wait_for(lambda: status_of(prod, "nightly").get("readyToUse"))
    assert "error" not in status_of(prod, "nightly")
    prod.wait_for(
        lambda: (
            "snapshot.storage.kubernetes.io/pvc-as-source-protection"
            not in prod.get("pvc", "prod", "data")["metadata"]["finalizers"]
        )
    )


def test_deleting_a_snapshot_deletes_its_content_only_under_policy_delete(prod, custom):
    prod.apply(DEFAULT_CLASS + "---\n" + RETAIN_CLASS)
    create(custom, snapshot("gone"))
    create(custom, snapshot("kept", cls="retained"))
    prod.wait_for(lambda: status_of(prod, "gone").get("readyToUse"))
    prod.wait_for(lambda: status_of(prod, "kept").get("readyToUse"))
    kept_content = status_of(prod, "kept")["boundVolumeSnapshotContentName"]

    for name in ("gone", "kept"):
        custom.delete_namespaced_custom_object(GROUP, VERSION, "prod", "volumesnapshots", name)

    prod.wait_for(lambda: prod.list("volumesnapshots") == [], message="snapshots not deleted")
    contents = [c["metadata"]["name"] for c in prod.list("volumesnapshotcontents")]
    assert contents == [kept_content]


def test_the_snapshot_api_validates_as_the_crd_does(prod, custom):
    both = snapshot("both")
    both["spec"]["source"]["volumeSnapshotContentName"] = "x"
    with pytest.raises(ApiException) as e:
        create(custom, both)
    assert e.value.status == 422
    assert (
        'spec.source: Invalid value: "object": exactly one of volumeSnapshotContentName and '
        "persistentVolumeClaimName must be set" in json.loads(e.value.body)["message"]
    )
    prod.apply(DEFAULT_CLASS)
    create(custom, snapshot("nightly"))
    with pytest.raises(ApiException) as e:
        custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            "prod",
            "volumesnapshots",
            "nightly",
            {"spec": {"source": {"persistentVolumeClaimName": "other"}}},
        )
    assert e.value.status == 422
    assert "persistentVolumeClaimName is immutable" in json.loads(e.value.body)["message"]


def test_custom_objects_list_and_patch_as_on_a_cluster(prod, custom):
    prod.apply(DEFAULT_CLASS)
    create(custom, snapshot("nightly"))
    listed = custom.list_namespaced_custom_object(GROUP, VERSION, "prod", "volumesnapshots")
    assert listed["kind"] == "VolumeSnapshotList"
    assert [i["kind"] for i in listed["items"]] == ["VolumeSnapshot"]  # CR items keep it
    patched = custom.patch_namespaced_custom_object(
        GROUP, VERSION, "prod", "volumesnapshots", "nightly", {"metadata": {"labels": {"a": "b"}}}
    )
    assert patched["metadata"]["labels"] == {"a": "b"}
    classes = custom.list_cluster_custom_object(GROUP, VERSION, "volumesnapshotclasses")
    assert [c["metadata"]["name"] for c in classes["items"]] == ["csi-snapclass"]


# --- claims restored from a snapshot ------------------------------------------------------


def test_a_claim_from_a_ready_snapshot_binds_and_records_its_source(prod, custom, core):
    prod.apply(DEFAULT_CLASS)
    create(custom, snapshot("nightly"))
    prod.wait_for(lambda: status_of(prod, "nightly").get("readyToUse"))

    created = core.create_namespaced_persistent_volume_claim("prod", restored_claim("r", "nightly"))
    assert created.spec.data_source_ref.name == "nightly"  # mirrored by the API server

    prod.wait_for(lambda: prod.get("pvc", "prod", "r")["status"]["phase"] == "Bound")
    claim = core.read_namespaced_persistent_volume_claim("r", "prod")
    assert claim.spec.data_source.kind == "VolumeSnapshot"
    assert claim.spec.data_source.api_group == GROUP
    source = prod.restored_from("prod", "r")
    assert source is not None
    assert (source.snapshot, source.source_claim) == ("nightly", "data")
    assert source.content == status_of(prod, "nightly")["boundVolumeSnapshotContentName"]
    assert prod.restored_from("prod", "data") is None


def test_a_claim_from_a_snapshot_not_yet_ready_waits_for_it(prod, custom, core):
    prod.apply(DEFAULT_CLASS)
    prod.set_delays(snapshot_delay=60)
    create(custom, snapshot("slow"))
    core.create_namespaced_persistent_volume_claim("prod", restored_claim("r", "slow"))

    prod.wait_for(lambda: status_of(prod, "slow").get("boundVolumeSnapshotContentName"))
    prod.wait_passes(2)
    assert prod.get("pvc", "prod", "r")["status"]["phase"] == "Pending"

    prod.set_delays(snapshot_delay=0)
    prod.wait_for(lambda: prod.get("pvc", "prod", "r")["status"]["phase"] == "Bound")
    assert status_of(prod, "slow")["readyToUse"] is True


def test_a_claim_from_a_missing_snapshot_stays_pending(prod, core):
    core.create_namespaced_persistent_volume_claim("prod", restored_claim("r", "nowhere"))

    prod.wait_passes(2)
    claim = prod.get("pvc", "prod", "r")
    assert claim["status"] == {"phase": "Pending"}  # the provisioner reports only Events
    assert prod.restored_from("prod", "r") is None


def test_a_claim_smaller_than_the_snapshot_stays_pending(prod, custom, core):
    prod.apply(DEFAULT_CLASS)
    create(custom, snapshot("nightly"))
    prod.wait_for(lambda: status_of(prod, "nightly").get("readyToUse"))
    core.create_namespaced_persistent_volume_claim("prod", restored_claim("r", "nightly", "1Gi"))

    prod.wait_passes(2)
    assert prod.get("pvc", "prod", "r")["status"]["phase"] == "Pending"


def test_a_claim_data_source_is_validated_as_by_the_api_server(prod, core):
    body = restored_claim("r", "nightly")
    del body["spec"]["dataSource"]["apiGroup"]
    with pytest.raises(ApiException) as e:
        core.create_namespaced_persistent_volume_claim("prod", body)
    assert e.value.status == 422
    assert (
        "spec.dataSource: Invalid value: \"VolumeSnapshot\": must be 'PersistentVolumeClaim' "
        "when referencing the default apiGroup" in json.loads(e.value.body)["message"]
    )
    body = restored_claim("r", "nightly")
    body["spec"]["dataSourceRef"] = dict(body["spec"]["dataSource"], name="other")
    with pytest.raises(ApiException) as e:
        core.create_namespaced_persistent_volume_claim("prod", body)
    assert e.value.status == 422
    assert (
        "spec: Invalid value: spec.dataSource: must match dataSourceRef"
        in json.loads(e.value.body)["message"]
    )


def test_a_snapshot_being_restored_from_is_kept_until_its_claim_binds(prod, custom, core):
    prod.apply(DEFAULT_CLASS)
    create(custom, snapshot("nightly"))
    prod.wait_for(lambda: status_of(prod, "nightly").get("readyToUse"))
    core.create_namespaced_persistent_volume_claim("prod", restored_claim("r", "nightly", "1Gi"))
    prod.wait_passes(1)

    custom.delete_namespaced_custom_object(GROUP, VERSION, "prod", "volumesnapshots", "nightly")
    prod.wait_passes(2)
    vs = prod.get("volumesnapshots", "prod", "nightly")
    assert vs["metadata"]["deletionTimestamp"]  # Terminating while the claim waits for it
    prod.delete("pvc", "prod", "r")
    prod.wait_for(lambda: prod.get("volumesnapshots", "prod", "nightly") is None)


STATEFULSET = """
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: pg, namespace: prod}
spec:
  serviceName: pg
  replicas: 1
  selector: {matchLabels: {app: pg}}
  template:
    metadata: {labels: {app: pg}}
    spec:
      containers: [{name: db, image: "postgres:16"}]
  volumeClaimTemplates:
    - metadata: {name: data}
      spec:
        accessModes: [ReadWriteOnce]
        resources: {requests: {storage: 2Gi}}
        dataSource: {apiGroup: snapshot.storage.k8s.io, kind: VolumeSnapshot, name: nightly}
"""


def test_a_statefulset_pod_on_a_claim_restored_from_a_snapshot_becomes_ready(prod, custom):
    prod.apply(DEFAULT_CLASS)
    prod.set_delays(snapshot_delay=60)
    create(custom, snapshot("nightly"))
    prod.apply(STATEFULSET)

    prod.wait_for(lambda: prod.get("pods", "prod", "pg-0"))
    prod.wait_passes(2)
    pod = prod.get("pods", "prod", "pg-0")
    assert pod["status"]["phase"] == "Pending"  # its claim waits for the snapshot
    assert prod.get("pvc", "prod", "data-pg-0")["status"]["phase"] == "Pending"

    prod.set_delays(snapshot_delay=0)
    prod.wait_for(
        lambda: prod.get("statefulsets", "prod", "pg")["status"].get("readyReplicas") == 1,
        message="pg-0 never Ready",
    )
    assert prod.restored_from("prod", "data-pg-0").snapshot == "nightly"
