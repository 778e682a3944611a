"""GET /metrics in one process: the bearer token, the SPEC's metric names from the first
scrape, what an operation, a refusal, a Kubernetes request and a lost audit row count, label
sets that stay bounded whatever object names are used, and the database gauges."""

from __future__ import annotations

import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ops import metrics, services
from ops.actors import Actor
from ops.errors import AuditUnavailable
from tests.ops.conftest import DB, TRANSACTIONAL_DB

pytestmark = DB

TOKEN = "metrics-token-for-tests-0123456789"
SPEC_METRICS = (
    "apiops_operations",
    "apiops_http_request_duration_seconds",
    "apiops_kubernetes_requests",
    "apiops_kubernetes_request_duration_seconds",
    "apiops_audit_write_failures",
    "apiops_jobs",
    "apiops_jobs_active",
    "apiops_job_step_duration_seconds",
    "apiops_job_pickup_seconds",
    "apiops_approvals_pending",
    "apiops_notifications",
)


@pytest.fixture
def scrape(client, apiops):
    """GET /metrics with the token; the parsed families by name."""
    apiops(METRICS_TOKEN=TOKEN)

    def get() -> dict:
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        assert response.status_code == 200, response.content[:300]
        return {f.name: f for f in text_string_to_metric_families(response.content.decode())}

    return get


def value(families: dict, sample: str, **labels: str) -> float:
    """The sum of the samples called ``sample`` with these labels (0 when none)."""
    family = families[re.sub(r"_(total|count|sum|bucket)$", "", sample)]
    return sum(
        s.value
        for s in family.samples
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_metrics_need_the_bearer_token(client, apiops):
    apiops(METRICS_TOKEN=TOKEN)

    missing = client.get("/metrics")
    wrong = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}x")
    other_scheme = client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}")
    right = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    assert (missing.status_code, missing.json()["code"]) == (401, "not_authenticated")
    assert missing["WWW-Authenticate"].startswith("Bearer")
    assert (wrong.status_code, wrong.json()["code"]) == (401, "authentication_failed")
    assert other_scheme.status_code == 401
    assert right.status_code == 200
    assert right["Content-Type"].startswith("text/plain")
    assert b"apiops_operations_total" in right.content
    assert b"apiops_operations_total" not in missing.content + wrong.content


def test_without_a_configured_token_metrics_are_refused_to_everyone(client, apiops):
    apiops(METRICS_TOKEN=None)

    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer ")

    assert (response.status_code, response.json()["code"]) == (403, "metrics_disabled")


def test_every_spec_metric_is_described_from_the_first_scrape(client, apiops):
    apiops(METRICS_TOKEN=TOKEN)
    text = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()

    for name in SPEC_METRICS:
        assert re.search(rf"^# HELP {name}(_total)? ", text, re.M), name
        assert re.search(rf"^# TYPE {name}(_total)? ", text, re.M), name
    # Known label sets are there at zero before anything happened.
    assert 'apiops_notifications_total{channel="slack",outcome="undeliverable"}' in text
    assert re.search(r'^apiops_jobs_active\{type="pg-rebuild"\} 0\.0$', text, re.M)


def test_a_scale_counts_one_operation_and_its_kubernetes_requests(api, cluster, scrape):
    before = scrape()

    response = api.post(
        "/ops/namespaces/staging/deployments/web/scale", {"replicas": 2}, format="json"
    )
    after = scrape()

    assert response.status_code == 200
    labels = {"operation": "scale", "namespace": "staging", "status": "success"}
    assert (
        value(after, "apiops_operations_total", **labels)
        - value(before, "apiops_operations_total", **labels)
        == 1
    )
    for verb, code in (("get", "200"), ("patch", "200")):
        k8s = {"verb": verb, "resource": "deployments/scale", "code": code}
        assert (
            value(after, "apiops_kubernetes_requests_total", **k8s)
            - value(before, "apiops_kubernetes_requests_total", **k8s)
            == 1
        ), verb
    assert [(r.method, r.subresource) for r in cluster.requests] == [
        ("GET", "scale"),
        ("PATCH", "scale"),
    ]
    duration = {
        "method": "POST",
        "route": "ops/namespaces/<str:namespace>/deployments/<str:name>/scale",
    }
    assert value(after, "apiops_http_request_duration_seconds_count", status="200", **duration) >= 1


def test_refusals_are_counted_under_their_status_and_unknown_namespaces_as_other(
    api, cluster, scrape
):
    before = scrape()

    denied = api.post(
        "/ops/namespaces/kube-system/deployments/web/scale", {"replicas": 2}, format="json"
    )
    missing = api.post(
        "/ops/namespaces/prod/deployments/nope/scale", {"replicas": 2}, format="json"
    )
    after = scrape()

    assert (denied.status_code, missing.status_code) == (403, 404)

    def delta(**labels):
        return value(after, "apiops_operations_total", **labels) - value(
            before, "apiops_operations_total", **labels
        )

    assert delta(operation="scale", namespace="_other", status="denied") == 1
    assert delta(operation="scale", namespace="prod", status="error") == 1
    not_found = {"verb": "get", "resource": "deployments/scale", "code": "404"}
    assert (
        value(after, "apiops_kubernetes_requests_total", **not_found)
        - value(before, "apiops_kubernetes_requests_total", **not_found)
        == 1
    )


def series(families: dict) -> set[tuple]:
    return {
        (s.name, tuple(sorted(s.labels.items())))
        for f in families.values()
        if f.name.startswith("apiops_")
        for s in f.samples
    }


def test_label_sets_stay_bounded_whatever_object_names_are_used(api, cluster, scrape):
    """1,000 distinct object names (missing deployments, pods in namespaces nobody may touch)
    add no series beyond those the first ten made, and no label carries a name."""

    def touch(i: int) -> None:
        name = f"obj-{i:04d}"
        if i % 2:
            api.post(
                f"/ops/namespaces/prod/deployments/{name}/scale", {"replicas": 1}, format="json"
            )
        else:
            api.delete(f"/ops/namespaces/ns-{name}/pods/{name}")

    scrape()  # the scrape's own series exist from here on
    for i in range(10):
        touch(i)
    early = series(scrape())

    for i in range(10, 1000):
        touch(i)
    late = scrape()

    assert series(late) == early
    values = {v for _, labels in series(late) for _, v in labels}
    assert not [v for v in values if "obj-" in v]
    assert value(late, "apiops_operations_total", operation="delete-pod", status="denied") >= 500
    assert value(late, "apiops_operations_total", operation="scale", status="error") >= 500
    namespaces = {n for name, labels in series(late) for k, n in labels if k == "namespace"}
    assert namespaces <= {"prod", "staging", "_other", ""}


@TRANSACTIONAL_DB
def test_an_audit_row_that_cannot_be_written_is_counted(cluster, dead_audit_db):
    before = metrics.AUDIT_WRITE_FAILURES._value.get()

    with pytest.raises(AuditUnavailable):
        services.deployment_scale(actor=Actor.for_cli(), namespace="prod", name="web", replicas=2)

    assert metrics.AUDIT_WRITE_FAILURES._value.get() - before == 1
    assert list(cluster.requests.mutations()) == []


def test_database_gauges_are_described_without_a_source_and_show_a_registered_one(scrape):
    registered = metrics._gauge_sources.pop("apiops_approvals_pending", None)
    try:
        families = scrape()
        assert families["apiops_approvals_pending"].samples == []  # nobody supplies it
        metrics.register_gauge_source("apiops_approvals_pending", lambda: 4)
        families = scrape()
    finally:
        metrics._gauge_sources.pop("apiops_approvals_pending")
        if registered is not None:
            metrics.register_gauge_source("apiops_approvals_pending", registered)

    assert value(families, "apiops_approvals_pending") == 4
    with pytest.raises(KeyError):
        metrics.register_gauge_source("apiops_made_up", lambda: 1)


def test_active_jobs_are_read_from_the_database_at_scrape_time(scrape):
    from jobs.models import Job

    Job.objects.create(
        job_id="j1",
        type="pg-backup",
        status="running",
        created_at="2026-01-01T00:00:00Z",
        params={},
        target_kind="StatefulSet",
        target_namespace="prod",
        target_name="postgres",
    )

    families = scrape()

    assert value(families, "apiops_jobs_active", type="pg-backup") == 1
    assert value(families, "apiops_jobs_active", type="pg-rebuild") == 0


@pytest.mark.parametrize(
    ("method", "url", "expected"),
    [
        (
            "GET",
            "https://k/apis/apps/v1/namespaces/prod/statefulsets/pg/scale",
            ("get", "statefulsets/scale"),
        ),
        (
            "PATCH",
            "https://k/apis/apps/v1/namespaces/prod/deployments/web/scale?x=1",
            ("patch", "deployments/scale"),
        ),
        ("GET", "https://k/api/v1/namespaces/prod/pods?labelSelector=a%3Db", ("list", "pods")),
        (
            "DELETE",
            "https://k/api/v1/namespaces/prod/persistentvolumeclaims/data-pg-1",
            ("delete", "persistentvolumeclaims"),
        ),
        (
            "POST",
            "https://k/apis/snapshot.storage.k8s.io/v1/namespaces/prod/volumesnapshots",
            ("create", "volumesnapshots"),
        ),
        ("GET", "https://k/api/v1/namespaces/prod", ("get", "namespaces")),
        ("GET", "https://k/version", ("get", "version")),
        ("GET", "https://k/apis", ("get", "")),
        ("GET", "https://k/", ("get", "")),
        ("PUT", "https://k/apis/apps/v1/namespaces/p/statefulsets/x", ("update", "statefulsets")),
    ],
)
def test_kubernetes_requests_are_labelled_by_verb_and_resource_type(method, url, expected):
    assert metrics.kubernetes_request_labels(method, url) == expected


@pytest.mark.parametrize(
    ("action", "kind", "expected"),
    [
        ("scale", "statefulset", "scale"),
        ("delete", "pod", "delete-pod"),
        ("delete", "persistentvolumeclaim", "delete-pvc"),
        ("pg-rebuild", "statefulset", "pg-rebuild"),
        ("cancel", "job", "cancel"),
        ("prod-db-0", "x", "other"),
    ],
)
def test_operation_labels_are_registered_names_only(action, kind, expected):
    assert metrics.operation_label(action, kind) == expected


@TRANSACTIONAL_DB
def test_namespace_labels_are_the_allowed_namespaces_or_other(apiops):
    assert metrics.namespace_label("prod") == "prod"
    assert metrics.namespace_label("team-a-123") == metrics.OTHER
    assert metrics.namespace_label("") == ""
