"""The database down: every endpoint answers 503 with a JSON ``{"detail", "code"}`` body (an
HTML page under ``/admin/``), logs no traceback, and sends nothing to the Kubernetes API.

The outage is real, not simulated: the test database stops accepting connections and the
server ends the ones already open (``pg_terminate_backend``), so a request meets it as it would
in production — on a pooled connection that has died, whose replacement is refused. Each request
starts as the server starts one (Django's ``close_old_connections``; the test client skips it).
A second, narrower failure points only the request connection (``default``) at a database that
does not exist, as ``dead_audit_db`` does for the audit one: the key lookup and the reads of
the services then fail while the audit log can still be written (a primitive's job-hold read
goes through the audit connection, with its pending row).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
from django.db import close_old_connections, connections
from django.utils import timezone
from rest_framework.test import APIClient

from jobs.models import Job, JobStatus, make_job_id
from ops.models import ApiKey
from tests.ops.conftest import CLIENT_IP, TRANSACTIONAL_DB, audit_log, mutations

pytestmark = TRANSACTIONAL_DB

JOB_ID = make_job_id(timezone.now(), "pg-rebuild")
REBUILD = {"namespace": "prod", "statefulset": "postgres", "ordinal": 0, "target_replicas": 3}
STS = "/ops/namespaces/prod/statefulsets/postgres/scale"

# (method, path, body, the code of the 503). Every API-key request first counts the caller's
# failed authentications through the audit connection, so where nothing reaches the database
# earlier the answer is the audit log's fail-closed code; the jobs views, the schema and the
# docs begin their request transaction first, and meet the outage there.
ENDPOINTS = [
    ("post", "/ops/namespaces/prod/deployments/web/scale", {"replicas": 1}, "audit_unavailable"),
    ("post", STS, {"replicas": 1}, "audit_unavailable"),
    ("delete", "/ops/namespaces/prod/pods/postgres-0", None, "audit_unavailable"),
    (
        "delete",
        "/ops/namespaces/prod/persistentvolumeclaims/data-postgres-0",
        None,
        "audit_unavailable",
    ),
    ("get", "/ops/audit", None, "audit_unavailable"),
    ("post", "/ops/jobs/pg-rebuild", REBUILD, "database_unavailable"),
    ("get", "/ops/jobs", None, "database_unavailable"),
    ("get", f"/ops/jobs/{JOB_ID}", None, "database_unavailable"),
    ("post", f"/ops/jobs/{JOB_ID}/cancel", None, "database_unavailable"),
    ("post", f"/ops/jobs/{JOB_ID}/retry", None, "database_unavailable"),
    ("get", "/api/schema/", None, "database_unavailable"),
    ("get", "/api/docs/", None, "database_unavailable"),
]


def _set_allow_connections(name: str, allowed: bool) -> None:
    with connections["default"]._nodb_cursor() as cursor:
        cursor.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS {str(allowed).lower()}')


def _end_open_connections(name: str) -> None:
    """Have the server end every connection to ``name`` and wait until they are gone."""
    with connections["default"]._nodb_cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [name])
            if cursor.fetchone()[0] == 0:
                return
            time.sleep(0.02)
    raise AssertionError(f"connections to {name} are still open")


@pytest.fixture
def database_down() -> Iterator[None]:
    """The test database refuses new connections and its open ones are ended (an outage)."""
    for alias in ("default", "audit"):
        connections[alias].ensure_connection()  # pooled connections, as a server holds them
    name = connections["default"].settings_dict["NAME"]
    _set_allow_connections(name, False)
    try:
        _end_open_connections(name)
        yield
    finally:
        _set_allow_connections(name, True)
        connections.close_all()


@pytest.fixture
def job() -> Job:
    """A pending pg-rebuild job, to be cancelled, retried and read during the outage."""
    now = timezone.now()
    return Job.objects.create(
        job_id=JOB_ID,
        type="pg-rebuild",
        status=JobStatus.PENDING,
        created_at=now,
        params=REBUILD,
        actor="bootstrap",
        source_ip=CLIENT_IP,
        target_kind="StatefulSet",
        target_namespace="prod",
        target_name="postgres",
        next_run_at=now,
    )


def send(client, method: str, path: str, body: dict | None = None, **headers):
    """One request, started as the server starts it (connections checked at their next use)."""
    close_old_connections()
    return getattr(client, method)(path, body, format="json", **headers)


def database_warnings(caplog) -> list[str]:
    """The warning lines saying a request met the outage."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and r.getMessage().startswith("database unavailable")
    ]


def tracebacks(caplog) -> list[logging.LogRecord]:
    """Records at ERROR or above that carry a stack."""
    return [
        r for r in caplog.records if r.levelno >= logging.ERROR and (r.exc_info or r.stack_info)
    ]


@pytest.mark.parametrize(
    ("method", "path", "body", "code"),
    ENDPOINTS,
    ids=[f"{m} {p.replace(JOB_ID, '{job_id}')}" for m, p, _, _ in ENDPOINTS],
)
def test_every_api_endpoint_answers_503_json_when_the_database_is_down(
    api, cluster, job, database_down, caplog, method, path, body, code
):
    response = send(api, method, path, body)

    assert response.status_code == 503, response.content
    assert response["Content-Type"] == "application/json"
    answer = response.json()
    assert sorted(answer) == ["code", "detail"]
    assert answer["code"] == code
    assert answer["detail"]
    assert mutations(cluster) == []
    assert tracebacks(caplog) == []


def test_readiness_is_503_naming_the_database_and_liveness_stays_200_when_it_is_down(
    anon, empty_cluster, database_down, caplog
):
    ready = send(anon, "get", "/health/ready")
    live = send(anon, "get", "/health/live")

    assert ready.status_code == 503
    body = ready.json()
    assert body["code"] == "not_ready"
    assert body["detail"] == "not ready: database"
    assert body["checks"]["database"] == {
        "ok": False,
        "error": "default: unavailable (OperationalError)",
    }
    assert body["checks"]["kubernetes"] == {"ok": True}
    assert live.status_code == 200
    assert tracebacks(caplog) == []


@pytest.mark.parametrize("path", ["/admin/", "/admin/ops/opslog/", "/admin/login/"])
def test_the_admin_answers_an_html_503_page_when_the_database_is_down(
    admin_client, database_down, caplog, path
):
    response = send(admin_client, "get", path)

    assert response.status_code == 503
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "Service Unavailable" in page
    assert "Traceback" not in page
    assert tracebacks(caplog) == []


def test_a_named_key_that_cannot_be_looked_up_is_503_not_401_and_the_attempt_is_audited(
    apiops, cluster, caplog, request
):
    client = APIClient(REMOTE_ADDR=CLIENT_IP)
    client.credentials(HTTP_X_API_KEY=ApiKey.objects.issue(name="deploy-bot").raw)
    request.getfixturevalue("dead_default_db")

    response = send(client, "post", STS, {"replicas": 1})

    assert response.status_code == 503, response.content
    assert response.json()["code"] == "database_unavailable"
    assert mutations(cluster) == []
    [row] = audit_log()
    assert (row.actor, row.status, row.code, row.http_status) == (
        None,
        "error",
        "database_unavailable",
        503,
    )
    assert tracebacks(caplog) == []


def test_a_scale_needs_only_the_audit_connection_and_still_sees_the_job_holding_it(
    api, cluster, job, caplog, request
):
    # The hold is read in the statement that writes the pending row (same database).
    request.getfixturevalue("dead_default_db")

    response = send(api, "post", STS, {"replicas": 1})

    assert response.status_code == 409, response.content
    assert response.json()["code"] == "job_target_busy"
    assert JOB_ID in response.json()["detail"]
    assert mutations(cluster) == []
    assert cluster.get("statefulsets", "prod", "postgres")["spec"]["replicas"] == 3
    [row] = audit_log()
    assert (row.status, row.code, row.http_status) == ("error", "job_target_busy", 409)
    assert tracebacks(caplog) == []


def test_a_browser_sending_a_named_key_during_an_outage_tries_the_database_once(
    apiops, cluster, caplog, request
):
    # The browsable API checks permissions again when it renders the error page: a lookup left
    # undecided by a driver error would be made again, against the same outage.
    client = APIClient(REMOTE_ADDR=CLIENT_IP)
    client.credentials(HTTP_X_API_KEY=ApiKey.objects.issue(name="deploy-bot").raw)
    request.getfixturevalue("dead_default_db")

    response = send(client, "get", "/ops/audit", HTTP_ACCEPT="text/html")

    assert response.status_code == 503
    assert len(database_warnings(caplog)) == 1
