"""An active job holds its StatefulSet: scaling it, deleting its pods or its claims through
the API or a command is 409 ``job_target_busy`` (audited, no Kubernetes call) until the job
ends; the job's own steps, other objects and other namespaces are not held."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from jobs.holds import active_job_holder
from jobs.models import Job, JobStatus
from ops import holds, services
from ops.actors import ORIGIN_JOB, Actor
from ops.errors import TargetHeldByJob
from tests.ops.conftest import TRANSACTIONAL_DB, audit_log, mutations

# Transactional: the hold is read through the audit connection, which sees committed jobs only.
pytestmark = TRANSACTIONAL_DB

# Ordinal 1: a replica of the demo's Patroni-labelled set, rebuilt in place.
REBUILD = {
    "namespace": "prod",
    "statefulset": "postgres",
    "ordinal": 1,
    "target_replicas": 3,
    "strategy": "in-place",
}
HELD_OPERATIONS = [
    ("post", "/ops/namespaces/prod/statefulsets/postgres/scale", {"replicas": 5}),
    ("delete", "/ops/namespaces/prod/pods/postgres-1", None),
    ("delete", "/ops/namespaces/prod/persistentvolumeclaims/data-postgres-0", None),
]


@pytest.fixture
def rebuilding(api, cluster) -> str:
    """A pg-rebuild of prod/postgres, accepted and still pending (no worker runs here)."""
    response = api.post("/ops/jobs/pg-rebuild", REBUILD, format="json")
    assert response.status_code == 202, response.content
    cluster.requests.clear()
    return response.json()["job_id"]


def _operation_rows() -> list:
    return [row for row in audit_log() if row.action in ("scale", "delete")]


@pytest.mark.parametrize(("method", "path", "body"), HELD_OPERATIONS)
def test_operations_on_a_statefulset_an_active_job_holds_are_409_and_audited(
    api, cluster, rebuilding, method, path, body
):
    response = getattr(api, method)(path, body, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "job_target_busy"
    assert rebuilding in response.json()["detail"]
    assert mutations(cluster) == []
    assert list(cluster.requests) == []  # refused before any Kubernetes call
    [row] = _operation_rows()
    assert (row.status, row.http_status, row.code) == ("error", 409, "job_target_busy")
    assert rebuilding in row.error_message


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/ops/namespaces/prod/deployments/web/scale", {"replicas": 1}),
        ("post", "/ops/namespaces/staging/statefulsets/postgres/scale", {"replicas": 2}),
        ("delete", "/ops/namespaces/staging/pods/postgres-1", None),
        ("delete", "/ops/namespaces/staging/persistentvolumeclaims/data-postgres-0", None),
    ],
)
def test_other_objects_and_namespaces_are_not_held(api, cluster, rebuilding, method, path, body):
    assert getattr(api, method)(path, body, format="json").status_code == 200


@pytest.mark.parametrize("status", [JobStatus.SUCCESS, JobStatus.FAILED])
def test_a_job_that_has_ended_holds_nothing(api, cluster, rebuilding, status):
    Job.objects.filter(job_id=rebuilding).update(status=status)

    for method, path, body in HELD_OPERATIONS:
        assert getattr(api, method)(path, body, format="json").status_code == 200, path


def test_the_holding_jobs_own_steps_may_act_and_no_other_job_may(cluster, rebuilding):
    step = Actor(name="bootstrap", source_ip="203.0.113.7", origin=ORIGIN_JOB)

    with pytest.raises(TargetHeldByJob):
        services.statefulset_scale(
            actor=step, namespace="prod", name="postgres", replicas=0, job_id="another-job"
        )
    result = services.statefulset_scale(
        actor=step, namespace="prod", name="postgres", replicas=0, job_id=rebuilding
    )

    assert result.replicas == 0
    assert [(r.job_id, r.status) for r in _operation_rows()] == [
        ("another-job", "error"),
        (rebuilding, "success"),
    ]


def test_a_command_on_a_held_statefulset_fails_with_the_conflict_exit_code(cluster, rebuilding):
    with pytest.raises(CommandError) as caught:
        call_command(
            "ops_delete_pvc", "prod", "data-postgres-1", stdout=StringIO(), stderr=StringIO()
        )

    assert caught.value.returncode == 5
    assert "[job_target_busy]" in str(caught.value)
    assert rebuilding in str(caught.value)
    assert cluster.get("persistentvolumeclaims", "prod", "data-postgres-1") is not None
    [row] = _operation_rows()
    assert (row.origin, row.status, row.code) == ("cli", "error", "job_target_busy")


def test_the_jobs_app_registers_its_source():
    assert active_job_holder in holds._sources


def test_pod_names_map_to_their_statefulset():
    assert holds.statefulsets_of_pod("postgres-0") == ["postgres"]
    assert holds.statefulsets_of_pod("my-db-12") == ["my-db"]
    assert holds.statefulsets_of_pod("web-7d4b9c-x2k9z") == []
    assert holds.statefulsets_of_pod("postgres-01") == []


def test_claim_names_map_to_every_statefulset_they_could_belong_to():
    assert holds.statefulsets_of_claim("data-postgres-0") == ["postgres"]
    assert holds.statefulsets_of_claim("data-my-db-3") == ["my-db", "db"]
    assert holds.statefulsets_of_claim("postgres-0") == []
    assert holds.statefulsets_of_claim("scratch") == []


def test_a_registered_source_is_asked_with_every_candidate_after_the_jobs_and_can_be_removed(
    rebuilding,
):
    asked = []

    def source(kind, namespace, names):
        asked.append((kind, namespace, list(names)))
        return holds.HolderQuery(
            "SELECT 'other-1'::text AS holder WHERE %s = ANY(%s)", ("db", names)
        )

    def holder(names):
        return holds.holder(holds.holder_query(kind="StatefulSet", namespace="prod", names=names))

    holds.register_holder_source(source)
    try:
        assert holder(["my-db", "db"]) == "other-1"
        assert holder(["web"]) is None
        assert holder([]) is None
        assert holder(["postgres", "db"]) == rebuilding  # the first source's holder
    finally:
        holds.unregister_holder_source(source)
    assert source not in holds._sources
    assert ("StatefulSet", "prod", ["my-db", "db"]) in asked
    assert holder(["my-db", "db"]) is None
