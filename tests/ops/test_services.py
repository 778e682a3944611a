"""The primitive services called directly, as management commands and job steps call them:
namespace policy, input rules, one audit row per call with origin and job id, and errors."""

from __future__ import annotations

import pytest

from ops import errors, services
from ops.actors import Actor
from tests.ops.conftest import DB, audit_log, mutations

pytestmark = DB

JOB_ACTOR = Actor(name="alice", source_ip="10.0.0.9", origin="job")


def test_a_service_call_from_a_job_writes_one_row_with_origin_and_job_id(cluster):
    result = services.statefulset_scale(
        actor=JOB_ACTOR, namespace="prod", name="postgres", replicas=0, job_id="job-1"
    )

    assert result == services.ScaleResult(
        namespace="prod", kind="statefulset", name="postgres", replicas=0, previous_replicas=3
    )
    [row] = audit_log()
    assert (row.actor, row.origin, row.job_id, row.status) == ("alice", "job", "job-1", "success")


def test_a_delete_pinned_to_the_uid_a_caller_read_sends_no_read_of_its_own(cluster):
    uid = cluster.get("persistentvolumeclaims", "prod", "data-postgres-1")["metadata"]["uid"]

    services.pvc_delete(actor=JOB_ACTOR, namespace="prod", name="data-postgres-1", uid=uid)

    assert [(r.method, r.name) for r in cluster.requests] == [("DELETE", "data-postgres-1")]
    [row] = audit_log()
    assert (row.status, row.request_body) == ("success", {"preconditions": {"uid": uid}})


def test_a_delete_pinned_to_a_replaced_objects_uid_is_a_conflict_and_touches_nothing(cluster):
    with pytest.raises(errors.ObjectConflict, match="UID in precondition"):
        services.pod_delete(
            actor=JOB_ACTOR, namespace="prod", name="postgres-1", uid="uid-of-the-old-pod"
        )

    assert not cluster.get("pods", "prod", "postgres-1")["metadata"].get("deletionTimestamp")
    [row] = audit_log()
    assert (row.status, row.http_status, row.code) == ("error", 409, "conflict")


def test_the_cli_actor_names_the_os_user_and_comes_from_local(cluster):
    actor = Actor.for_cli()

    services.deployment_scale(actor=actor, namespace="prod", name="web", replicas=1)

    [row] = audit_log()
    assert row.actor.startswith("cli:")
    assert (row.source_ip, row.origin) == ("local", "cli")


@pytest.mark.parametrize("namespace", ["kube-system", "default", "production"])
def test_a_namespace_outside_the_allowed_list_is_denied_before_any_kubernetes_call(
    cluster, namespace
):
    with pytest.raises(errors.NamespaceDenied) as caught:
        services.pod_delete(actor=JOB_ACTOR, namespace=namespace, name="anything", job_id="j")

    assert caught.value.status_code == 403
    assert list(cluster.requests) == []
    [row] = audit_log()
    assert (row.status, row.job_id, row.namespace) == ("denied", "j", namespace)


def test_the_allowed_list_comes_from_settings(cluster, apiops):
    apiops(ALLOWED_NAMESPACES=("staging",))

    with pytest.raises(errors.NamespaceDenied):
        services.statefulset_scale(actor=JOB_ACTOR, namespace="prod", name="postgres", replicas=1)
    assert mutations(cluster) == []


def test_the_actor_scope_narrows_the_allowed_list(cluster):
    scoped = Actor(name="bot", source_ip="x", namespaces=("staging",))

    with pytest.raises(errors.NamespaceDenied):
        services.pvc_delete(actor=scoped, namespace="prod", name="data-postgres-0")
    services.pvc_delete(actor=scoped, namespace="staging", name="data-postgres-2")

    assert [r.status for r in audit_log()] == ["denied", "success"]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"namespace": "Prod", "name": "postgres", "replicas": 1}, "namespace"),
        ({"namespace": "prod", "name": "../etc", "replicas": 1}, "name"),
        ({"namespace": "prod", "name": "postgres", "replicas": True}, "replicas"),
        ({"namespace": "prod", "name": "postgres", "replicas": "1"}, "replicas"),
        ({"namespace": "prod", "name": "postgres", "replicas": -3}, "replicas"),
        ({"namespace": "prod", "name": "postgres", "replicas": 101}, "replicas"),
    ],
)
def test_services_enforce_the_input_rules_themselves(cluster, kwargs, field):
    with pytest.raises(errors.InvalidInput) as caught:
        services.statefulset_scale(actor=JOB_ACTOR, **kwargs)

    assert field in caught.value.errors
    assert list(cluster.requests) == []
    [row] = audit_log()
    assert (row.status, row.http_status) == ("error", 400)


def test_a_kubernetes_error_is_raised_from_the_gateway_error(cluster):
    from ops import k8s

    with pytest.raises(errors.ObjectNotFound) as caught:
        services.pvc_delete(actor=JOB_ACTOR, namespace="prod", name="no-such-claim")

    assert isinstance(caught.value.__cause__, k8s.K8sNotFound)
    assert caught.value.audited


def test_exactly_one_row_per_attempt_whatever_the_outcome(cluster):
    services.deployment_scale(actor=JOB_ACTOR, namespace="prod", name="web", replicas=2)
    with pytest.raises(errors.ObjectNotFound):
        services.deployment_scale(actor=JOB_ACTOR, namespace="prod", name="nope", replicas=2)
    with pytest.raises(errors.NamespaceDenied):
        services.deployment_scale(actor=JOB_ACTOR, namespace="kube-system", name="x", replicas=2)
    with pytest.raises(errors.InvalidInput):
        services.deployment_scale(actor=JOB_ACTOR, namespace="prod", name="web", replicas=-1)

    assert [r.status for r in audit_log()] == ["success", "error", "denied", "error"]
