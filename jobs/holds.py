"""The jobs app's answer to :mod:`ops.holds`: an active job holds its target.

Registered from :meth:`jobs.apps.JobsConfig.ready`, so the ops services refuse (409) a scale
or delete of an object an active job is working on, without ops importing jobs.
"""

from __future__ import annotations

from collections.abc import Sequence

from jobs.models import ACTIVE_STATUSES
from ops.db import sql_words
from ops.holds import HolderQuery

# The active statuses are in the text (see ops.db.sql_words): the partial unique index
# ops_job_one_active_per_target serves the statement's generic plan too.
_HOLDER_SQL = f"""
SELECT job_id AS holder FROM ops_job
WHERE status = ANY({sql_words(*ACTIVE_STATUSES)})
  AND target_kind = %s AND target_namespace = %s AND target_name = ANY(%s)
ORDER BY created_at, id
LIMIT 1
"""  # noqa: S608 - code constants only; every input is a parameter


def active_job_holder(kind: str, namespace: str, names: Sequence[str]) -> HolderQuery:
    """The query for the oldest pending or running job whose target is ``kind namespace/name``
    for one of ``names`` (one indexed lookup; the partial unique index on active targets
    allows at most one per name). A plain statement: it is part of every primitive
    operation's first write (:func:`ops.audit.attempt`), and the ORM would spend longer
    building it than PostgreSQL takes to answer."""
    return HolderQuery(_HOLDER_SQL, (kind, namespace, list(names)))
