"""What an API request costs the database, and recovery from a connection that died idle.

Round trips are counted at the driver: the connections of both aliases are opened through a
psycopg2 connection class that records each statement it sends (the health checks' ``SELECT
1`` and the implicit ``BEGIN`` included) and each ``COMMIT``. Before each measured request the
test does what the server does when a request starts (the test client skips it): Django's
``close_old_connections``, which makes a health check due on every reused connection.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg2.extensions
import pytest
from django.db import DataError, close_old_connections, connection, connections
from django.urls import resolve
from django.utils import timezone
from rest_framework.test import APIClient

from jobs.holds import active_job_holder
from jobs.models import Job, JobStatus
from ops.db import execute_prepared, prepared_name, read_as_health_check
from ops.models import ApiKey, OpsLog
from ops.selectors import _AUTH_FAILURES_SQL
from tests.ops.conftest import CLIENT_IP, TRANSACTIONAL_DB, audit_log

pytestmark = TRANSACTIONAL_DB

STS = "/ops/namespaces/prod/statefulsets/postgres/scale"
ALIASES = ("default", "audit")


class CountingCursor(psycopg2.extensions.cursor):
    """Records each statement (and the BEGIN psycopg2 sends before it outside autocommit); the
    run of a prepared statement as ``EXECUTE <its first word>``."""

    def execute(self, query, vars=None):
        conn = self.connection
        text = query.decode() if isinstance(query, bytes) else str(query)
        if not conn.autocommit and conn.status == psycopg2.extensions.STATUS_READY:
            conn.trips.append((conn.alias, "BEGIN"))
        words = text.split()
        if words[0] == "PREPARE":  # PREPARE <name> AS <statement>
            conn.prepared[words[1]] = words[3]
        if words[0] == "EXECUTE":
            conn.trips.append((conn.alias, f"EXECUTE {conn.prepared[words[1].split('(')[0]]}"))
        else:
            conn.trips.append((conn.alias, "SELECT 1" if text == "SELECT 1" else words[0]))
        return super().execute(query, vars)


class CountingConnection(psycopg2.extensions.connection):
    """Records each COMMIT that reaches the server."""

    alias = "?"
    trips: list[tuple[str, str]] = []

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.prepared: dict[str, str] = {}

    def commit(self):
        if self.status != psycopg2.extensions.STATUS_READY:
            self.trips.append((self.alias, "COMMIT"))
        return super().commit()


@pytest.fixture
def trips() -> Iterator[list[tuple[str, str]]]:
    """The (alias, statement) list of everything sent from now on, on fresh connections."""
    log: list[tuple[str, str]] = []
    saved = {}
    for alias in ALIASES:
        conn = connections[alias]
        conn.close()
        saved[alias] = dict(conn.settings_dict["OPTIONS"])
        factory = type(f"Counting_{alias}", (CountingConnection,), {"alias": alias, "trips": log})
        conn.settings_dict["OPTIONS"].update(
            connection_factory=factory, cursor_factory=CountingCursor
        )
    yield log
    for alias in ALIASES:
        conn = connections[alias]
        conn.close()
        conn.settings_dict["OPTIONS"].clear()
        conn.settings_dict["OPTIONS"].update(saved[alias])


@pytest.fixture
def client_for_key(apiops):
    """A client sending a named key (looked up in ops_api_key) from CLIENT_IP."""

    def make() -> APIClient:
        raw = ApiKey.objects.issue(name="deploy-bot").raw
        client = APIClient(REMOTE_ADDR=CLIENT_IP)
        client.credentials(HTTP_X_API_KEY=raw)
        return client

    return make


def measured(trips: list, send) -> tuple[object, list[tuple[str, str]]]:
    """Send one request as the server would start it; its answer and its round trips."""
    close_old_connections()
    trips.clear()
    response = send()
    return response, list(trips)


def scale(api, replicas: int):
    return api.post(STS, {"replicas": replicas}, format="json")


def test_a_scale_request_costs_the_throttle_read_the_pending_row_and_the_outcome(
    api, cluster, trips
):
    assert scale(api, 2).status_code == 200  # opens the connections
    assert [verb for _, verb in trips].count("PREPARE") == 3  # once per connection

    response, sent = measured(trips, lambda: scale(api, 1))

    assert response.status_code == 200
    assert sent == [
        ("audit", "EXECUTE SELECT"),  # the 401 throttle (and the connection's health check)
        ("audit", "EXECUTE WITH"),  # the pending row, written unless a job holds the set
        ("audit", "EXECUTE UPDATE"),  # the outcome
    ]


def test_without_prepared_statements_a_scale_sends_the_same_three_statements_as_they_are(
    api, cluster, trips, settings
):
    settings.APIOPS = {**settings.APIOPS, "DB_PREPARED_STATEMENTS": False}
    assert scale(api, 2).status_code == 200

    response, sent = measured(trips, lambda: scale(api, 1))

    assert response.status_code == 200
    assert sent == [("audit", "SELECT"), ("audit", "WITH"), ("audit", "UPDATE")]
    assert [row.status for row in audit_log()] == ["success", "success"]


def test_a_named_key_adds_one_read_of_the_key_and_no_transaction(client_for_key, cluster, trips):
    client = client_for_key()
    assert scale(client, 2).status_code == 200

    response, sent = measured(trips, lambda: scale(client, 1))

    assert response.status_code == 200
    assert sent == [
        ("audit", "EXECUTE SELECT"),
        ("default", "SELECT"),  # the key
        ("audit", "EXECUTE WITH"),
        ("audit", "EXECUTE UPDATE"),
    ]


def test_the_audit_list_reads_through_the_audit_connection_only(api, cluster, trips):
    assert scale(api, 2).status_code == 200

    response, sent = measured(trips, lambda: api.get("/ops/audit"))

    assert response.status_code == 200
    assert sent
    assert {alias for alias, _ in sent} == {"audit"}


def test_the_jobs_views_keep_their_request_transaction():
    for path in ("/ops/jobs/pg-rebuild", "/ops/jobs", "/ops/jobs/x/cancel", "/ops/jobs/x/retry"):
        assert "default" not in getattr(resolve(path).func, "_non_atomic_requests", set())


def _terminate_backend(alias: str) -> None:
    """Kill the server side of ``alias``'s connection (as a database restart would) and wait
    until the server has let it go."""
    pid = connections[alias].connection.get_backend_pid()
    other = "audit" if alias == "default" else "default"
    with connections[other].cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
            if cursor.fetchone()[0] == 0:
                return
            time.sleep(0.02)
    raise AssertionError(f"backend {pid} of {alias} is still there")


def test_an_audit_connection_that_died_idle_is_replaced_and_the_request_succeeds(
    api, cluster, trips
):
    assert scale(api, 2).status_code == 200
    _terminate_backend("audit")

    response, sent = measured(trips, lambda: scale(api, 1))

    assert response.status_code == 200
    assert cluster.get("statefulsets", "prod", "postgres")["spec"]["replicas"] == 1
    assert [row.status for row in audit_log()] == ["success", "success"]
    # The throttle read failed on the dead connection and was made again on a new one (whose
    # set-up selects its time zone); the audit row was written once.
    assert sent[0] == ("audit", "EXECUTE SELECT")
    assert sent[-6:] == [  # on the new connection, each statement prepared on its first use
        ("audit", "PREPARE"),
        ("audit", "EXECUTE SELECT"),
        ("audit", "PREPARE"),
        ("audit", "EXECUTE WITH"),  # the job hold and the pending row
        ("audit", "PREPARE"),
        ("audit", "EXECUTE UPDATE"),
    ]


def test_a_default_connection_that_died_idle_is_replaced_for_the_key_lookup(
    client_for_key, cluster, trips
):
    client = client_for_key()
    assert scale(client, 2).status_code == 200
    _terminate_backend("default")

    response, _ = measured(trips, lambda: scale(client, 1))

    assert response.status_code == 200
    assert cluster.get("statefulsets", "prod", "postgres")["spec"]["replicas"] == 1


def test_a_failing_read_on_a_live_connection_is_not_made_twice(trips):
    connection.ensure_connection()
    close_old_connections()
    calls = []

    def bad_read():
        calls.append(1)
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 / 0")

    with pytest.raises(DataError):
        read_as_health_check("default", bad_read)

    assert len(calls) == 1
    assert connection.connection is not None  # still open: only the read failed


def _generic_plan(sql: str, params: list, *, analyze: str) -> str:
    """The plan PostgreSQL runs ``sql`` with once it is prepared and has switched to a generic
    plan (after five runs), for ``params``, with fresh statistics of the table ``analyze``."""
    with connections["audit"].cursor() as cursor:
        cursor.execute(f"ANALYZE {analyze}")
        for _ in range(6):
            execute_prepared(cursor, sql, params)
            cursor.fetchall()
        cursor.execute(
            "SELECT generic_plans FROM pg_prepared_statements WHERE name = %s",
            [prepared_name(sql)],
        )
        assert cursor.fetchone()[0] >= 1
        arguments = ", ".join(["%s"] * len(params))
        cursor.execute(f"EXPLAIN EXECUTE {prepared_name(sql)}({arguments})", params)
        return "\n".join(row[0] for row in cursor.fetchall())


def test_the_throttle_read_keeps_its_partial_index_in_its_generic_plan(apiops):
    # A busy caller: many rows from its address, none of them a failure. A generic plan that
    # could not use the partial index would read them all.
    now = timezone.now()
    OpsLog.objects.using("audit").bulk_create(
        OpsLog(
            ts=now,
            actor="ci-bot",
            source_ip="203.0.113.7",
            action="scale",
            resource_kind="deployment",
            namespace="prod",
            resource_name=f"web-{i}",
            status="pending",
        )
        for i in range(3000)
    )

    plan = _generic_plan(_AUTH_FAILURES_SQL, ["203.0.113.7", now, 21], analyze="ops_log")

    assert "ops_log_authfail_idx" in plan, plan


def test_the_job_hold_keeps_its_partial_index_in_its_generic_plan(apiops):
    # A namespace with a long history of finished jobs, none of them active.
    now = timezone.now()
    Job.objects.bulk_create(
        Job(
            job_id=f"job-{i}",
            type="pg-rebuild",
            status=JobStatus.SUCCESS,
            created_at=now,
            params={},
            actor="ci-bot",
            target_kind="StatefulSet",
            target_namespace="prod",
            target_name=f"db-{i % 50}",
            next_run_at=now,
        )
        for i in range(3000)
    )
    query = active_job_holder("StatefulSet", "prod", ["postgres"])

    plan = _generic_plan(query.sql, list(query.params), analyze="ops_job")

    # Either index over active jobs only (both have the statuses in their predicate) will do.
    assert "ops_job_one_active_per_target" in plan or "ops_job_active_due_idx" in plan, plan
