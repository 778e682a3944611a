"""Reads of the ops tables. Audit reads go through the audit alias (where the rows are written)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import connections
from django.db.models import QuerySet
from django.utils import timezone

from ops.actors import Actor
from ops.audit import audit_alias
from ops.db import execute_prepared, sql_word, sql_words
from ops.models import OpsLog, OpsLogStatus


def audit_rows() -> QuerySet[OpsLog]:
    """Every audit row, newest first."""
    return OpsLog.objects.using(audit_alias()).order_by("-ts", "-id")


def audit_rows_visible_to(actor: Actor) -> QuerySet[OpsLog]:
    """The audit rows ``actor`` may read, newest first: a key scoped to namespaces sees only
    rows about those namespaces (as with jobs, :func:`jobs.selectors.jobs_visible_to`).

    Rows with no namespace — a refused ``/ops/audit`` request, a job id nobody knows — are not
    about anything a scoped key may see, so only unscoped keys (and the CLI) read them.
    """
    rows = audit_rows()
    if actor.namespaces:
        rows = rows.filter(namespace__in=actor.namespaces)
    return rows


def audit_rows_for_job(job_id: str) -> QuerySet[OpsLog]:
    """The audit rows a job's steps wrote, oldest first."""
    return OpsLog.objects.using(audit_alias()).filter(job_id=job_id).order_by("ts", "id")


# The codes of the refusals that count towards the throttle: a missing or a wrong key.
AUTH_FAILURE_CODES = ("not_authenticated", "authentication_failed")


# The fixed values are in the text (see ops.db.sql_words): the partial index
# ops_log_authfail_idx (actor IS NULL AND status = 'denied') serves its generic plan too.
_AUTH_FAILURES_SQL = f"""
SELECT count(*) FROM (
    SELECT 1 FROM ops_log
    WHERE status = {sql_word(OpsLogStatus.DENIED)} AND actor IS NULL
      AND source_ip = %s AND ts >= %s AND code = ANY({sql_words(*AUTH_FAILURE_CODES)})
    LIMIT %s
) AS failures
"""  # noqa: S608 - code constants only; every input is a parameter


def recent_auth_failures(source_ip: str | None, *, limit: int) -> int:
    """Failed authentications from ``source_ip`` in the throttle window, counted up to ``limit``.

    The 401s are audit rows already (``denied`` with no actor), so the audit table is the
    counter: shared by every process and server, and answered by a partial index. The 429s
    answered while throttled are rows too, but do not count: otherwise a client that keeps
    calling would keep its own window full and stay locked out for ever.

    Asked on every API request, so it is one plain statement (the ORM spends longer building
    this query than PostgreSQL takes to answer it from the partial index ``ops_log_authfail_idx``).
    """
    if not source_ip:
        return 0
    since = timezone.now() - timedelta(seconds=settings.APIOPS["AUTH_FAILURE_WINDOW"])
    params = [source_ip, since, limit]
    with connections[audit_alias()].cursor() as cursor:
        execute_prepared(cursor, _AUTH_FAILURES_SQL, params)
        return cursor.fetchone()[0]
