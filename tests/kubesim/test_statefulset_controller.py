"""The StatefulSet controller as a real cluster runs it: OrderedReady and Parallel creation,
claims from volumeClaimTemplates, a Terminating claim blocking its pod, reverse-order
scale-down that waits for each pod to be gone, status that lags the spec, and status counts
that include terminating pods. Orders are read from watch events, which arrive in
resourceVersion order."""

from __future__ import annotations

from kubernetes import client
from kubesim_helpers import events_until_marker, pod_ready, statefulset_yaml


def _pod_and_claim_events(core, rv: str) -> list[tuple[int, str, str, dict]]:
    """Pod and claim events in `default` since `rv`, in the order they happened:
    (resourceVersion, type, kind, object)."""
    events = [
        (int(raw["metadata"]["resourceVersion"]), etype, kind, raw)
        for kind, claims in (("Pod", False), ("Claim", True))
        for etype, _, raw in events_until_marker(core, rv, claims=claims)
    ]
    return sorted(events, key=lambda e: e[0])


def _first(events, predicate) -> int:
    return next(i for i, ev in enumerate(events) if predicate(ev))


def test_ordered_ready_creates_each_pod_after_the_previous_is_ready(
    core, kubesim, ready_statefulset
):
    rv = core.list_namespaced_pod("default").metadata.resource_version
    ready_statefulset(replicas=3)
    events = events_until_marker(core, rv)
    added = [name for etype, name, _ in events if etype == "ADDED"]
    assert added == ["pg-0", "pg-1", "pg-2"]
    for prev, nxt in (("pg-0", "pg-1"), ("pg-1", "pg-2")):
        became_ready = _first(events, lambda ev, p=prev: ev[1] == p and pod_ready(ev[2]))
        created = _first(events, lambda ev, n=nxt: ev[0] == "ADDED" and ev[1] == n)
        assert became_ready < created


def test_parallel_creates_all_pods_before_any_is_ready(core, kubesim, ready_statefulset):
    rv = core.list_namespaced_pod("default").metadata.resource_version
    ready_statefulset(replicas=3, policy="Parallel")
    events = events_until_marker(core, rv)
    last_added = max(i for i, ev in enumerate(events) if ev[0] == "ADDED")
    first_ready = _first(events, lambda ev: pod_ready(ev[2]))
    assert last_added < first_ready


def test_pods_carry_identity_labels_owner_and_their_claim(kubesim, ready_statefulset):
    sts = ready_statefulset(replicas=2)
    pod = kubesim.get("pods", "default", "pg-1")
    labels = pod["metadata"]["labels"]
    assert labels["app"] == "pg"
    assert labels["statefulset.kubernetes.io/pod-name"] == "pg-1"
    assert labels["apps.kubernetes.io/pod-index"] == "1"
    assert labels["controller-revision-hash"] == sts["status"]["updateRevision"]
    owner = pod["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "StatefulSet",
        "pg",
        sts["metadata"]["uid"],
        True,
    )
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "data-pg-1"}} in pod["spec"][
        "volumes"
    ]
    assert pod["spec"]["hostname"] == "pg-1"
    assert pod["spec"]["subdomain"] == "pg"
    claim = kubesim.get("pvc", "default", "data-pg-1")
    assert claim["status"]["phase"] == "Bound"
    assert claim["metadata"]["labels"] == {"app": "pg"}


def test_claims_are_created_before_their_pods(core, kubesim, ready_statefulset):
    rv = core.list_namespaced_pod("default").metadata.resource_version
    ready_statefulset(replicas=1, claims=("data", "wal"))
    claims_added = {
        name: int(raw["metadata"]["resourceVersion"])
        for etype, name, raw in events_until_marker(core, rv, claims=True)
        if etype == "ADDED"
    }
    pod_added = next(
        int(raw["metadata"]["resourceVersion"])
        for etype, name, raw in events_until_marker(core, rv)
        if etype == "ADDED" and name == "pg-0"
    )
    assert sorted(claims_added) == ["data-pg-0", "wal-pg-0"]
    assert max(claims_added.values()) < pod_added


def test_scale_down_removes_the_highest_ordinal_first_and_waits_for_each(
    core, apps, kubesim, ready_statefulset
):
    ready_statefulset(replicas=3)
    rv = core.list_namespaced_pod("default").metadata.resource_version
    apps.patch_namespaced_stateful_set_scale("pg", "default", {"spec": {"replicas": 0}})
    kubesim.wait_for(lambda: not kubesim.list("pods", "default", "app=pg"))
    events = events_until_marker(core, rv)
    deleted = [name for etype, name, _ in events if etype == "DELETED"]
    assert deleted == ["pg-2", "pg-1", "pg-0"]
    for gone, nxt in (("pg-2", "pg-1"), ("pg-1", "pg-0")):
        gone_at = _first(events, lambda ev, g=gone: ev[0] == "DELETED" and ev[1] == g)
        next_starts = _first(
            events, lambda ev, n=nxt: ev[1] == n and ev[2]["metadata"].get("deletionTimestamp")
        )
        assert gone_at < next_starts


def test_scale_down_keeps_the_claims(apps, kubesim, ready_statefulset):
    ready_statefulset(replicas=3)
    apps.patch_namespaced_stateful_set_scale("pg", "default", {"spec": {"replicas": 1}})
    kubesim.wait_for(lambda: len(kubesim.list("pods", "default", "app=pg")) == 1)
    assert [c["metadata"]["name"] for c in kubesim.list("pvc", "default")] == [
        "data-pg-0",
        "data-pg-1",
        "data-pg-2",
    ]


def test_status_lags_the_spec_until_the_controller_observes_it(apps, kubesim, ready_statefulset):
    ready_statefulset(replicas=2)
    kubesim.controllers.pause()
    apps.patch_namespaced_stateful_set_scale("pg", "default", {"spec": {"replicas": 3}})
    sts = apps.read_namespaced_stateful_set("pg", "default")
    assert sts.metadata.generation == 2
    assert sts.status.observed_generation == 1
    assert sts.status.replicas == 2
    kubesim.controllers.resume()
    kubesim.wait_for(
        lambda: kubesim.get("sts", "default", "pg")["status"].get("readyReplicas") == 3
    )
    assert kubesim.get("sts", "default", "pg")["status"]["observedGeneration"] == 2


def test_a_read_straight_after_a_scale_sees_the_old_status_without_pausing(
    apps, kubesim, ready_statefulset
):
    """The controllers are running; they just have not heard of the change yet."""
    ready_statefulset(replicas=2)
    kubesim.set_delays(observe_delay=5)  # far longer than any scheduling hiccup
    for replicas in (3, 1):  # up and down
        apps.patch_namespaced_stateful_set_scale("pg", "default", {"spec": {"replicas": replicas}})
        sts = apps.read_namespaced_stateful_set("pg", "default")
        assert sts.status.observed_generation < sts.metadata.generation
        assert sts.status.replicas == 2
        assert apps.read_namespaced_stateful_set_scale("pg", "default").status.replicas == 2
    kubesim.wait_passes(2)  # the controller runs, but leaves the StatefulSet alone
    assert len(kubesim.list("pods", "default", "app=pg")) == 2
    assert kubesim.get("sts", "default", "pg")["status"]["observedGeneration"] == 1
    kubesim.set_delays(observe_delay=0.03)
    kubesim.wait_for(
        lambda: (
            (s := kubesim.get("sts", "default", "pg"))["status"]["observedGeneration"]
            == s["metadata"]["generation"]
            and s["status"]["replicas"] == 1
        )
    )


def test_the_fixture_makes_the_controllers_notice_spec_changes_late(kubesim):
    assert kubesim.knobs.observe_delay > 0


def test_terminating_pods_count_in_replicas_and_ready_but_not_current(
    apps, kubesim, ready_statefulset
):
    ready_statefulset(replicas=3)
    kubesim.slow_termination("default", "pg-2", 30)
    apps.patch_namespaced_stateful_set_scale("pg", "default", {"spec": {"replicas": 2}})

    def observed():
        sts = kubesim.get("sts", "default", "pg")
        pod = kubesim.get("pods", "default", "pg-2")
        done = sts["status"]["observedGeneration"] == sts["metadata"]["generation"]
        return sts if done and pod["metadata"].get("deletionTimestamp") else None

    status = kubesim.wait_for(observed)["status"]
    assert status["replicas"] == 3
    assert status["readyReplicas"] == 3
    assert status["currentReplicas"] == 2
    assert status["updatedReplicas"] == 2


def test_a_terminating_claim_blocks_its_pod_until_it_is_gone(
    apps, core, kubesim, ready_statefulset
):
    ready_statefulset(replicas=1)
    old_uid = kubesim.get("pvc", "default", "data-pg-0")["metadata"]["uid"]
    apps.patch_namespaced_stateful_set_scale("pg", "default", {"spec": {"replicas": 0}})
    kubesim.wait_for(lambda: kubesim.get("pods", "default", "pg-0") is None)
    kubesim.stuck_finalizer("default", "data-pg-0")
    core.delete_namespaced_persistent_volume_claim("data-pg-0", "default")
    apps.patch_namespaced_stateful_set_scale("pg", "default", {"spec": {"replicas": 1}})

    def scale_observed():
        sts = kubesim.get("sts", "default", "pg")
        return sts["status"].get("observedGeneration") == sts["metadata"]["generation"]

    kubesim.wait_for(scale_observed)
    assert kubesim.get("pods", "default", "pg-0") is None
    assert kubesim.get("pvc", "default", "data-pg-0")["metadata"]["deletionTimestamp"]
    kubesim.stuck_finalizer("default", "data-pg-0", stuck=False)
    kubesim.wait_for(lambda: pod_ready(kubesim.get("pods", "default", "pg-0")))
    assert kubesim.get("pvc", "default", "data-pg-0")["metadata"]["uid"] != old_uid


def test_ordered_ready_stalls_behind_a_pod_that_never_becomes_ready(kubesim):
    kubesim.pod_never_ready("default", "pg-1")
    kubesim.apply(statefulset_yaml(replicas=3))

    def stalled():
        sts = kubesim.get("sts", "default", "pg")
        pod = kubesim.get("pods", "default", "pg-1")
        running = pod and pod["status"].get("phase") == "Running"
        return running and sts["status"].get("replicas") == 2

    kubesim.wait_for(stalled)
    assert kubesim.get("pods", "default", "pg-2") is None
    assert kubesim.get("sts", "default", "pg")["status"]["readyReplicas"] == 1
    kubesim.pod_never_ready("default", "pg-1", never=False)
    kubesim.wait_for(lambda: pod_ready(kubesim.get("pods", "default", "pg-2")))


def test_a_deleted_pod_comes_back_with_the_same_name_and_claim(core, kubesim, ready_statefulset):
    ready_statefulset(replicas=2)
    old = kubesim.get("pods", "default", "pg-0")
    claim_uid = kubesim.get("pvc", "default", "data-pg-0")["metadata"]["uid"]
    core.delete_namespaced_pod("pg-0", "default")

    def replaced():
        pod = kubesim.get("pods", "default", "pg-0")
        return (
            pod
            if pod and pod["metadata"]["uid"] != old["metadata"]["uid"] and pod_ready(pod)
            else None
        )

    kubesim.wait_for(replaced)
    assert kubesim.get("pvc", "default", "data-pg-0")["metadata"]["uid"] == claim_uid


def test_a_template_change_rolls_pods_from_the_highest_ordinal(apps, kubesim, ready_statefulset):
    before = ready_statefulset(replicas=2)["status"]["updateRevision"]
    patch = {
        "spec": {"template": {"spec": {"containers": [{"name": "db", "image": "postgres:17"}]}}}
    }
    apps.patch_namespaced_stateful_set("pg", "default", patch)

    def rolled():
        sts = kubesim.get("sts", "default", "pg")
        status = sts["status"]
        done = (
            status["observedGeneration"] == sts["metadata"]["generation"]  # status lags the spec
            and status.get("updatedReplicas") == 2
            and status.get("readyReplicas") == 2
            and status["currentRevision"] == status["updateRevision"]
        )
        return status if done else None

    status = kubesim.wait_for(rolled)
    assert status["updateRevision"] != before
    images = [
        p["spec"]["containers"][0]["image"] for p in kubesim.list("pods", "default", "app=pg")
    ]
    assert images == ["postgres:17", "postgres:17"]


def _delete_pinned(core, name: str, uid: str) -> None:
    core.delete_namespaced_pod(
        name,
        "default",
        body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid)),
    )


def test_a_pod_deleted_while_its_claim_is_terminating_waits_for_a_fresh_claim(
    core, kubesim, ready_statefulset
):
    """The rebuild of one member: delete its claim (Terminating: the pod still uses it),
    then its pod. The controller creates no pod while the claim is Terminating; once the claim
    is gone it creates a new claim from the template, then the pod on it."""
    ready_statefulset(replicas=3)
    others = {n: kubesim.get("pods", "default", n)["metadata"]["uid"] for n in ("pg-0", "pg-2")}
    old_pod = kubesim.get("pods", "default", "pg-1")["metadata"]["uid"]
    old_claim = kubesim.get("pvc", "default", "data-pg-1")["metadata"]["uid"]
    rv = core.list_namespaced_pod("default").metadata.resource_version
    core.delete_namespaced_persistent_volume_claim("data-pg-1", "default")
    kubesim.wait_passes(2)
    assert kubesim.get("pvc", "default", "data-pg-1")["metadata"]["deletionTimestamp"]
    _delete_pinned(core, "pg-1", old_pod)

    def replaced():
        pod = kubesim.get("pods", "default", "pg-1")
        return pod if pod and pod["metadata"]["uid"] != old_pod and pod_ready(pod) else None

    new_pod = kubesim.wait_for(replaced)
    new_claim = kubesim.get("pvc", "default", "data-pg-1")
    assert new_claim["metadata"]["uid"] != old_claim
    assert new_claim["status"]["phase"] == "Bound"
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "data-pg-1"}} in new_pod["spec"][
        "volumes"
    ]

    events = _pod_and_claim_events(core, rv)

    def at(etype: str, kind: str, name: str, uid: str, same: bool = True) -> int:
        return next(
            version
            for version, t, k, raw in events
            if (t, k, raw["metadata"]["name"]) == (etype, kind, name)
            and (raw["metadata"]["uid"] == uid) is same
        )

    pod_gone = at("DELETED", "Pod", "pg-1", old_pod)
    claim_gone = at("DELETED", "Claim", "data-pg-1", old_claim)
    claim_created = at("ADDED", "Claim", "data-pg-1", old_claim, same=False)
    pod_created = at("ADDED", "Pod", "pg-1", old_pod, same=False)
    assert pod_gone < claim_gone < claim_created < pod_created
    assert [e[1] for e in events if e[2] == "Pod" and e[3]["metadata"]["name"] == "pg-1"][:2] == [
        "MODIFIED",
        "DELETED",
    ]  # Terminating, then gone: no pod in between
    # The other members were not touched at all: no event, same pods, still Ready.
    assert [e for e in events if e[3]["metadata"]["name"] in others] == []
    for name, uid in others.items():
        pod = kubesim.get("pods", "default", name)
        assert pod["metadata"]["uid"] == uid
        assert pod_ready(pod)


def test_no_pod_is_created_for_as_long_as_its_claim_stays_terminating(
    core, kubesim, ready_statefulset
):
    ready_statefulset(replicas=2)
    old_claim = kubesim.get("pvc", "default", "data-pg-1")["metadata"]["uid"]
    kubesim.stuck_finalizer("default", "data-pg-1")  # Terminating well after its pod is gone
    core.delete_namespaced_persistent_volume_claim("data-pg-1", "default")
    _delete_pinned(core, "pg-1", kubesim.get("pods", "default", "pg-1")["metadata"]["uid"])
    kubesim.wait_for(lambda: kubesim.get("pods", "default", "pg-1") is None)
    kubesim.wait_passes(3)
    assert kubesim.get("pods", "default", "pg-1") is None
    claim = kubesim.get("pvc", "default", "data-pg-1")
    assert (claim["metadata"]["uid"], bool(claim["metadata"]["deletionTimestamp"])) == (
        old_claim,
        True,
    )
    assert kubesim.get("sts", "default", "pg")["status"]["readyReplicas"] == 1
    kubesim.stuck_finalizer("default", "data-pg-1", stuck=False)
    kubesim.wait_for(lambda: pod_ready(kubesim.get("pods", "default", "pg-1")))
    assert kubesim.get("pvc", "default", "data-pg-1")["metadata"]["uid"] != old_claim


def test_a_terminating_claim_does_not_keep_the_pods_other_claims_from_being_created(
    core, kubesim, ready_statefulset
):
    ready_statefulset(replicas=1, claims=("data", "wal"))
    old_wal = kubesim.get("pvc", "default", "wal-pg-0")["metadata"]["uid"]
    kubesim.stuck_finalizer("default", "data-pg-0")
    kubesim.controllers.pause()
    core.delete_namespaced_persistent_volume_claim("data-pg-0", "default")
    core.delete_namespaced_persistent_volume_claim("wal-pg-0", "default")
    core.delete_namespaced_pod("pg-0", "default", grace_period_seconds=0)
    kubesim.controllers.resume()
    # wal-pg-0 is free (its pod is gone): it goes and comes back from the template, while
    # data-pg-0 stays Terminating and the pod is still not created.
    kubesim.wait_for(
        lambda: (c := kubesim.get("pvc", "default", "wal-pg-0")) and c["metadata"]["uid"] != old_wal
    )
    kubesim.wait_passes(2)
    assert kubesim.get("pods", "default", "pg-0") is None
    kubesim.stuck_finalizer("default", "data-pg-0", stuck=False)
    kubesim.wait_for(lambda: pod_ready(kubesim.get("pods", "default", "pg-0")))
