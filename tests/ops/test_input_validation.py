"""Malformed input on the operation paths: each case is refused with 400 (or 404 when the
path cannot name an operation at all), never reaches Kubernetes (kubesim's request log stays
empty), and — when it reached an operation view — leaves exactly one audit row."""

from __future__ import annotations

import json

import pytest

from tests.ops.conftest import BOOTSTRAP_KEY, DB, audit_log

pytestmark = DB

STS = "/ops/namespaces/prod/statefulsets/postgres/scale"

# (id, raw body, content type) — each must be a 400 with a JSON detail.
BAD_BODIES = [
    ("negative", '{"replicas": -1}', "application/json"),
    ("string", '{"replicas": "2"}', "application/json"),
    ("empty-string", '{"replicas": ""}', "application/json"),
    ("bool-true", '{"replicas": true}', "application/json"),
    ("bool-false", '{"replicas": false}', "application/json"),
    ("float", '{"replicas": 2.5}', "application/json"),
    ("float-integral", '{"replicas": 2.0}', "application/json"),
    ("exponent", '{"replicas": 2e0}', "application/json"),
    ("huge", '{"replicas": 100000000}', "application/json"),
    ("above-max", '{"replicas": 101}', "application/json"),
    ("bigger-than-int64", '{"replicas": 99999999999999999999999999}', "application/json"),
    ("null", '{"replicas": null}', "application/json"),
    ("list-value", '{"replicas": [2]}', "application/json"),
    ("object-value", '{"replicas": {"n": 2}}', "application/json"),
    ("missing", "{}", "application/json"),
    ("unknown-field", '{"replicas": 2, "force": true}', "application/json"),
    ("only-unknown", '{"replica": 2}', "application/json"),
    ("namespace-in-body", '{"replicas": 2, "namespace": "kube-system"}', "application/json"),
    ("list-body", "[2]", "application/json"),
    ("string-body", '"replicas"', "application/json"),
    ("number-body", "2", "application/json"),
    ("null-body", "null", "application/json"),
    ("not-json", "not json", "application/json"),
    ("truncated-json", '{"replicas": 2', "application/json"),
    ("nan", '{"replicas": NaN}', "application/json"),
    ("infinity", '{"replicas": Infinity}', "application/json"),
    ("nul-in-key", '{"repl\\u0000icas": 2}', "application/json"),
    ("invalid-utf8", b'{"replicas": "\xff\xfe"}', "application/json"),
]


@pytest.mark.parametrize(
    ("body", "content_type"), [c[1:] for c in BAD_BODIES], ids=[c[0] for c in BAD_BODIES]
)
def test_a_malformed_scale_body_is_400_with_no_kubernetes_call_and_one_audit_row(
    api, cluster, body, content_type
):
    response = api.generic("POST", STS, body, content_type=content_type)

    assert response.status_code == 400, response.content
    data = response.json()
    assert data["detail"]
    assert data["code"]
    assert list(cluster.requests) == []
    assert cluster.get("statefulsets", "prod", "postgres")["spec"]["replicas"] == 3
    [row] = audit_log()
    assert (row.action, row.resource_kind, row.namespace, row.resource_name) == (
        "scale",
        "statefulset",
        "prod",
        "postgres",
    )
    assert (row.status, row.http_status, row.actor) == ("error", 400, "bootstrap")
    assert row.error_message


def test_the_audit_row_keeps_a_body_that_is_not_json_as_raw_text(api, cluster):
    api.generic("POST", STS, "not json", content_type="application/json")

    [row] = audit_log()
    assert row.request_body == {"_raw": "not json"}


def test_field_errors_name_the_offending_field(api, cluster):
    response = api.post(STS, {"replicas": True, "force": 1}, format="json")

    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"force"}
    response = api.post(STS, {"replicas": True}, format="json")
    assert set(response.json()["errors"]) == {"replicas"}


# (id, namespace, name) — path parts that are not DNS-1123: 400 from the operation view.
BAD_PATHS = [
    ("upper-case-name", "prod", "Bad_Name"),
    ("underscore", "prod", "bad_name"),
    ("leading-dash", "prod", "-postgres"),
    ("trailing-dash", "prod", "postgres-"),
    ("trailing-dot", "prod", "postgres."),
    ("double-dot", "prod", "a..b"),
    ("dot-dot", "prod", ".."),
    ("unicode-name", "prod", "pöstgres"),
    ("emoji", "prod", "pg-\U0001f600"),
    ("space", "prod", "post gres"),
    ("name-too-long", "prod", "x" * 254),
    ("namespace-upper", "Prod", "postgres"),
    ("namespace-with-dot", "prod.x", "postgres"),
    ("namespace-too-long", "p" * 64, "postgres"),
    ("percent-encoded-nul", "prod", "a%00b"),
]


@pytest.mark.parametrize(
    ("namespace", "name"), [c[1:] for c in BAD_PATHS], ids=[c[0] for c in BAD_PATHS]
)
def test_a_malformed_name_in_the_path_is_400_with_no_kubernetes_call(api, cluster, namespace, name):
    response = api.post(
        f"/ops/namespaces/{namespace}/statefulsets/{name}/scale", {"replicas": 1}, format="json"
    )

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid"
    assert list(cluster.requests) == []
    [row] = audit_log()
    assert (row.status, row.http_status) == ("error", 400)


def test_a_malformed_pod_name_on_delete_is_400_with_no_kubernetes_call(api, cluster):
    response = api.delete("/ops/namespaces/prod/pods/Not_A_Pod")

    assert response.status_code == 400
    assert list(cluster.requests) == []
    [row] = audit_log()
    assert (row.action, row.resource_kind, row.status) == ("delete", "pod", "error")


@pytest.mark.parametrize(
    "path",
    [
        "/ops/namespaces/prod/statefulsets/a/../b/scale",
        "/ops/namespaces/prod/statefulsets/a%2F..%2Fb/scale",
        "/ops/namespaces/prod/statefulsets//scale",
        "/ops/namespaces/prod/statefulsets/postgres/scale/extra",
        "/ops/namespaces/prod/replicasets/postgres/scale",
    ],
    ids=["dot-dot-segments", "encoded-slashes", "empty-name", "extra-segment", "unknown-kind"],
)
def test_paths_that_name_no_operation_are_json_404_with_no_kubernetes_call(api, cluster, path):
    response = api.post(path, {"replicas": 1}, format="json")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["code"] == "not_found"
    assert list(cluster.requests) == []


def test_the_wrong_method_on_an_operation_path_is_405_json_and_audited(api, cluster):
    response = api.get(STS)

    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"
    assert list(cluster.requests) == []
    [row] = audit_log()
    assert (row.status, row.http_status) == ("error", 405)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ('{"replicas": 2}', "text/plain"),
        ("replicas=2", "application/x-www-form-urlencoded"),
        ('{"replicas": 2}', "application/xml"),
    ],
    ids=["text-plain", "form-encoded", "xml"],
)
def test_a_body_not_sent_as_json_is_415_saying_so_once_and_audited(
    api, cluster, body, content_type
):
    response = api.generic("POST", STS, body, content_type=content_type)

    assert response.status_code == 415
    data = response.json()
    assert data["code"] == "unsupported_media_type"
    assert data["detail"] == (
        "The body must be JSON (Content-Type: application/json); "
        f"this one was sent as {content_type}."
    )
    assert list(cluster.requests) == []
    [row] = audit_log()
    assert (row.status, row.http_status, row.actor) == ("error", 415, "bootstrap")


def test_an_oversized_body_is_413_without_settings_names_and_audited(api, cluster, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    body = json.dumps({"replicas": 1, "pad": "x" * 4096})

    response = api.generic("POST", STS, body, content_type="application/json")

    assert response.status_code == 413
    assert response.json() == {
        "detail": "The request body is larger than the 1024 bytes this API accepts.",
        "code": "body_too_large",
    }
    assert list(cluster.requests) == []
    [row] = audit_log()
    assert (row.status, row.http_status, row.actor, row.code) == (
        "error",
        413,
        "bootstrap",
        "body_too_large",
    )


def test_an_oversized_body_without_a_key_is_401_first(anon, cluster, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    body = json.dumps({"replicas": 1, "pad": "x" * 4096})

    response = anon.generic("POST", STS, body, content_type="application/json")

    assert response.status_code == 401
    [row] = audit_log()
    assert (row.status, row.actor, row.code) == ("denied", None, "not_authenticated")


def test_a_nul_character_in_the_body_is_refused_and_still_audited(api, cluster):
    response = api.generic("POST", STS, '{"replicas": "\\u0000"}', content_type="application/json")

    assert response.status_code == 400
    [row] = audit_log()
    assert row.request_body["_escaped"] == {"replicas": "\\u0000"}
    assert "NUL" in row.request_body["_note"]


def test_validation_runs_after_authentication(anon, cluster):
    response = anon.post(STS, {"replicas": -1}, format="json")

    assert response.status_code == 401
    [row] = audit_log()
    assert (row.status, row.actor) == ("denied", None)


def test_the_key_header_value_is_not_what_the_row_calls_the_actor(api, cluster):
    api.credentials(HTTP_X_API_KEY=BOOTSTRAP_KEY, HTTP_X_ACTOR="mallory")
    api.post(STS, {"replicas": 1, "actor": "mallory"}, format="json")

    [row] = audit_log()
    assert row.actor == "bootstrap"
