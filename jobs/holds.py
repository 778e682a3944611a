"""The jobs app's answer to :mod:`ops.holds`: an active job holds its target.

Registered from :meth:`jobs.apps.JobsConfig.ready`, so the ops services refuse (409) a scale
or delete of an object an active job is working on, without ops importing jobs.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import router

from jobs.models import ACTIVE_STATUSES, Job
from ops.db import read_as_health_check


def active_job_holding(kind: str, namespace: str, names: Sequence[str]) -> str | None:
    """The id of the oldest pending or running job whose target is ``kind namespace/name``
    for one of ``names``, or None (one indexed query; the partial unique index on active
    targets allows at most one per name).

    Often the request's first statement on its connection, so it stands in for the
    connection's health check (:func:`ops.db.read_as_health_check`): one round trip, not two.
    """
    alias = router.db_for_read(Job)
    active = Job.objects.using(alias).filter(
        status__in=ACTIVE_STATUSES,
        target_kind=kind,
        target_namespace=namespace,
        target_name__in=list(names),
    )
    return read_as_health_check(
        alias,
        lambda: active.order_by("created_at", "id").values_list("job_id", flat=True).first(),
    )
