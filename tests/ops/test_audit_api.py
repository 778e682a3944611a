"""GET /ops/audit: filters, ISO 8601 bounds, newest first, cursor pagination with a capped
count, read-only, a browsable HTML rendering, and a scoped key reading only its namespaces."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from rest_framework.test import APIClient

from ops.models import ApiKey, OpsLog
from tests.ops.conftest import DB

pytestmark = DB

T0 = datetime(2025, 1, 15, 10, 0, tzinfo=UTC)


def _row(i: int, **fields) -> OpsLog:
    values = {
        "ts": T0 + timedelta(minutes=i),
        "actor": "alice",
        "source_ip": "203.0.113.1",
        "action": "scale",
        "resource_kind": "statefulset",
        "namespace": "prod",
        "resource_name": f"sts-{i}",
        "request_body": {"replicas": i},
        "status": "success",
    }
    values.update(fields)
    return OpsLog(**values)


@pytest.fixture
def rows():
    OpsLog.objects.using("audit").bulk_create(
        [
            _row(0),
            _row(1, namespace="staging"),
            _row(2, actor="bob", status="error", error_message="boom"),
            _row(3, action="delete", resource_kind="pod"),
            _row(4, status="denied", actor=None, namespace="kube-system"),
            _row(5),
        ]
    )


def _names(response) -> list[str]:
    return [r["resource_name"] for r in response.json()["results"]]


def test_the_list_is_newest_first_with_every_column(api, rows):
    response = api.get("/ops/audit")

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 6
    assert body["count_exact"] is True
    assert body["next"] is None
    assert body["previous"] is None
    assert _names(response) == [f"sts-{i}" for i in (5, 4, 3, 2, 1, 0)]
    first = body["results"][0]
    for column in (
        "id", "ts", "actor", "source_ip", "action", "resource_kind", "namespace",
        "resource_name", "request_body", "status", "error_message",
    ):  # fmt: skip
        assert column in first
    assert first["ts"] == "2025-01-15T10:05:00Z"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("namespace=staging", ["sts-1"]),
        ("actor=bob", ["sts-2"]),
        ("action=delete", ["sts-3"]),
        ("status=error", ["sts-2"]),
        ("status=denied", ["sts-4"]),
        ("namespace=prod&status=success", ["sts-5", "sts-3", "sts-0"]),
        ("since=2025-01-15T10:03:00Z", ["sts-5", "sts-4", "sts-3"]),
        ("until=2025-01-15T10:02:00%2B00:00", ["sts-1", "sts-0"]),
        ("since=2025-01-15T10:01:00Z&until=2025-01-15T10:03:00Z", ["sts-2", "sts-1"]),
        ("namespace=nowhere", []),
    ],
)
def test_filters_narrow_the_list(api, rows, query, expected):
    response = api.get(f"/ops/audit?{query}")

    assert response.status_code == 200
    assert _names(response) == expected
    assert response.json()["count"] == len(expected)


@pytest.mark.parametrize(
    "query",
    ["since=yesterday", "until=2025-13-01T00:00:00Z", "status=maybe", "since=1736935200"],
)
def test_malformed_filters_are_400_with_field_errors(api, rows, query):
    response = api.get(f"/ops/audit?{query}")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_query"
    assert query.split("=")[0] in response.json()["errors"]


def _client_for(name: str, namespaces: list[str]) -> APIClient:
    client = APIClient(REMOTE_ADDR="198.51.100.20")
    client.credentials(HTTP_X_API_KEY=ApiKey.objects.issue(name=name, namespaces=namespaces).raw)
    return client


def test_a_key_scoped_to_namespaces_reads_only_their_rows(apiops, rows):
    OpsLog.objects.using("audit").bulk_create([_row(6, namespace="")])
    staging = _client_for("staging-bot", ["staging"])

    body = staging.get("/ops/audit").json()

    assert (_names_of(body), body["count"]) == (["sts-1"], 1)
    # Asking for another namespace by name shows nothing either.
    assert staging.get("/ops/audit?namespace=prod").json()["results"] == []
    assert _names_of(staging.get("/ops/audit?status=denied").json()) == []


def test_a_key_scoped_to_several_namespaces_reads_all_of_them(apiops, rows):
    both = _client_for("both-bot", ["prod", "staging"])

    assert _names_of(both.get("/ops/audit").json()) == ["sts-5", "sts-3", "sts-2", "sts-1", "sts-0"]


def test_an_unscoped_key_reads_every_row_even_those_without_a_namespace(api, rows):
    OpsLog.objects.using("audit").bulk_create([_row(6, namespace="")])

    assert _names(api.get("/ops/audit"))[0] == "sts-6"
    assert api.get("/ops/audit").json()["count"] == 7


def _names_of(body: dict) -> list[str]:
    return [r["resource_name"] for r in body["results"]]


def test_pages_follow_next_links_without_gaps_or_repeats(api, rows):
    seen = []
    url = "/ops/audit?page_size=4"
    while url:
        body = api.get(url).json()
        assert body["count"] == 6
        seen += [r["resource_name"] for r in body["results"]]
        url = body["next"]
    assert seen == [f"sts-{i}" for i in (5, 4, 3, 2, 1, 0)]


def test_the_previous_link_returns_to_the_first_page(api, rows):
    first = api.get("/ops/audit?page_size=2").json()
    second = api.get(first["next"]).json()

    back = api.get(second["previous"]).json()

    assert [r["resource_name"] for r in back["results"]] == ["sts-5", "sts-4"]


def test_the_count_is_capped_and_says_when_it_is_an_estimate(api, rows, apiops):
    apiops(AUDIT_COUNT_CAP=3)

    body = api.get("/ops/audit").json()

    assert body["count_exact"] is False
    assert body["count"] >= 4
    body = api.get("/ops/audit?namespace=staging").json()
    assert (body["count"], body["count_exact"]) == (1, True)


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_the_audit_log_is_read_only(api, rows, method):
    response = getattr(api, method)("/ops/audit", {}, format="json")

    assert response.status_code == 405
    assert OpsLog.objects.using("audit").count() == 6


def test_the_browsable_api_renders_the_list_as_html(api, rows):
    response = api.get("/ops/audit", HTTP_ACCEPT="text/html")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert b"sts-5" in response.content


def test_the_api_docs_page_is_served_with_a_key(api):
    response = api.get("/api/docs/")

    assert response.status_code == 200
    assert b"swagger" in response.content.lower()
