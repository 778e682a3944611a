"""The jobs app's answer to :mod:`ops.holds`: an active job holds its target.

Registered from :meth:`jobs.apps.JobsConfig.ready`, so the ops services refuse (409) a scale
or delete of an object an active job is working on, without ops importing jobs.
"""

from __future__ import annotations

from collections.abc import Sequence

from jobs.models import ACTIVE_STATUSES
from ops.holds import HolderQuery

_HOLDER_SQL = """
SELECT job_id AS holder FROM ops_job
WHERE status = ANY(%s) AND target_kind = %s AND target_namespace = %s AND target_name = ANY(%s)
ORDER BY created_at, id
LIMIT 1
"""


def active_job_holder(kind: str, namespace: str, names: Sequence[str]) -> HolderQuery:
    """The query for the oldest pending or running job whose target is ``kind namespace/name``
    for one of ``names`` (one indexed lookup; the partial unique index on active targets
    allows at most one per name). A plain statement: it is part of every primitive
    operation's first write (:func:`ops.audit.attempt`), and the ORM would spend longer
    building it than PostgreSQL takes to answer."""
    return HolderQuery(
        _HOLDER_SQL, ([str(s) for s in ACTIVE_STATUSES], kind, namespace, list(names))
    )
