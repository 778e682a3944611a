"""The jobs app's answer to :mod:`ops.holds`: an active job holds its target.

Registered from :meth:`jobs.apps.JobsConfig.ready`, so the ops services refuse (409) a scale
or delete of an object an active job is working on, without ops importing jobs.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connections, router

from jobs.models import ACTIVE_STATUSES, Job
from ops.db import read_as_health_check

_HOLDER_SQL = """
SELECT job_id FROM ops_job
WHERE status = ANY(%s) AND target_kind = %s AND target_namespace = %s AND target_name = ANY(%s)
ORDER BY created_at, id
LIMIT 1
"""


def active_job_holding(kind: str, namespace: str, names: Sequence[str]) -> str | None:
    """The id of the oldest pending or running job whose target is ``kind namespace/name``
    for one of ``names``, or None (one indexed query; the partial unique index on active
    targets allows at most one per name).

    Asked before every primitive operation, so it is one plain statement (the ORM spends
    longer building it than PostgreSQL takes to answer). Often the request's first statement
    on its connection, so it stands in for the connection's health check
    (:func:`ops.db.read_as_health_check`): one round trip, not two.
    """
    alias = router.db_for_read(Job)
    params = [[str(s) for s in ACTIVE_STATUSES], kind, namespace, list(names)]

    def read() -> str | None:
        with connections[alias].cursor() as cursor:
            cursor.execute(_HOLDER_SQL, params)
            row = cursor.fetchone()
        return row[0] if row else None

    return read_as_health_check(alias, read)
