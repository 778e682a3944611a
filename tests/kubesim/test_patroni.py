"""The emulated Patroni labelling (kubesim/patroni.py): for a cluster whose leader ConfigMap
(or Endpoints) opts in, the pod named by the `leader` annotation is `role=primary` and the
other Running members `role=replica`; labels follow the annotation, are written only when they
differ, and scopes without the opt-in are left to the people who label them. The demo cluster
uses it."""

from __future__ import annotations

import pytest
from kubesim_helpers import events_until_marker, pod_ready

from kubesim import patroni


def _roles(kubesim, namespace: str = "default", scope: str = "pg") -> dict[str, str | None]:
    pods = kubesim.list("pods", namespace, label_selector=f"cluster-name={scope}")
    return {p["metadata"]["name"]: p["metadata"]["labels"].get("role") for p in pods}


@pytest.fixture
def members(kubesim, ready_statefulset):
    """A Ready StatefulSet pg of three pods labelled cluster-name=pg (no leader map yet)."""
    ready_statefulset(replicas=3, template_labels={"cluster-name": "pg"})
    return kubesim


def _opt_in(kubesim, leader: str = "pg-0") -> None:
    kubesim.create("configmaps", "default", patroni.leader_configmap("pg", leader))


def test_the_leader_is_primary_and_the_other_members_replicas(core, members):
    _opt_in(members)
    members.wait_for(
        lambda: _roles(members) == {"pg-0": "primary", "pg-1": "replica", "pg-2": "replica"}
    )
    primaries = core.list_namespaced_pod("default", label_selector="cluster-name=pg,role=primary")
    assert [p.metadata.name for p in primaries.items] == ["pg-0"]
    versions = {
        p["metadata"]["name"]: p["metadata"]["resourceVersion"] for p in members.list("pods")
    }
    members.wait_passes(3)  # labels are written once, not on every pass
    assert {
        p["metadata"]["name"]: p["metadata"]["resourceVersion"] for p in members.list("pods")
    } == versions


@pytest.mark.kubectl
def test_labels_follow_the_leader_annotation_changed_with_kubectl(kubectl, core, members):
    _opt_in(members)
    members.wait_for(
        lambda: _roles(members) == {"pg-0": "primary", "pg-1": "replica", "pg-2": "replica"}
    )
    rv = core.list_namespaced_pod("default").metadata.resource_version
    kubectl("annotate", "configmap", "pg-leader", "leader=pg-1", "--overwrite")
    members.wait_for(
        lambda: _roles(members) == {"pg-0": "replica", "pg-1": "primary", "pg-2": "replica"}
    )
    changes = [
        (etype, name, raw["metadata"]["labels"]["role"])
        for etype, name, raw in events_until_marker(core, rv)
    ]
    # One write per pod whose role changed, none for pg-2.
    assert sorted(changes) == [("MODIFIED", "pg-0", "replica"), ("MODIFIED", "pg-1", "primary")]


def test_a_role_set_by_hand_in_an_opted_in_scope_is_put_back(members):
    _opt_in(members)
    members.wait_for(lambda: _roles(members)["pg-2"] == "replica")
    members.patch("pods", "default", "pg-2", {"metadata": {"labels": {"role": "primary"}}}, "merge")
    members.wait_for(lambda: _roles(members)["pg-2"] == "replica")  # as Patroni would


@pytest.mark.kubectl
def test_a_scope_without_the_opt_in_is_left_alone(kubectl, members):
    members.create("configmaps", "default", patroni.leader_configmap("pg", "pg-0", emulate=False))
    members.wait_passes(3)
    assert _roles(members) == {"pg-0": None, "pg-1": None, "pg-2": None}
    kubectl("label", "pod", "pg-1", "role=primary", "--overwrite")
    members.wait_passes(3)
    assert _roles(members) == {"pg-0": None, "pg-1": "primary", "pg-2": None}


def test_a_member_is_labelled_only_once_it_runs(kubesim):
    _opt_in(kubesim)
    kubesim.create(
        "pods",
        "default",
        {
            "metadata": {"name": "pg-0", "labels": {"cluster-name": "pg"}},
            "spec": {
                "containers": [{"name": "db", "image": "postgres:16"}],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data-pg-0"}}],
            },
        },
    )
    kubesim.wait_passes(3)  # Pending: its claim does not exist, so Patroni has not started
    assert kubesim.get("pods", "default", "pg-0")["status"]["phase"] == "Pending"
    assert _roles(kubesim) == {"pg-0": None}
    kubesim.create(
        "pvc",
        "default",
        {
            "metadata": {"name": "data-pg-0"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    )
    kubesim.wait_for(lambda: _roles(kubesim) == {"pg-0": "primary"})


def test_an_opted_in_endpoints_names_the_leader_too(members):
    members.create(
        "endpoints",
        "default",
        {
            "metadata": {
                "name": "pg",
                "annotations": {"leader": "pg-2", patroni.OPT_IN: "true"},
            },
            "subsets": [
                {
                    "addresses": [{"ip": "10.244.0.9"}],
                    "ports": [{"name": "postgresql", "port": 5432}],
                }
            ],
        },
    )
    members.wait_for(
        lambda: _roles(members) == {"pg-0": "replica", "pg-1": "replica", "pg-2": "primary"}
    )


def test_the_demo_marks_postgres_0_primary_in_prod_only(kubesim_demo):
    assert kubesim_demo.get("configmaps", "staging", "postgres-leader") is None
    for ns in ("prod",):
        cm = kubesim_demo.get("configmaps", ns, "postgres-leader")
        annotations = cm["metadata"]["annotations"]
        assert annotations["leader"] == "postgres-0"
        assert {"acquireTime", "renewTime", "ttl", "optime"} <= annotations.keys()
        assert all(isinstance(v, str) for v in annotations.values())
        assert _roles(kubesim_demo, ns, "postgres") == {
            "postgres-0": "primary",
            "postgres-1": "replica",
            "postgres-2": "replica",
        }
        pods = kubesim_demo.list("pods", ns, label_selector="cluster-name=postgres")
        assert all(pod_ready(p) for p in pods)
    # Only the postgres members carry a role.
    assert [p["metadata"]["name"] for p in kubesim_demo.list("pods", label_selector="role")] == [
        "postgres-0",
        "postgres-1",
        "postgres-2",
    ]
