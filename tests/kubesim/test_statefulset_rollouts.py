"""StatefulSet rollouts through the client: a RollingUpdate replaces pods from the highest
ordinal down, one at a time, each Ready before the next, only at or above the partition;
OnDelete replaces nothing by itself; revisions and claims. Orders come from watch events."""

from __future__ import annotations

from kubesim_helpers import events_until_marker, pod_ready

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
REVISION = "controller-revision-hash"


def restart(apps, stamp: str = "2025-01-01T00:00:00Z") -> None:
    patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
    apps.patch_namespaced_stateful_set("pg", "default", patch)


def observed(kubesim) -> dict:
    """The StatefulSet's status once it reflects the current spec."""
    return kubesim.wait_for(
        lambda: (
            (s := kubesim.get("sts", "default", "pg"))["status"].get("observedGeneration")
            == s["metadata"]["generation"]
            and s["status"]
        )
    )


def rolled(kubesim, replicas: int = 3) -> dict:
    def check():
        status = observed(kubesim)
        done = (
            status.get("updatedReplicas") == replicas
            and status.get("readyReplicas") == replicas
            and status["currentRevision"] == status["updateRevision"]
        )
        return status if done else None

    return kubesim.wait_for(check, timeout=10)


def uids(kubesim, resource: str = "pods") -> dict[str, str]:
    return {o["metadata"]["name"]: o["metadata"]["uid"] for o in kubesim.list(resource, "default")}


def test_a_rolling_update_replaces_pods_from_the_highest_ordinal_each_ready_before_the_next(
    apps, core, kubesim, ready_statefulset
):
    old_rev = ready_statefulset(replicas=3)["status"]["updateRevision"]
    old_pods, claims = uids(kubesim), uids(kubesim, "pvc")
    rv = kubesim.get("sts", "default", "pg")["metadata"]["resourceVersion"]
    restart(apps)
    status = rolled(kubesim)
    steps = []
    down = set()  # members not Running and Ready at this point
    for etype, name, pod in events_until_marker(core, rv):
        if not name.startswith("pg-"):
            continue
        old = pod["metadata"]["uid"] == old_pods[name]
        ready = pod_ready(pod) and not pod["metadata"].get("deletionTimestamp")
        if old and pod["metadata"].get("deletionTimestamp") and ("delete", name) not in steps:
            steps.append(("delete", name))
        if not old and ready and ("ready", name) not in steps:
            steps.append(("ready", name))
        down = (down | {name}) if not ready or etype == "DELETED" else down - {name}
        assert len(down) <= 1, f"more than one member down at once: {down}"
    assert steps == [
        ("delete", "pg-2"),
        ("ready", "pg-2"),
        ("delete", "pg-1"),
        ("ready", "pg-1"),
        ("delete", "pg-0"),
        ("ready", "pg-0"),
    ]
    assert status["updateRevision"] != old_rev
    assert status["currentReplicas"] == 3
    pods = kubesim.list("pods", "default", "app=pg")
    assert {p["metadata"]["labels"][REVISION] for p in pods} == {status["updateRevision"]}
    assert not set(uids(kubesim).values()) & set(old_pods.values())
    assert uids(kubesim, "pvc") == claims  # the new pods run on the same claims


def test_only_ordinals_at_or_above_the_partition_are_updated(apps, kubesim, ready_statefulset):
    old_rev = ready_statefulset(replicas=3)["status"]["updateRevision"]
    old_pods = uids(kubesim)
    partition = {"spec": {"updateStrategy": {"rollingUpdate": {"partition": 2}}}}
    apps.patch_namespaced_stateful_set("pg", "default", partition)
    restart(apps)
    status = kubesim.wait_for(
        lambda: (
            (s := observed(kubesim)).get("updatedReplicas") == 1
            and s.get("readyReplicas") == 3
            and s
        )
    )
    kubesim.wait_passes(2)
    revisions = {
        p["metadata"]["name"]: p["metadata"]["labels"][REVISION]
        for p in kubesim.list("pods", "default")
    }
    new_rev = status["updateRevision"]
    assert revisions == {"pg-0": old_rev, "pg-1": old_rev, "pg-2": new_rev}
    assert status["currentRevision"] == old_rev  # not every pod is updated
    assert status["currentReplicas"] == 2
    assert uids(kubesim)["pg-0"] == old_pods["pg-0"]
    # A member below the partition that is deleted comes back at the current revision.
    kubesim.delete("pods", "default", "pg-0")
    pod = kubesim.wait_for(
        lambda: (
            (p := kubesim.get("pods", "default", "pg-0"))
            and p["metadata"]["uid"] != old_pods["pg-0"]
            and p
        )
    )
    assert pod["metadata"]["labels"][REVISION] == old_rev
    assert RESTARTED_AT not in (pod["metadata"].get("annotations") or {})
    # Lowering the partition finishes the rollout.
    apps.patch_namespaced_stateful_set(
        "pg", "default", {"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}}
    )
    assert rolled(kubesim)["currentRevision"] == new_rev


def test_on_delete_replaces_only_the_pods_someone_deletes(apps, kubesim, ready_statefulset):
    old_rev = ready_statefulset(replicas=3)["status"]["updateRevision"]
    old_pods = uids(kubesim)
    on_delete = {"spec": {"updateStrategy": {"type": "OnDelete", "rollingUpdate": None}}}
    apps.patch_namespaced_stateful_set("pg", "default", on_delete)
    restart(apps)
    status = kubesim.wait_for(lambda: (s := observed(kubesim))["updateRevision"] != old_rev and s)
    kubesim.wait_passes(3)
    assert uids(kubesim) == old_pods
    assert "updatedReplicas" not in observed(kubesim)
    kubesim.delete("pods", "default", "pg-1")
    pod = kubesim.wait_for(
        lambda: (
            (p := kubesim.get("pods", "default", "pg-1"))
            and p["metadata"]["uid"] != old_pods["pg-1"]
            and pod_ready(p)
            and p
        )
    )
    assert pod["metadata"]["labels"][REVISION] == status["updateRevision"]
    status = kubesim.wait_for(lambda: (s := observed(kubesim)).get("updatedReplicas") == 1 and s)
    assert (status["currentRevision"], status["currentReplicas"]) == (old_rev, 2)
    assert {n: u for n, u in uids(kubesim).items() if n != "pg-1"} == {
        n: u for n, u in old_pods.items() if n != "pg-1"
    }


def test_a_replacement_that_never_becomes_ready_stalls_the_rollout(
    apps, kubesim, ready_statefulset
):
    ready_statefulset(replicas=3)
    old_pods = uids(kubesim)
    kubesim.pods_never_ready("default", "track=broken")
    broken = {"spec": {"template": {"metadata": {"labels": {"track": "broken"}}}}}
    apps.patch_namespaced_stateful_set("pg", "default", broken)
    kubesim.wait_for(lambda: uids(kubesim).get("pg-2") not in (None, old_pods["pg-2"]))
    kubesim.wait_passes(3)
    status = observed(kubesim)
    assert {n: u for n, u in uids(kubesim).items() if n != "pg-2"} == {
        "pg-0": old_pods["pg-0"],
        "pg-1": old_pods["pg-1"],
    }
    assert (status.get("updatedReplicas"), status.get("readyReplicas")) == (1, 2)
    assert status["currentRevision"] != status["updateRevision"]
