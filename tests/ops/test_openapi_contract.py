"""The OpenAPI document tells the truth: schemathesis reads the document /api/schema/ serves,
generates valid and invalid requests for every operation (seeded, a bounded number of
examples), sends them to the app in-process (WSGI) with kubesim behind it, and checks every
answer: no server error, a documented status code and content type, a body that matches its
schema, invalid data refused, and authentication enforced where the schema says so."""

from __future__ import annotations

import json

import schemathesis
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from apiops_site.wsgi import application
from tests.ops.conftest import BOOTSTRAP_KEY, DB

pytestmark = DB

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
]
# Seeded and bounded: the same requests on every run, a few seconds per operation.
CONFIG = {
    "seed": 20260614,
    "generation": {"mode": "all", "max-examples": 25, "database": "none"},
}


# Built when the module is collected (schemathesis parametrizes from it), without a database;
# the first test shows it is the document GET /api/schema/ serves.
DOCUMENT = SchemaGenerator().get_schema(request=None, public=True)
schema = schemathesis.openapi.from_dict(
    json.loads(json.dumps(DOCUMENT)), config=SchemathesisConfig.from_dict(CONFIG)
)
schema.app = application


def test_the_document_under_test_is_the_one_served(api):
    response = api.get("/api/schema/?format=json")

    assert response.status_code == 200
    assert response.json() == json.loads(json.dumps(DOCUMENT))


@schema.parametrize()
@hypothesis_settings(
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)
def test_every_operation_answers_as_its_schema_says(case, cluster, apiops, in_test_transaction):
    case.call_and_validate(headers={"X-API-Key": BOOTSTRAP_KEY}, checks=CHECKS)


def _statuses(path: str, method: str) -> list[str]:
    return sorted(DOCUMENT["paths"][path][method]["responses"])


def test_each_operation_lists_the_statuses_it_can_answer_and_no_others():
    scale = "/ops/namespaces/{namespace}/statefulsets/{name}/scale"
    read = ["400", "401", "403", "429", "503"]
    write = ["400", "401", "403", "404", "409", "413", "415", "422", "429", "503"]
    to_cluster = sorted([*write, "502", "504"])

    assert _statuses(scale, "post") == ["200", "202", *to_cluster]
    assert _statuses("/ops/jobs/pg-rebuild", "post") == ["200", "202", *to_cluster]
    assert _statuses("/ops/approvals/{approval_id}/approve", "post") == ["200", "202", *to_cluster]
    assert _statuses("/ops/approvals/{approval_id}/reject", "post") == ["200", *write]
    assert _statuses("/ops/jobs/{job_id}/cancel", "post") == ["200", "202", *write]
    assert _statuses("/ops/jobs/{job_id}", "get") == sorted(["200", "404", *read])
    assert _statuses("/ops/audit", "get") == ["200", *read]
    assert _statuses("/health/live", "get") == ["200", "400"]


def test_every_error_answer_has_the_error_body_and_401_429_their_headers():
    scale = DOCUMENT["paths"]["/ops/namespaces/{namespace}/deployments/{name}/scale"]["post"]
    error = DOCUMENT["components"]["schemas"]["Error"]

    for code, response in scale["responses"].items():
        if code.startswith(("4", "5")):
            assert response["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"
            }
    assert error["required"] == ["code", "detail"]
    assert set(error["properties"]) == {"detail", "code", "errors"}
    assert "WWW-Authenticate" in scale["responses"]["401"]["headers"]
    assert "Retry-After" in scale["responses"]["429"]["headers"]
