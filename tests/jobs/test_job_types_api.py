"""Job types as plug-ins: ``GET /ops/jobs/types`` lists every registered type with its steps
and the JSON Schema of its input; ``POST /ops/jobs/{type}`` starts any type through one
service (an unknown type is 404 and audited); a type registered in a test is served by the
same routes, views and command machinery without any other code."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from jobs.models import Job
from ops.models import OpsLog

pytestmark = pytest.mark.django_db(databases=["default", "audit"], transaction=True)


def entry(body: dict, name: str) -> dict:
    [found] = [t for t in body["types"] if t["type"] == name]
    return found


def test_the_types_list_each_type_with_its_steps_and_input_schema(api):
    response = api.get("/ops/jobs/types")

    assert response.status_code == 200
    rebuild = entry(response.json(), "pg-rebuild")
    assert rebuild["description"]
    assert rebuild["steps"] == [
        "scale_sts_to_zero",
        "wait_pods_down",
        "delete_pvc",
        "scale_sts_to_target",
        "wait_pods_ready",
    ]
    assert rebuild["plans"]["in-place"] == [
        "check_target",
        "delete_pvc",
        "delete_pod",
        "wait_pvc_gone",
        "wait_pod_ready",
    ]
    schema = rebuild["input"]
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["namespace", "statefulset", "ordinal", "target_replicas"]
    assert schema["properties"]["ordinal"] == {
        "type": "integer",
        "minimum": 0,
        "description": "Replica to rebuild (>= 0): pod <statefulset>-<ordinal>.",
    }
    assert schema["properties"]["strategy"]["enum"] == ["scale-to-zero", "in-place"]
    assert schema["properties"]["strategy"]["default"] == "scale-to-zero"
    assert schema["properties"]["allow_outage"]["type"] == "boolean"


def test_the_types_need_a_key(fast_jobs):
    assert APIClient().get("/ops/jobs/types").status_code == 401


def test_an_unknown_type_is_a_json_404_audited_and_starts_nothing(api, pg_cluster):
    response = api.post("/ops/jobs/no-such-type", {"namespace": "prod"}, format="json")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert "pg-rebuild" in response.json()["detail"]  # the types there are
    assert not Job.objects.exists()
    row = OpsLog.objects.using("audit").order_by("-id").first()
    assert (row.action, row.status, row.http_status, row.namespace) == (
        "no-such-type",
        "error",
        404,
        "prod",
    )
    assert list(pg_cluster.requests.mutations()) == []


def test_the_schema_documents_the_start_route_of_each_type_with_its_input(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()

    post = schema["paths"]["/ops/jobs/pg-rebuild"]["post"]
    ref = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    component = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert {"namespace", "statefulset", "ordinal", "target_replicas", "strategy"} <= set(
        component["properties"]
    )
    assert "202" in post["responses"]
    assert "/ops/jobs/types" in schema["paths"]
