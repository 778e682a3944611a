"""metadata.ownerReferences on a StatefulSet (an operator such as CloudNativePG owning it):
kept and returned, validated as ValidateOwnerReferences does, and garbage collection as the
real collector does it — an owner of a kind the cluster does not serve cannot be resolved, so
the dependent stays; an absent owner of a served kind gets the dependent deleted; a dangling
reference next to a live owner is dropped."""

from __future__ import annotations

import uuid

import yaml
from kubesim_helpers import pod_ready, statefulset_yaml

CNPG_CLUSTER = {
    "apiVersion": "postgresql.cnpg.io/v1",
    "kind": "Cluster",
    "name": "pg",
    "uid": "8a3f9c62-5d1e-4c1b-9f0e-2b7d4e6a1c35",
    "controller": True,
    "blockOwnerDeletion": True,
}


def _statefulset(owner_references: list[dict]) -> dict:
    sts = yaml.safe_load(statefulset_yaml(replicas=2))
    sts["metadata"]["ownerReferences"] = owner_references
    return sts


def _ready(kubesim, replicas: int = 2) -> None:
    kubesim.wait_for(
        lambda: sum(pod_ready(p) for p in kubesim.list("pods", "default", "app=pg")) == replicas,
        timeout=10,
    )


def _owner_map(core, name: str) -> dict:
    cm = core.create_namespaced_config_map("default", {"metadata": {"name": name}})
    return {"apiVersion": "v1", "kind": "ConfigMap", "name": name, "uid": cm.metadata.uid}


def test_an_owner_of_a_kind_the_cluster_does_not_serve_keeps_its_statefulset(apps, kubesim):
    created = apps.create_namespaced_stateful_set("default", _statefulset([CNPG_CLUSTER]))
    ref = created.metadata.owner_references[0]
    assert (ref.api_version, ref.kind, ref.name, ref.uid) == (
        "postgresql.cnpg.io/v1",
        "Cluster",
        "pg",
        CNPG_CLUSTER["uid"],
    )
    assert (ref.controller, ref.block_owner_deletion) == (True, True)
    _ready(kubesim)
    kubesim.wait_passes(3)  # the garbage collector has looked at it several times
    sts = apps.read_namespaced_stateful_set("pg", "default")
    assert sts.metadata.uid == created.metadata.uid
    assert [r.to_dict() for r in sts.metadata.owner_references] == [
        r.to_dict() for r in created.metadata.owner_references
    ]
    assert sts.metadata.deletion_timestamp is None
    assert sum(pod_ready(p) for p in kubesim.list("pods", "default", "app=pg")) == 2


def test_owner_references_need_api_version_kind_name_and_uid(raw, kubesim):
    sts = _statefulset([{"controller": True}])
    status, _, body = raw("POST", "/apis/apps/v1/namespaces/default/statefulsets", sts)
    assert status == 422
    assert [(c["field"], c["message"]) for c in body["details"]["causes"]] == [
        ("metadata.ownerReferences.apiVersion", 'Invalid value: "": version must not be empty'),
        ("metadata.ownerReferences.kind", 'Invalid value: "": kind must not be empty'),
        ("metadata.ownerReferences.name", 'Invalid value: "": name must not be empty'),
        ("metadata.ownerReferences.uid", 'Invalid value: "": uid must not be empty'),
    ]
    assert kubesim.get("statefulsets", "default", "pg") is None


def test_at_most_one_owner_reference_may_be_the_controller(raw, kubesim):
    second = dict(CNPG_CLUSTER, name="pg-b", uid=str(uuid.uuid4()), blockOwnerDeletion=None)
    status, _, body = raw(
        "POST",
        "/apis/apps/v1/namespaces/default/statefulsets",
        _statefulset([CNPG_CLUSTER, second]),
    )
    assert status == 422
    [cause] = body["details"]["causes"]
    assert cause["field"] == "metadata.ownerReferences"
    assert cause["message"].startswith(
        'Invalid value: []v1.OwnerReference{v1.OwnerReference{APIVersion:"postgresql.cnpg.io/v1", '
        'Kind:"Cluster", Name:"pg", UID:"8a3f9c62-5d1e-4c1b-9f0e-2b7d4e6a1c35", '
        "Controller:(*bool)(0xc000100000), BlockOwnerDeletion:(*bool)(0xc000100000)}, "
    )
    assert cause["message"].endswith(
        'Only one reference can have Controller set to true. Found "true" in references for '
        "Cluster/pg and Cluster/pg-b"
    )
    assert kubesim.get("statefulsets", "default", "pg") is None


def test_a_statefulset_whose_owner_is_deleted_is_collected_with_its_pods(apps, core, kubesim):
    owner = _owner_map(core, "pg-owner")
    apps.create_namespaced_stateful_set("default", _statefulset([dict(owner, controller=True)]))
    _ready(kubesim)
    kubesim.wait_passes(2)
    assert kubesim.get("statefulsets", "default", "pg") is not None  # its owner is there
    core.delete_namespaced_config_map("pg-owner", "default")
    kubesim.wait_for(lambda: kubesim.get("statefulsets", "default", "pg") is None)
    kubesim.wait_for(lambda: not kubesim.list("pods", "default", "app=pg"))


def test_an_owner_of_the_same_name_but_another_uid_does_not_count(apps, core, kubesim):
    stale = dict(_owner_map(core, "pg-owner"), uid=str(uuid.uuid4()))
    apps.create_namespaced_stateful_set("default", _statefulset([stale]))
    kubesim.wait_for(lambda: kubesim.get("statefulsets", "default", "pg") is None)


def test_a_dangling_reference_is_dropped_while_another_owner_remains(apps, core, kubesim):
    live = _owner_map(core, "live-owner")
    gone = _owner_map(core, "gone-owner")
    core.delete_namespaced_config_map("gone-owner", "default")
    apps.create_namespaced_stateful_set("default", _statefulset([gone, live]))

    def refs():
        sts = kubesim.get("statefulsets", "default", "pg")
        return [r["name"] for r in sts["metadata"]["ownerReferences"]]

    kubesim.wait_for(lambda: refs() == ["live-owner"])
    _ready(kubesim)
