"""Deployment rollouts through the client: pods replaced within maxSurge and maxUnavailable
(or all at once with Recreate), minReadySeconds, the Progressing condition and its deadline,
and status that lags a template change. Every state the pods went through is rebuilt from
watch events, which arrive in resourceVersion order."""

from __future__ import annotations

from typing import Any

import pytest
from kubesim_helpers import events_until_marker, pod_ready

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
HASH = "pod-template-hash"


def web(replicas: int = 3, strategy: dict[str, Any] | None = None, **spec: Any) -> dict:
    """A Deployment `web` (pods labelled app=web) with the given strategy and spec fields."""
    body: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
        },
        **spec,
    }
    if strategy:
        body["strategy"] = strategy
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": body,
    }


def restart(apps, stamp: str = "2025-01-01T00:00:00Z") -> None:
    """What `kubectl rollout restart` sends: a strategic merge patch of one template annotation."""
    patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
    apps.patch_namespaced_deployment("web", "default", patch)


def rolled_out(kubesim, name: str = "web") -> dict | None:
    """The Deployment once kubectl rollout status would call it done, else None."""
    dep = kubesim.get("deployments", "default", name)
    status, want = dep.get("status") or {}, dep["spec"]["replicas"]
    done = (
        status.get("observedGeneration", 0) >= dep["metadata"]["generation"]
        and status.get("updatedReplicas", 0) == want
        and status.get("replicas", 0) == want
        and status.get("availableReplicas", 0) == want
    )
    return dep if done else None


def settled(kubesim) -> dict:
    """The pods of a rolled-out Deployment, once no old pod is left terminating."""
    kubesim.wait_for(lambda: rolled_out(kubesim), timeout=10)
    return kubesim.wait_for(
        lambda: (
            len(pods := kubesim.list("pods", "default", "app=web"))
            == kubesim.get("deployments", "default", "web")["spec"]["replicas"]
            and all(pod_ready(p) for p in pods)
            and pods
        ),
        timeout=10,
    )


def snapshot(raw) -> tuple[str, list[dict]]:
    """The app=web pods and the resourceVersion of that list, read in one request."""
    _, _, body = raw("GET", "/api/v1/namespaces/default/pods?labelSelector=app%3Dweb")
    return body["metadata"]["resourceVersion"], body["items"]


def states_since(core, rv: str, pods: list[dict]) -> list[list[dict]]:
    """Each state of the app=web pods after each event since `rv`, starting from `pods`."""
    current = {p["metadata"]["name"]: p for p in pods}
    states = []
    for etype, name, obj in events_until_marker(core, rv):
        if (obj["metadata"].get("labels") or {}).get("app") != "web":
            continue
        if etype == "DELETED":
            current.pop(name, None)
        else:
            current[name] = obj
        states.append(list(current.values()))
    return states


def live(pods: list[dict]) -> list[dict]:
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


@pytest.mark.parametrize(
    ("replicas", "max_surge", "max_unavailable", "surge", "unavailable"),
    [
        (4, None, None, 1, 1),  # the defaults, 25 % each
        (3, 0, 1, 0, 1),
        (3, 2, 0, 2, 0),
        (5, "30%", "30%", 2, 1),  # surge rounded up, unavailable down
    ],
)
def test_a_rolling_update_stays_within_max_surge_and_max_unavailable_at_every_change(
    apps, core, raw, kubesim, replicas, max_surge, max_unavailable, surge, unavailable
):
    rolling = {k: v for k, v in (("maxSurge", max_surge), ("maxUnavailable", max_unavailable))}
    strategy = {
        "type": "RollingUpdate",
        "rollingUpdate": {k: v for k, v in rolling.items() if v is not None},
    }
    kubesim.create("deployments", "default", web(replicas, strategy))
    old_uids = {p["metadata"]["uid"] for p in settled(kubesim)}
    rv, before = snapshot(raw)
    restart(apps)
    after = settled(kubesim)
    states = states_since(core, rv, before)
    running = [len(live(s)) for s in states]
    ready = [sum(pod_ready(p) for p in live(s)) for s in states]
    assert max(running) == replicas + surge
    assert min(ready) == replicas - unavailable
    assert not {p["metadata"]["uid"] for p in after} & old_uids
    assert len({p["metadata"]["labels"][HASH] for p in after}) == 1


def test_recreate_deletes_every_old_pod_before_creating_a_new_one(apps, core, raw, kubesim):
    kubesim.create("deployments", "default", web(3, {"type": "Recreate"}))
    old_hash = settled(kubesim)[0]["metadata"]["labels"][HASH]
    rv, before = snapshot(raw)
    restart(apps)
    after = settled(kubesim)
    for state in states_since(core, rv, before):
        hashes = {p["metadata"]["labels"][HASH] for p in state}
        assert hashes == {old_hash} or old_hash not in hashes  # never old and new together
    assert {p["metadata"]["labels"][HASH] for p in after} != {old_hash}


def test_a_rollout_that_makes_no_progress_exceeds_its_deadline_and_keeps_the_old_pods(
    apps, kubesim
):
    kubesim.create("deployments", "default", web(2, progressDeadlineSeconds=1))
    old = {p["metadata"]["name"] for p in settled(kubesim)}
    kubesim.pods_never_ready("default", "track=broken")
    patch = {"spec": {"template": {"metadata": {"labels": {"app": "web", "track": "broken"}}}}}
    apps.patch_namespaced_deployment("web", "default", patch)

    def progressing():
        conds = kubesim.get("deployments", "default", "web")["status"]["conditions"]
        return next(c for c in conds if c["type"] == "Progressing")

    cond = kubesim.wait_for(
        lambda: (c := progressing())["reason"] == "ProgressDeadlineExceeded" and c, timeout=5
    )
    assert cond["status"] == "False"
    assert cond["message"].endswith("has timed out progressing.")
    status = kubesim.get("deployments", "default", "web")["status"]
    # 25 % of 2: one surge pod that never becomes Ready, no old pod may go.
    assert (status["replicas"], status["updatedReplicas"], status["availableReplicas"]) == (3, 1, 2)
    assert old <= {p["metadata"]["name"] for p in live(kubesim.list("pods", "default", "app=web"))}


def test_a_fixed_template_after_the_deadline_rolls_out_and_drops_the_broken_pod(apps, kubesim):
    kubesim.create("deployments", "default", web(2, progressDeadlineSeconds=1))
    settled(kubesim)
    kubesim.pods_never_ready("default", "track=broken")
    broken = {"spec": {"template": {"metadata": {"labels": {"app": "web", "track": "broken"}}}}}
    apps.patch_namespaced_deployment("web", "default", broken)

    def reason():
        conds = kubesim.get("deployments", "default", "web")["status"]["conditions"]
        return next(c for c in conds if c["type"] == "Progressing")["reason"]

    kubesim.wait_for(lambda: reason() == "ProgressDeadlineExceeded", timeout=5)
    fixed = {"spec": {"template": {"metadata": {"labels": {"track": None}}}}}
    apps.patch_namespaced_deployment("web", "default", fixed)
    pods = settled(kubesim)
    assert reason() == "NewReplicaSetAvailable"
    assert not [p for p in pods if "track" in p["metadata"]["labels"]]


def test_min_ready_seconds_holds_back_availability_and_the_rollout(apps, kubesim):
    kubesim.create("deployments", "default", web(2, minReadySeconds=1))

    def ready_but_not_available():
        status = kubesim.get("deployments", "default", "web").get("status") or {}
        return status.get("readyReplicas") == 2 and status

    status = kubesim.wait_for(ready_but_not_available)
    assert status.get("availableReplicas", 0) < 2
    assert status["unavailableReplicas"] == 2 - status.get("availableReplicas", 0)
    assert kubesim.wait_for(lambda: rolled_out(kubesim), timeout=5)


def test_status_lags_a_template_change_until_the_controller_observes_it(apps, kubesim):
    kubesim.create("deployments", "default", web(2))
    settled(kubesim)
    kubesim.set_delays(observe_delay=5)
    restart(apps)
    dep = apps.read_namespaced_deployment("web", "default")
    assert (dep.metadata.generation, dep.status.observed_generation) == (2, 1)
    assert dep.status.updated_replicas == 2  # still the old template's count
    kubesim.wait_passes(2)
    assert all(
        RESTARTED_AT not in (p["metadata"].get("annotations") or {})
        for p in kubesim.list("pods", "default", "app=web")
    )
    kubesim.set_delays(observe_delay=0)
    pods = settled(kubesim)
    assert all(p["metadata"]["annotations"][RESTARTED_AT] for p in pods)
    assert (
        kubesim.get("deployments", "default", "web")["metadata"]["annotations"][
            "deployment.kubernetes.io/revision"
        ]
        == "2"
    )


def test_a_paused_deployment_does_not_roll_out_until_resumed(apps, kubesim):
    kubesim.create("deployments", "default", web(2))
    old = {p["metadata"]["uid"] for p in settled(kubesim)}
    apps.patch_namespaced_deployment("web", "default", {"spec": {"paused": True}})
    restart(apps)
    dep = kubesim.wait_for(
        lambda: (
            (d := kubesim.get("deployments", "default", "web"))["status"]["observedGeneration"]
            == d["metadata"]["generation"]
            and d
        )
    )
    conds = {c["type"]: c for c in dep["status"]["conditions"]}
    assert (conds["Progressing"]["status"], conds["Progressing"]["reason"]) == (
        "Unknown",
        "DeploymentPaused",
    )
    kubesim.wait_passes(2)
    assert {p["metadata"]["uid"] for p in kubesim.list("pods", "default", "app=web")} == old
    apps.patch_namespaced_deployment("web", "default", {"spec": {"paused": False}})
    assert not {p["metadata"]["uid"] for p in settled(kubesim)} & old
