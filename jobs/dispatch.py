"""Waking jobs up: enqueueing ticks (now or after a pause) and the pump that rescues them.

django-q2 has no delayed enqueue, but its ORM broker hides a queued row until its ``lock``
time, so writing the row with a future ``lock`` *is* a delayed delivery. A waiting job's next
tick is therefore queued at once (inside our transaction's on_commit) and becomes visible
when it is due, without holding a worker and without waiting for a schedule.

Ticks can still be lost (an enqueue failing after commit) or stranded (a worker SIGKILLed
mid-tick: django-q2 redelivers only after ``retry``). The pump finds active jobs whose lease
lapsed and whose next run is overdue, and sends them a tick with their current ``tick_seq``
— a duplicate is harmless, it fails to claim. The pump keeps itself going with a delayed
enqueue every ``JOB_PUMP_INTERVAL`` seconds; a compare-and-set on the single ``ops_job_pump``
row lets only one such chain live, and a django-q2 schedule (every minute) plus every worker
start revive it if it dies. Each run also closes audit rows a dead process left ``pending``
and deletes expired Idempotency-Keys.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone
from django_q.brokers.orm import ORM
from django_q.conf import Conf
from django_q.tasks import async_task

from jobs.conf import job_settings
from jobs.models import ACTIVE_STATUSES, Job, JobPump
from ops.approvals import expire_due
from ops.audit import close_stale_pending
from ops.errors import AuditUnavailable
from ops.idempotency import purge_expired

logger = logging.getLogger("jobs.dispatch")

TICK_TASK = "jobs.tasks.tick"
PUMP_TASK = "jobs.tasks.pump"
PUMP_SCHEDULE_NAME = "jobs.pump"


class _DelayedOrmBroker(ORM):
    """The ORM broker, writing the queue row so that it becomes visible ``delay`` s from now."""

    def __init__(self, delay: float) -> None:
        super().__init__(list_key=Conf.CLUSTER_NAME)
        self.delay = delay

    def enqueue(self, task: str) -> int:
        package = self.get_connection().create(
            key=self.list_key,
            payload=task,
            lock=timezone.now() + timedelta(seconds=self.delay),
        )
        return package.pk


def _enqueue(func: str, *args: object, delay: float, name: str) -> None:
    q_options: dict[str, object] = {"task_name": name, "save": False}
    if delay > 0 and Conf.ORM:
        q_options["broker"] = _DelayedOrmBroker(delay)
    async_task(func, *args, q_options=q_options)


def enqueue_tick(job_id: str, seq: int, *, delay: float = 0.0) -> None:
    """Queue ``tick(job_id, seq)``, visible to workers after ``delay`` seconds."""
    _enqueue(TICK_TASK, job_id, seq, delay=delay, name=f"tick {job_id} #{seq}")


def enqueue_tick_on_commit(job_id: str, seq: int, *, delay: float = 0.0) -> None:
    """Queue the tick once the current transaction commits (never for a rolled-back job)."""
    transaction.on_commit(lambda: enqueue_tick(job_id, seq, delay=delay))


def enqueue_pump(*, delay: float = 0.0) -> None:
    """Queue a pump run, visible to workers after ``delay`` seconds."""
    _enqueue(PUMP_TASK, delay=delay, name="jobs pump")


def dispatch_due() -> list[str]:
    """Send a tick to every active job whose lease lapsed and whose next run is overdue.

    "Overdue" allows one lease length of slack after ``next_run_at``, so a tick that is merely
    queued behind others is not duplicated on every pump. Returns the job ids dispatched.
    """
    grace = timedelta(seconds=job_settings().lease_seconds)
    dispatched: list[str] = []
    with transaction.atomic():
        due = (
            Job.objects.select_for_update(skip_locked=True)
            .filter(status__in=ACTIVE_STATUSES)
            .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=Now()))
            .filter(Q(next_run_at__isnull=True) | Q(next_run_at__lt=Now() - grace))
            .values_list("pk", "job_id", "tick_seq")
        )
        for pk, job_id, seq in due:
            Job.objects.filter(pk=pk).update(next_run_at=Now())
            enqueue_tick_on_commit(job_id, seq)
            dispatched.append(job_id)
    if dispatched:
        logger.warning("pump re-dispatched %d job(s): %s", len(dispatched), ", ".join(dispatched))
    return dispatched


def close_stale_audit_rows() -> int:
    """Close audit rows left ``pending`` longer than ``AUDIT_PENDING_MAX_AGE`` as "outcome
    unknown" (see :func:`ops.audit.close_stale_pending`); returns how many.

    The pump is the one process sure to run regularly whatever else died, so it sweeps
    them. An audit database that cannot be written is logged, not raised: rescuing jobs
    comes first, and the next pump tries again.
    """
    max_age = timedelta(seconds=job_settings().audit_pending_max_age)
    try:
        closed = close_stale_pending(older_than=max_age)
    except AuditUnavailable:
        logger.warning("could not close stale pending audit rows: the audit log is unavailable")
        return 0
    if closed:
        logger.warning(
            "closed %d audit row(s) left pending over %s as outcome unknown", closed, max_age
        )
    return closed


def expire_approvals() -> int:
    """Mark approvals past their ``expires_at`` expired (:func:`ops.approvals.expire_due`);
    how many. An audit database that cannot be written is logged: the next pump tries again
    (requests are refused past ``expires_at`` whether or not they are marked)."""
    try:
        return expire_due()
    except AuditUnavailable:
        logger.warning("could not mark expired approvals: the audit log is unavailable")
        return 0


def purge_idempotency_keys() -> int:
    """Delete expired Idempotency-Key answers and dead claims (see
    :func:`ops.idempotency.purge_expired`); returns how many. Logged, not raised, when the
    database cannot be written: an expired key is free again without the purge anyway."""
    try:
        return purge_expired()
    except AuditUnavailable:
        logger.warning("could not purge expired Idempotency-Keys: the database is unavailable")
        return 0


def pump() -> int:
    """Rescue stranded jobs, close stale pending audit rows, expire approvals and purge
    expired Idempotency-Keys, then schedule the next pump; a no-op (-1) if another pump is
    live."""
    interval = job_settings().pump_interval
    with transaction.atomic():
        JobPump.objects.bulk_create([JobPump(id=1)], ignore_conflicts=True)
        # Half an interval of slack: a chain that arrives a little early (clock skew) still
        # runs, while a second chain started within half an interval of this one dies out.
        ours = (
            JobPump.objects.filter(id=1)
            .filter(
                Q(next_at__isnull=True) | Q(next_at__lte=Now() + timedelta(seconds=interval / 2))
            )
            .update(next_at=Now() + timedelta(seconds=interval), last_run_at=Now())
        )
        if not ours:
            return -1
        transaction.on_commit(lambda: enqueue_pump(delay=interval))
    dispatched = dispatch_due()
    close_stale_audit_rows()
    expire_approvals()
    purge_idempotency_keys()
    return len(dispatched)


def _on_worker_spawn(sender: object, proc_name: str = "", **kwargs: object) -> None:
    """A (re)started worker revives the pump, so a killed worker's job is found promptly,
    and loads the Kubernetes client before its first step rather than during it."""
    from ops import k8s

    k8s.warm_up()
    try:
        enqueue_pump()
    except Exception:
        # Never keep a worker from starting; the minute schedule revives the pump anyway.
        logger.exception("could not enqueue the pump from %s", proc_name)


def connect_worker_signals() -> None:
    """Have every django-q2 worker revive the pump and warm the client when it starts."""
    from django_q.signals import post_spawn

    post_spawn.connect(_on_worker_spawn, dispatch_uid="jobs.pump_on_worker_spawn")
