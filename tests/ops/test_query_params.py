"""Query parameters are strict on every endpoint: an unknown one, one given twice, or one
holding a NUL is a 400 naming it (audited on the operation paths, and nothing reaches the
cluster); ``since``/``until`` take the CLI's relative ages; ``page_size`` outside 1..500 and
a cursor this API did not write are 400s. The schema and docs answer their errors as JSON."""

from __future__ import annotations

import base64
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import URLResolver, get_resolver, resolve
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from jobs.models import Job
from ops.models import OpsLog
from tests.ops.conftest import BOOTSTRAP_KEY, DB, audit_log

pytestmark = DB

STS = "/ops/namespaces/prod/statefulsets/postgres/scale"


def _every_operation() -> list[tuple[str, str]]:
    """(method, path) of every operation in the OpenAPI document, path parameters filled."""
    document = SchemaGenerator().get_schema(request=None, public=True)
    fill = {"{namespace}": "prod", "{name}": "postgres", "{job_id}": "no-such-job"}
    operations = []
    for path, item in document["paths"].items():
        for method in item:
            for part, value in fill.items():
                path = path.replace(part, value)
            operations.append((method.upper(), path))
    return [*operations, ("GET", "/api/schema/"), ("GET", "/api/docs/")]


def _route_names(patterns) -> set[str]:
    names = set()
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            if pattern.app_name != "admin":
                names |= _route_names(pattern.url_patterns)
        else:
            names.add(pattern.name)
    return names


def test_the_endpoints_below_are_every_route_outside_the_admin():
    sent = {resolve(urlsplit(path).path).url_name for _, path in _every_operation()}

    # /metrics speaks Prometheus' text format to a scraper (tests/ops/test_metrics.py).
    assert sent == _route_names(get_resolver().url_patterns) - {"metrics"}


@pytest.mark.parametrize(("method", "path"), _every_operation())
def test_an_unknown_query_parameter_is_400_naming_it_on_every_endpoint(api, cluster, method, path):
    response = api.generic(method, f"{path}?namspace=prod", content_type="application/json")

    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid_query"
    assert "'namspace'" in body["detail"]
    assert body["errors"] == {"namspace": ["Unknown query parameter."]}
    assert list(cluster.requests) == []


@pytest.mark.parametrize(("method", "path"), _every_operation())
def test_a_repeated_query_parameter_is_400_naming_it_on_every_endpoint(api, cluster, method, path):
    name = "lang" if path == "/api/docs/" else "format"  # the docs page has no JSON format
    value = "en" if name == "lang" else "json"
    query = f"{name}={value}&{name}={value}"

    response = api.generic(method, f"{path}?{query}", content_type="application/json")

    assert response.status_code == 400, response.content
    assert response.json()["errors"] == {name: ["Given more than once; give it once."]}


def test_the_400_lists_what_the_endpoint_takes(api):
    response = api.get("/ops/audit?namspace=prod")

    assert response.json()["detail"] == (
        "Unknown query parameter 'namspace' (this endpoint takes: action, actor, cursor, "
        "namespace, page_size, since, status, until)."
    )


def test_a_repeated_page_size_is_400_not_either_value(api):
    response = api.get("/ops/audit?page_size=5&page_size=6")

    assert response.status_code == 400
    assert "'page_size' given more than once" in response.json()["detail"]


def _the_one_refused_query_row() -> OpsLog:
    [row] = audit_log()
    assert (row.status, row.http_status, row.code, row.actor) == (
        "error",
        400,
        "invalid_query",
        "bootstrap",
    )
    return row


def test_a_refused_operation_query_is_audited_once_and_sends_nothing(api, cluster):
    response = api.post(f"{STS}?force=true", {"replicas": 1}, format="json")

    assert response.status_code == 400
    assert list(cluster.requests) == []
    assert "'force'" in _the_one_refused_query_row().error_message


@pytest.mark.parametrize(
    "query",
    ["namspace=prod", "page_size=5&page_size=6", "page_size=0", "since=yesterday", "cursor=x"],
)
def test_a_refused_query_on_a_read_is_audited_too(api, query):
    response = api.get(f"/ops/audit?{query}")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_query"
    row = _the_one_refused_query_row()
    assert (row.action, row.resource_kind) == ("list", "ops_log")


def test_a_refused_query_on_a_probe_writes_no_row(anon):
    response = anon.get("/health/live?verbose=1")

    assert response.status_code == 400
    assert audit_log() == []


def test_without_a_key_the_answer_is_401_before_the_query_is_looked_at(anon):
    response = anon.get("/ops/audit?namspace=prod")

    assert response.status_code == 401


def test_a_nul_in_a_filter_value_is_400(api):
    response = api.get("/ops/audit?namespace=pr%00od")

    assert response.status_code == 400
    assert response.json()["errors"] == {"namespace": ["Must not contain NUL characters."]}


@pytest.mark.parametrize("path", ["/ops/audit", "/ops/jobs", "/ops/approvals"])
def test_an_empty_status_is_400_not_every_row(api, path):
    # The schema lists the statuses; an empty one is not among them (it used to mean "all").
    response = api.get(f"{path}?status=")

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_query"
    assert list(response.json()["errors"]) == ["status"]
    assert api.get(f"{path}?status=success" if "audit" in path else path).status_code == 200


def _row(age: timedelta, name: str) -> OpsLog:
    return OpsLog(
        ts=timezone.now() - age,
        actor="alice",
        action="scale",
        resource_kind="deployment",
        namespace="prod",
        resource_name=name,
        status="success",
    )


@pytest.fixture
def aged_rows():
    OpsLog.objects.using("audit").bulk_create(
        [
            _row(timedelta(minutes=5), "five-minutes"),
            _row(timedelta(hours=2), "two-hours"),
            _row(timedelta(days=3), "three-days"),
            _row(timedelta(days=10), "ten-days"),
        ]
    )


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("since=30m", ["five-minutes"]),
        ("since=24h", ["five-minutes", "two-hours"]),
        ("since=7d", ["five-minutes", "two-hours", "three-days"]),
        ("since=2w", ["five-minutes", "two-hours", "three-days", "ten-days"]),
        ("since=3600s", ["five-minutes"]),
        ("until=1h", ["two-hours", "three-days", "ten-days"]),
        ("since=7d&until=24h", ["three-days"]),
    ],
)
def test_since_and_until_take_the_clis_relative_ages(api, aged_rows, query, expected):
    response = api.get(f"/ops/audit?{query}")

    assert response.status_code == 200, response.content
    assert [r["resource_name"] for r in response.json()["results"]] == expected


@pytest.mark.parametrize(
    "value", ["24", "h", "-1h", "1.5h", "24 h", "1y", "9999999999d", "yesterday"]
)
def test_a_malformed_time_is_400_saying_what_it_takes(api, value):
    response = api.get("/ops/audit", {"since": value})

    assert response.status_code == 400
    assert "30m, 24h, 7d" in response.json()["errors"]["since"][0]


@pytest.mark.parametrize("value", ["0", "501", "-1", "ten", "1e2", "٣"])
def test_a_page_size_outside_1_to_500_is_400(api, value):
    response = api.get("/ops/audit", {"page_size": value})

    assert response.status_code == 400
    assert response.json()["errors"] == {"page_size": ["An integer from 1 to 500."]}


def _edited(cursor_url: str, **tokens: str) -> str:
    """The cursor of ``cursor_url`` with some of its tokens replaced."""
    cursor = parse_qs(urlsplit(cursor_url).query)["cursor"][0]
    fields = parse_qs(base64.b64decode(cursor).decode(), keep_blank_values=True)
    fields.update({k: [v] for k, v in tokens.items()})
    text = "&".join(f"{k}={v[0]}" for k, v in fields.items())
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    "tokens",
    [{"p": "not-a-time"}, {"p": "2025-13-45 10:00:00+00:00"}, {"o": "x"}, {"r": "yes"}],
    ids=["position-text", "position-impossible-date", "offset", "reverse"],
)
def test_an_edited_audit_cursor_is_400(api, aged_rows, tokens):
    first = api.get("/ops/audit?page_size=1").json()

    response = api.get("/ops/audit", {"page_size": 1, "cursor": _edited(first["next"], **tokens)})

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_query"
    assert set(response.json()["errors"]) == {"cursor"}


@pytest.mark.parametrize("cursor", ["!!!", "bm90IGEgY3Vyc29y", "cD0AYQ==", "w6k="])
def test_a_cursor_this_api_did_not_write_is_400_on_both_lists(api, cursor):
    for path in ("/ops/audit", "/ops/jobs"):
        response = api.get(path, {"cursor": cursor})

        assert response.status_code in (200, 400), (path, response.content)
        if response.status_code == 400:
            assert set(response.json()["errors"]) == {"cursor"}


def test_an_edited_jobs_cursor_is_400(api):
    now = timezone.now()
    for i in range(2):
        Job.objects.create(
            job_id=f"{now.isoformat()}_pg-rebuild_0000000{i}",
            type="pg-rebuild",
            status="success",
            params={},
            actor="alice",
            created_at=now - timedelta(minutes=i),
        )
    first = api.get("/ops/jobs?page_size=1").json()
    assert first["next"]

    response = api.get("/ops/jobs", {"page_size": 1, "cursor": _edited(first["next"], p="x")})

    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"cursor"}


@pytest.mark.parametrize("path", ["/api/schema/", "/api/docs/"])
def test_the_schema_and_docs_answer_401_as_json(anon, path):
    response = anon.get(path)

    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "not_authenticated"
    assert response.json()["detail"]


@pytest.mark.parametrize(
    ("path", "status"),
    [("/ops/audit", 401), ("/ops/whoami?x=1", 400), ("/ops/jobs/no-such-job", 404)],
)
def test_errors_are_json_even_for_a_browser_asking_for_html(apiops, path, status):
    client = APIClient(HTTP_ACCEPT="text/html,application/xhtml+xml,*/*;q=0.8")
    if status != 401:
        client.credentials(HTTP_X_API_KEY=BOOTSTRAP_KEY)

    response = client.get(path)

    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"]
