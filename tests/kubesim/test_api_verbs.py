"""get, list, create, update, patch and delete through the real `kubernetes` client: versions,
generations, selectors, the Scale subresource and the real Status error bodies."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubesim_helpers import deployment_yaml, pod_ready


def _status(exc: ApiException) -> dict:
    return json.loads(exc.body)


def _pod(name: str, labels: dict | None = None) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]},
    }


def test_created_objects_carry_uid_version_timestamp_and_defaults(core):
    pod = core.create_namespaced_pod("default", _pod("p1"))
    assert pod.metadata.uid
    assert int(pod.metadata.resource_version) > 0
    assert pod.metadata.creation_timestamp is not None
    assert pod.spec.restart_policy == "Always"
    assert pod.spec.termination_grace_period_seconds == 30
    assert pod.status.phase == "Pending"


def test_every_write_takes_the_next_global_resource_version(core, apps, kubesim):
    a = core.create_namespaced_pod("default", _pod("a"))
    kubesim.controllers.pause()
    kubesim.apply(deployment_yaml())
    b = core.create_namespaced_pod("default", _pod("b"))
    dep = apps.read_namespaced_deployment("web", "default")
    assert int(a.metadata.resource_version) < int(dep.metadata.resource_version)
    assert int(dep.metadata.resource_version) < int(b.metadata.resource_version)
    listed = core.list_namespaced_pod("default")
    assert int(listed.metadata.resource_version) >= int(b.metadata.resource_version)


def test_create_of_an_existing_name_is_already_exists(core):
    core.create_namespaced_pod("default", _pod("dup"))
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_pod("default", _pod("dup"))
    body = _status(exc.value)
    assert exc.value.status == 409
    assert body["reason"] == "AlreadyExists"
    assert body["message"] == 'pods "dup" already exists'


def test_create_in_a_missing_namespace_is_not_found(core):
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_pod("nowhere", _pod("x"))
    assert exc.value.status == 404
    assert _status(exc.value)["message"] == 'namespaces "nowhere" not found'


def test_missing_statefulset_is_not_found_with_the_real_message(apps):
    with pytest.raises(ApiException) as exc:
        apps.read_namespaced_stateful_set("pg", "default")
    body = _status(exc.value)
    assert exc.value.status == 404
    assert body["kind"] == "Status"
    assert body["status"] == "Failure"
    assert body["reason"] == "NotFound"
    assert body["message"] == 'statefulsets.apps "pg" not found'
    assert body["details"] == {"name": "pg", "group": "apps", "kind": "statefulsets"}


def test_update_with_a_stale_resource_version_is_a_conflict(apps, kubesim):
    kubesim.apply(deployment_yaml())
    kubesim.controllers.pause()  # no status writes between our read and our write
    stale = apps.read_namespaced_deployment("web", "default")
    fresh = apps.read_namespaced_deployment("web", "default")
    fresh.metadata.labels["tier"] = "front"
    apps.replace_namespaced_deployment("web", "default", fresh)
    stale.metadata.labels["tier"] = "back"
    with pytest.raises(ApiException) as exc:
        apps.replace_namespaced_deployment("web", "default", stale)
    body = _status(exc.value)
    assert exc.value.status == 409
    assert body["reason"] == "Conflict"
    assert body["message"] == (
        'Operation cannot be fulfilled on deployments.apps "web": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    assert kubesim.get("deployments", "default", "web")["metadata"]["labels"]["tier"] == "front"


def test_generation_rises_on_spec_changes_only(apps, kubesim):
    kubesim.apply(deployment_yaml())
    dep = apps.read_namespaced_deployment("web", "default")
    assert dep.metadata.generation == 1
    apps.patch_namespaced_deployment("web", "default", {"metadata": {"labels": {"x": "y"}}})
    assert apps.read_namespaced_deployment("web", "default").metadata.generation == 1
    apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 5}})
    assert apps.read_namespaced_deployment("web", "default").metadata.generation == 2
    apps.patch_namespaced_deployment_status("web", "default", {"status": {"replicas": 9}})
    assert apps.read_namespaced_deployment("web", "default").metadata.generation == 2


def test_a_patch_that_changes_nothing_keeps_the_resource_version(apps, kubesim):
    kubesim.apply(deployment_yaml(replicas=2))
    kubesim.controllers.pause()
    before = apps.read_namespaced_deployment("web", "default").metadata.resource_version
    apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 2}})
    after = apps.read_namespaced_deployment("web", "default").metadata.resource_version
    assert before == after


def test_scale_reads_like_autoscaling_v1_with_the_workload_version(
    apps, kubesim, ready_statefulset
):
    ready_statefulset(replicas=2)
    scale = apps.read_namespaced_stateful_set_scale("pg", "default")
    sts = apps.read_namespaced_stateful_set("pg", "default")
    assert scale.kind == "Scale"
    assert scale.api_version == "autoscaling/v1"
    assert scale.spec.replicas == 2
    assert scale.status.replicas == 2
    assert scale.status.selector == "app=pg"
    assert scale.metadata.resource_version == sts.metadata.resource_version
    assert scale.metadata.uid == sts.metadata.uid


def test_scale_to_zero_omits_replicas_from_the_scale_spec(apps, kubesim, raw):
    kubesim.apply(deployment_yaml())
    apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 0}})
    _, _, body = raw("GET", "/apis/apps/v1/namespaces/default/deployments/web/scale")
    assert body["spec"] == {}
    assert apps.read_namespaced_deployment_scale("web", "default").spec.replicas is None


def test_scale_replace_with_a_stale_version_conflicts_and_a_fresh_one_applies(apps, kubesim):
    kubesim.apply(deployment_yaml())
    kubesim.controllers.pause()
    scale = apps.read_namespaced_deployment_scale("web", "default")
    apps.patch_namespaced_deployment("web", "default", {"metadata": {"labels": {"bump": "1"}}})
    scale.spec.replicas = 4
    with pytest.raises(ApiException) as exc:
        apps.replace_namespaced_deployment_scale("web", "default", scale)
    assert exc.value.status == 409
    assert _status(exc.value)["reason"] == "Conflict"
    fresh = apps.read_namespaced_deployment_scale("web", "default")
    fresh.spec.replicas = 4
    assert apps.replace_namespaced_deployment_scale("web", "default", fresh).spec.replicas == 4
    assert kubesim.get("deployments", "default", "web")["spec"]["replicas"] == 4


STALE_MESSAGE = (
    'Operation cannot be fulfilled on deployments.apps "web": the object has been modified; '
    "please apply your changes to the latest version and try again"
)


@pytest.mark.parametrize(
    "content_type",
    ["application/strategic-merge-patch+json", "application/merge-patch+json"],
)
@pytest.mark.parametrize("subresource", ["", "/scale"])
def test_a_patch_carrying_a_stale_resource_version_conflicts(
    raw, kubesim, subresource, content_type
):
    kubesim.apply(deployment_yaml(replicas=2))
    kubesim.controllers.pause()  # only our writes move the version
    old_rv = kubesim.get("deployments", "default", "web")["metadata"]["resourceVersion"]
    kubesim.apply(deployment_yaml(replicas=3))  # someone else's write
    path = f"/apis/apps/v1/namespaces/default/deployments/web{subresource}"
    patch = {"metadata": {"resourceVersion": old_rv}, "spec": {"replicas": 5}}

    status, _, body = raw("PATCH", path, patch, {"Content-Type": content_type})

    assert status == 409
    assert (body["reason"], body["message"]) == ("Conflict", STALE_MESSAGE)
    assert kubesim.get("deployments", "default", "web")["spec"]["replicas"] == 3
    # The same patch with the current version applies.
    patch["metadata"]["resourceVersion"] = kubesim.get("deployments", "default", "web")["metadata"][
        "resourceVersion"
    ]
    status, _, body = raw("PATCH", path, patch, {"Content-Type": content_type})
    assert status == 200, body
    assert kubesim.get("deployments", "default", "web")["spec"]["replicas"] == 5


def test_a_json_patch_setting_a_stale_resource_version_conflicts(apps, kubesim):
    kubesim.apply(deployment_yaml(replicas=2))
    kubesim.controllers.pause()
    old_rv = apps.read_namespaced_deployment_scale("web", "default").metadata.resource_version
    apps.patch_namespaced_deployment("web", "default", {"metadata": {"labels": {"bump": "1"}}})
    ops = [
        {"op": "replace", "path": "/metadata/resourceVersion", "value": old_rv},
        {"op": "replace", "path": "/spec/replicas", "value": 4},
    ]
    for patch_scale in (apps.patch_namespaced_deployment_scale, apps.patch_namespaced_deployment):
        with pytest.raises(ApiException) as exc:
            patch_scale("web", "default", ops)  # a list body goes as json-patch+json
        assert exc.value.status == 409
        assert _status(exc.value)["message"] == STALE_MESSAGE
    assert kubesim.get("deployments", "default", "web")["spec"]["replicas"] == 2


def test_negative_replicas_are_invalid_and_change_nothing(apps, kubesim):
    kubesim.apply(deployment_yaml(replicas=2))
    kubesim.controllers.pause()
    before = kubesim.get("deployments", "default", "web")
    with pytest.raises(ApiException) as exc:
        apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": -1}})
    body = _status(exc.value)
    assert exc.value.status == 422
    assert body["reason"] == "Invalid"
    assert body["message"] == (
        'Scale.autoscaling "web" is invalid: spec.replicas: Invalid value: -1: '
        "must be greater than or equal to 0"
    )
    assert body["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": "Invalid value: -1: must be greater than or equal to 0",
            "field": "spec.replicas",
        }
    ]
    assert kubesim.get("deployments", "default", "web") == before


def test_scale_accepts_a_json_patch_list(apps, kubesim):
    kubesim.apply(deployment_yaml(replicas=2))
    apps.patch_namespaced_deployment_scale(
        "web", "default", [{"op": "replace", "path": "/spec/replicas", "value": 3}]
    )
    assert kubesim.get("deployments", "default", "web")["spec"]["replicas"] == 3
    assert kubesim.requests.filter(verb="patch")[-1].content_type == "application/json-patch+json"


def test_merge_patch_replaces_lists_and_strategic_merge_patch_merges_them(apps, kubesim):
    kubesim.apply(deployment_yaml())
    sidecar = {"spec": {"template": {"spec": {"containers": [{"name": "log", "image": "fluent"}]}}}}
    apps.patch_namespaced_deployment("web", "default", sidecar)  # strategic merge: by name
    names = [
        c["name"]
        for c in kubesim.get("deploy", "default", "web")["spec"]["template"]["spec"]["containers"]
    ]
    assert names == ["web", "log"]
    apps.patch_namespaced_deployment(
        "web", "default", sidecar, _content_type="application/merge-patch+json"
    )
    names = [
        c["name"]
        for c in kubesim.get("deploy", "default", "web")["spec"]["template"]["spec"]["containers"]
    ]
    assert names == ["log"]


def test_label_selectors_support_the_full_grammar(core, kubesim):
    for name, labels in {
        "a": {"app": "db", "tier": "1"},
        "b": {"app": "db", "tier": "2", "canary": "yes"},
        "c": {"app": "web"},
        "d": {},
    }.items():
        core.create_namespaced_pod("default", _pod(name, labels))

    def names(selector: str) -> list[str]:
        return [
            p.metadata.name
            for p in core.list_namespaced_pod("default", label_selector=selector).items
        ]

    assert names("app=db") == ["a", "b"]
    assert names("app==web") == ["c"]
    assert names("app!=db") == ["c", "d"]
    assert names("app in (web, db),tier notin (2)") == ["a", "c"]
    assert names("canary") == ["b"]
    assert names("!canary,app") == ["a", "c"]
    assert names("tier>1") == ["b"]


def test_field_selectors_on_name_and_namespace(core, kubesim):
    core.create_namespaced_pod("default", _pod("one"))
    core.create_namespaced_pod("default", _pod("two"))
    got = core.list_namespaced_pod("default", field_selector="metadata.name=two").items
    assert [p.metadata.name for p in got] == ["two"]
    got = core.list_pod_for_all_namespaces(
        field_selector="metadata.namespace=default,metadata.name!=two"
    )
    assert [p.metadata.name for p in got.items] == ["one"]


def test_unsupported_field_selector_is_a_bad_request(core):
    with pytest.raises(ApiException) as exc:
        core.list_namespaced_pod("default", field_selector="spec.color=blue")
    assert exc.value.status == 400
    assert _status(exc.value)["message"] == "field label not supported: spec.color"


def test_list_items_are_typed_and_the_list_has_kind_and_version(raw, core):
    core.create_namespaced_pod("default", _pod("x"))
    _, _, body = raw("GET", "/api/v1/namespaces/default/pods")
    assert body["kind"] == "PodList"
    assert body["apiVersion"] == "v1"
    assert body["metadata"]["resourceVersion"].isdigit()
    assert "kind" not in body["items"][0]


def test_deleting_a_running_pod_is_graceful_and_answers_the_pod(core, kubesim):
    core.create_namespaced_pod("default", _pod("p"))
    kubesim.wait_for(lambda: pod_ready(kubesim.get("pods", "default", "p")))
    kubesim.slow_termination("default", "p", 30)
    deleted = core.delete_namespaced_pod("p", "default")
    assert isinstance(deleted, client.V1Pod)
    assert deleted.metadata.deletion_timestamp is not None
    assert deleted.metadata.deletion_grace_period_seconds == 30
    assert kubesim.get("pods", "default", "p") is not None  # still listed while terminating


def test_grace_period_zero_removes_a_pod_at_once(core, kubesim):
    core.create_namespaced_pod("default", _pod("p"))
    kubesim.wait_for(lambda: pod_ready(kubesim.get("pods", "default", "p")))
    deleted = core.delete_namespaced_pod("p", "default", grace_period_seconds=0)
    assert deleted.metadata.name == "p"
    assert kubesim.get("pods", "default", "p") is None


def test_dry_run_delete_persists_nothing(core, kubesim):
    core.create_namespaced_pod("default", _pod("p"))
    kubesim.controllers.pause()
    before = kubesim.store.rv
    deleted = core.delete_namespaced_pod("p", "default", dry_run="All", grace_period_seconds=0)
    assert deleted.metadata.name == "p"
    assert kubesim.get("pods", "default", "p") is not None
    assert kubesim.store.rv == before


def test_dry_run_other_than_all_is_invalid(core, kubesim):
    core.create_namespaced_pod("default", _pod("p"))
    with pytest.raises(ApiException) as exc:
        core.delete_namespaced_pod("p", "default", dry_run="Server")
    body = _status(exc.value)
    assert exc.value.status == 422
    assert body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "dryRun"
    assert kubesim.get("pods", "default", "p") is not None


def test_delete_options_in_the_body_win_over_the_query(core, kubesim):
    core.create_namespaced_pod("default", _pod("p"))
    kubesim.wait_for(lambda: pod_ready(kubesim.get("pods", "default", "p")))
    kubesim.slow_termination("default", "p", 30)
    body = client.V1DeleteOptions(grace_period_seconds=45)
    deleted = core.delete_namespaced_pod("p", "default", body=body, grace_period_seconds=0)
    assert deleted.metadata.deletion_grace_period_seconds == 45


def test_a_failed_uid_precondition_is_a_conflict(core, kubesim):
    core.create_namespaced_pod("default", _pod("p"))
    opts = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="not-the-uid"))
    with pytest.raises(ApiException) as exc:
        core.delete_namespaced_pod("p", "default", body=opts)
    body = _status(exc.value)
    assert exc.value.status == 409
    assert body["reason"] == "Conflict"
    assert "Precondition failed: UID in precondition: not-the-uid" in body["message"]
    assert kubesim.get("pods", "default", "p") is not None


def test_a_stale_resource_version_precondition_is_a_conflict(core, kubesim):
    pod = core.create_namespaced_pod("default", _pod("p"))
    core.patch_namespaced_pod("p", "default", {"metadata": {"labels": {"x": "1"}}})
    opts = client.V1DeleteOptions(
        preconditions=client.V1Preconditions(resource_version=pod.metadata.resource_version)
    )
    with pytest.raises(ApiException) as exc:
        core.delete_namespaced_pod("p", "default", body=opts)
    assert exc.value.status == 409


def test_deleting_a_deployment_answers_a_success_status_and_collects_its_pods(apps, kubesim):
    kubesim.apply(deployment_yaml())
    kubesim.wait_for(lambda: len(kubesim.list("pods", "default", "app=web")) == 2)
    status = apps.delete_namespaced_deployment("web", "default")  # the client returns a dict
    assert status["kind"] == "Status"
    assert status["status"] == "Success"
    assert status["details"]["kind"] == "deployments"
    kubesim.wait_for(lambda: not kubesim.list("pods", "default", "app=web"))


def test_foreground_deletion_keeps_the_owner_until_its_pods_are_gone(apps, kubesim):
    kubesim.apply(deployment_yaml())
    kubesim.wait_for(lambda: len(kubesim.list("pods", "default", "app=web")) == 2)
    kubesim.controllers.pause()
    apps.delete_namespaced_deployment("web", "default", propagation_policy="Foreground")
    dep = kubesim.get("deployments", "default", "web")
    assert dep["metadata"]["finalizers"] == ["foregroundDeletion"]
    assert dep["metadata"]["deletionTimestamp"]
    kubesim.controllers.resume()
    kubesim.wait_for(lambda: kubesim.get("deployments", "default", "web") is None)
    assert kubesim.list("pods", "default", "app=web") == []


def test_orphan_deletion_leaves_the_pods_without_owner(apps, kubesim):
    kubesim.apply(deployment_yaml())
    kubesim.wait_for(lambda: len(kubesim.list("pods", "default", "app=web")) == 2)
    apps.delete_namespaced_deployment("web", "default", propagation_policy="Orphan")
    kubesim.wait_for(lambda: kubesim.get("deployments", "default", "web") is None)
    pods = kubesim.list("pods", "default", "app=web")
    assert len(pods) == 2
    assert all("ownerReferences" not in p["metadata"] for p in pods)


def test_deleting_a_namespace_removes_its_contents_then_itself(core, kubesim):
    core.create_namespace({"metadata": {"name": "tmp"}})
    core.create_namespaced_pod("tmp", _pod("p"))
    # Frozen while the namespace is Terminating: with millisecond delays the namespace
    # controller could otherwise finish before the next request (a 404, not the 403).
    kubesim.controllers.pause()
    ns = core.delete_namespace("tmp")  # the client returns the namespace as a dict
    assert ns["status"]["phase"] == "Terminating"
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_pod("tmp", _pod("q"))
    assert exc.value.status == 403
    assert "because it is being terminated" in _status(exc.value)["message"]
    kubesim.controllers.resume()
    kubesim.wait_for(lambda: kubesim.get("namespaces", None, "tmp") is None)
    assert kubesim.list("pods", "tmp") == []


def test_status_updates_go_through_the_status_subresource_only(core, kubesim):
    core.create_namespaced_pod("default", _pod("p"))
    kubesim.controllers.pause()
    core.patch_namespaced_pod("p", "default", {"status": {"phase": "Failed"}})
    assert kubesim.get("pods", "default", "p")["status"]["phase"] == "Pending"
    core.patch_namespaced_pod_status("p", "default", {"status": {"phase": "Failed"}})
    assert kubesim.get("pods", "default", "p")["status"]["phase"] == "Failed"


def test_generate_name_gets_a_random_suffix(core):
    pod = core.create_namespaced_pod(
        "default",
        {
            "metadata": {"generateName": "job-"},
            "spec": {"containers": [{"name": "c", "image": "x"}]},
        },
    )
    assert pod.metadata.name.startswith("job-")
    assert len(pod.metadata.name) == len("job-") + 5


def test_the_system_namespaces_may_not_be_deleted(core, kubesim):
    with pytest.raises(ApiException) as exc:
        core.delete_namespace("kube-system")
    assert exc.value.status == 403
    assert (
        _status(exc.value)["message"]
        == 'namespaces "kube-system" is forbidden: this namespace may not be deleted'
    )
    assert kubesim.get("namespaces", None, "kube-system")["status"]["phase"] == "Active"


def test_claims_of_a_statefulset_with_delete_retention_go_with_it(apps, kubesim, ready_statefulset):
    ready_statefulset(replicas=1)
    kubesim.apply(
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: tmp}\n"
        "spec:\n  replicas: 1\n  selector: {matchLabels: {app: tmp}}\n"
        "  persistentVolumeClaimRetentionPolicy: {whenDeleted: Delete, whenScaled: Retain}\n"
        "  template:\n    metadata: {labels: {app: tmp}}\n"
        "    spec: {containers: [{name: c, image: x}]}\n"
        "  volumeClaimTemplates:\n  - metadata: {name: data}\n"
        "    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n"
    )
    kubesim.wait_for(lambda: kubesim.get("pvc", "default", "data-tmp-0"))
    apps.delete_namespaced_stateful_set("tmp", "default")
    apps.delete_namespaced_stateful_set("pg", "default")
    kubesim.wait_for(lambda: kubesim.get("pvc", "default", "data-tmp-0") is None)
    kubesim.wait_for(lambda: not kubesim.list("pods", "default"))
    assert kubesim.get("pvc", "default", "data-pg-0") is not None  # Retain keeps the claim
