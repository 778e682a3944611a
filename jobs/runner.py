"""The step runner: one tick claims a job, advances it as far as it can, and hands it on.

The job row is the state machine and django-q2 only delivers wake-ups, which it may deliver
late, twice, concurrently, or never (see JOBS.md). So every tick:

1. claims the job with a compare-and-set UPDATE on the database clock — only the tick whose
   ``tick_seq`` matches and who finds the lease free gets it (a duplicate gets nothing);
2. enters the first unfinished step under ``SELECT ... FOR UPDATE``: counts the attempt,
   notices when the previous entry never finished (crash-loop limit), fixes the deadline on
   first entry (so a timeout survives redelivery), honours a cancel request;
3. runs the step, which looks before it acts and returns ``Done`` or ``Wait``;
4. on ``Wait``: polls again while its budget lasts (heartbeating), then releases the lease,
   sets ``next_run_at``, bumps ``tick_seq`` and enqueues the next tick on commit;
   on an exception: fails the step and the job with a readable detail.

While a tick runs, a side thread heartbeats its lease, so only a dead worker loses it; a tick
killed half-way simply lets its lease lapse; the pump (``jobs.dispatch.pump``) then
sends a new tick, which finds the step's ``active_tick`` still set and counts an interruption.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError, connection, transaction
from django.db.models.functions import Now

from jobs import events
from jobs.conf import JobSettings, job_settings
from jobs.models import ACTIVE_STATUSES, STOPPED_STATUSES, Job, JobStatus, JobStep
from jobs.registry import get_job_type
from jobs.selectors import acting_key_refusal
from jobs.steps import Done, Wait
from ops import audit, metrics
from ops.actors import ORIGIN_API, ORIGIN_CLI

logger = logging.getLogger("jobs.runner")


class LeaseLost(Exception):
    """This tick no longer owns the job: stop without touching it."""


class JobCancelled(Exception):
    """Someone asked for the job to stop; raised between actions."""


class ActorNotAllowed(Exception):
    """The key the job acts for can no longer be used (revoked, expired): stop acting for it."""


def new_owner() -> str:
    """A lease owner id unique to one tick; host and pid tell people which worker holds it."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def db_now() -> datetime:
    """The database's clock (transaction start inside an atomic block)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        return cursor.fetchone()[0]


def _lease_expiry(cfg: JobSettings):
    return Now() + timedelta(seconds=cfg.lease_seconds)


@dataclass(frozen=True)
class Claim:
    """A won claim; ``early`` is how many seconds before its ``next_run_at`` the tick came."""

    early: float


# Also returns how late the claim comes (the job's pick-up delay) and the status before it:
# "pending" means this claim starts the job (first run, or after a retry).
_CLAIM_SQL = """
WITH before AS (SELECT status FROM ops_job WHERE job_id = %s)
UPDATE ops_job
   SET status = 'running', lease_owner = %s, heartbeat_at = now(),
       lease_expires_at = now() + make_interval(secs => %s)
 WHERE job_id = %s AND tick_seq = %s AND status IN ('pending', 'running')
   AND (lease_owner IS NULL OR lease_expires_at < now())
RETURNING GREATEST(EXTRACT(EPOCH FROM (next_run_at - now())), 0),
          GREATEST(EXTRACT(EPOCH FROM (now() - next_run_at)), 0),
          (SELECT status FROM before)
"""


def claim(job_id: str, seq: int, owner: str, cfg: JobSettings | None = None) -> Claim | None:
    """Take the job if this tick is the current one and nobody holds a live lease.

    One compare-and-set UPDATE on the database clock: of any number of racing ticks exactly
    one gets the row back; the others (and stale or duplicated deliveries) get None. The claim
    that starts a pending job writes its ``job.started`` event in the same transaction.
    """
    cfg = cfg or job_settings()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(_CLAIM_SQL, [job_id, owner, cfg.lease_seconds, job_id, seq])
            row = cursor.fetchone()
        if row is None:
            return None
        if row[2] == JobStatus.PENDING:
            events.job_started(Job.objects.get(job_id=job_id))
    late = float(row[1] or 0)
    metrics.JOB_PICKUP.observe(late)
    return Claim(early=float(row[0] or 0))


def heartbeat(job_id: str, owner: str, cfg: JobSettings | None = None) -> None:
    """Extend our lease; raise LeaseLost when someone else owns the job now."""
    cfg = cfg or job_settings()
    extended = Job.objects.filter(job_id=job_id, lease_owner=owner).update(
        lease_expires_at=_lease_expiry(cfg), heartbeat_at=Now()
    )
    if extended != 1:
        raise LeaseLost(job_id)


def _own(job_id: str, owner: str) -> Job:
    """Lock the job row for this transaction, or raise LeaseLost if it is not ours.

    The row comes with ``db_now``, the database clock of this transaction.
    """
    job = Job.objects.select_for_update().annotate(db_now=Now()).get(job_id=job_id)
    if job.lease_owner != owner or job.status not in ACTIVE_STATUSES:
        raise LeaseLost(job_id)
    return job


def _release(job: Job) -> None:
    job.lease_owner = None
    job.lease_expires_at = None


_CHECKPOINT_SQL = """
UPDATE ops_job
   SET heartbeat_at = now(), lease_expires_at = now() + make_interval(secs => %s)
 WHERE job_id = %s AND lease_owner = %s AND status IN ('pending', 'running')
RETURNING cancel_requested
"""


class TickContext:
    """The :class:`jobs.steps.StepContext` a tick gives its step: the job's parameters, who it
    acts for, its own saved state, and the engine's services (checkpoint, evidence...).

    ``actor``, ``source_ip`` and ``actor_namespaces`` are those of whoever the job acts for
    now: the requester, or the last one who retried it.
    """

    def __init__(self, *, job: Job, step: JobStep, owner: str, cfg: JobSettings) -> None:
        self.job_id = job.job_id
        self.job_type = job.type
        self.params: dict[str, Any] = dict(job.params)
        if job.acting_actor is not None:
            actor, source_ip = job.acting_actor, job.acting_source_ip
            namespaces, self.actor_origin = job.acting_namespaces, job.acting_origin
        else:  # a job from before the acting columns: its requester
            actor, source_ip, namespaces = job.actor, job.source_ip, job.actor_namespaces
            self.actor_origin = ORIGIN_CLI if (actor or "").startswith("cli:") else ORIGIN_API
        self.actor: str | None = actor
        self.source_ip: str | None = source_ip
        self.actor_namespaces: tuple[str, ...] | None = tuple(namespaces) if namespaces else None
        self.deadline_at = step.deadline_at
        self.step_name = step.name
        self.state: dict[str, Any] = dict(step.state or {})
        self.owner = owner
        self.settings = cfg
        self._step_id = step.pk

    def heartbeat(self) -> None:
        """Extend the lease now (LeaseLost if it is no longer ours)."""
        heartbeat(self.job_id, self.owner, self.settings)

    def earlier_state(self, step_name: str) -> dict[str, Any]:
        """What an earlier step of this job saved (e.g. a selector it read), or {}."""
        saved = (
            JobStep.objects.filter(job_id=self.job_id, name=step_name)
            .values_list("state", flat=True)
            .first()
        )
        return dict(saved or {})

    def record_result(self, **values: Any) -> None:
        """Add ``values`` to the job's ``result`` (evidence people and auditors read: uids
        before and after, timings), at once, whatever happens to the step afterwards."""
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE ops_job SET result = COALESCE(result, '{}'::jsonb) || %s::jsonb "
                "WHERE job_id = %s AND lease_owner = %s",
                [json.dumps(values), self.job_id, self.owner],
            )
            if cursor.rowcount != 1:
                raise LeaseLost(self.job_id)

    def job_result(self) -> dict[str, Any]:
        """The job's ``result`` as recorded so far."""
        saved = Job.objects.filter(job_id=self.job_id).values_list("result", flat=True).first()
        return dict(saved or {})

    def close_interrupted(self, target: audit.Target, *, applied: bool, observed: str) -> int:
        """Close the audit rows an interrupted attempt of this job left ``pending`` on
        ``target`` with what this step observed (see :func:`ops.audit.close_interrupted`)."""
        return audit.close_interrupted(
            job_id=self.job_id, target=target, applied=applied, observed=observed
        )

    def db_now(self) -> datetime:
        """The database clock now (durations the job reports are measured on it)."""
        return db_now()

    def past_deadline(self) -> bool:
        """True when this check is the step's last (a wait may then say more about why)."""
        return self.deadline_at is not None and db_now() >= self.deadline_at

    def checkpoint(self) -> None:
        """Save ``state`` and confirm we still own a live job; call before every mutation.

        Saving first means that if the worker dies right after the mutation, the next tick
        knows what this one had learnt (e.g. the original replica count) and looks before
        it acts instead of acting again. Also raises ActorNotAllowed when the key the job
        acts for has been revoked or has expired since: no mutation in a revoked key's name.
        """
        refusal = acting_key_refusal(self.actor, self.actor_origin)
        if refusal:
            raise ActorNotAllowed(refusal)
        with transaction.atomic():
            with connection.cursor() as cursor:
                # The UPDATE takes the row lock and checks ownership in one round trip.
                cursor.execute(
                    _CHECKPOINT_SQL, [self.settings.lease_seconds, self.job_id, self.owner]
                )
                row = cursor.fetchone()
            if row is None:
                raise LeaseLost(self.job_id)
            if row[0]:
                raise JobCancelled(self.job_id)
            JobStep.objects.filter(pk=self._step_id).update(state=self.state)


@dataclass(frozen=True)
class _Entered:
    job: Job
    step: JobStep
    at: datetime  # database clock at entry
    at_monotonic: float  # this process's clock at entry, to tell the database time later

    def db_time(self) -> datetime:
        """The database clock now, without asking it (entry time plus time elapsed here)."""
        return self.at + timedelta(seconds=time.monotonic() - self.at_monotonic)


@dataclass(frozen=True)
class _StepDone:
    step: JobStep
    state: dict[str, Any]
    detail: str

    @property
    def step_id(self) -> int:
        return self.step.pk

    @property
    def name(self) -> str:
        return self.step.name


def run_tick(job_id: str, seq: int) -> str:
    """Advance one job as far as it can go now; returns a one-line outcome for the task log."""
    cfg = job_settings()
    owner = new_owner()
    won = claim(job_id, seq, owner, cfg)
    if won is None:
        return f"{job_id}: not claimed (seq {seq})"
    try:
        with _KeepAlive(job_id, owner, cfg):
            if won.early > 0:  # a broker without delayed delivery: wait out the poll pause
                time.sleep(min(won.early, cfg.poll_interval))
            return _drive(job_id, owner, cfg)
    except LeaseLost:
        logger.warning("job %s: lease lost by %s, stopping", job_id, owner)
        return f"{job_id}: lease lost"


class _KeepAlive:
    """Heartbeats from a side thread while the tick runs, every third of the lease.

    A single Kubernetes call may legitimately outlast the lease (timeouts times retries); the
    lease must only lapse when the worker is gone, not while it waits for an answer. If the
    worker dies the thread dies with it; if the tick hangs, django-q2's timeout kills the
    worker. A lost lease is noticed by the tick at its next ownership check.
    """

    def __init__(self, job_id: str, owner: str, cfg: JobSettings) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(job_id, owner, cfg), name=f"heartbeat {job_id}", daemon=True
        )

    def _run(self, job_id: str, owner: str, cfg: JobSettings) -> None:
        try:
            while not self._stop.wait(cfg.lease_seconds / 3):
                try:
                    heartbeat(job_id, owner, cfg)
                except LeaseLost:
                    return
                except DatabaseError:
                    logger.warning("job %s: heartbeat failed", job_id, exc_info=True)
        finally:
            connection.close()  # this thread's own connection

    def __enter__(self) -> _KeepAlive:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _drive(job_id: str, owner: str, cfg: JobSettings) -> str:
    started = time.monotonic()
    done: _StepDone | None = None
    while True:
        entered = _enter_next_step(job_id, owner, cfg, done)
        if isinstance(entered, str):
            return entered
        ctx = TickContext(job=entered.job, step=entered.step, owner=owner, cfg=cfg)
        outcome = _run_step(ctx, entered, cfg, started)
        if isinstance(outcome, str):
            return outcome
        done = outcome


def _enter_next_step(
    job_id: str, owner: str, cfg: JobSettings, done: _StepDone | None
) -> _Entered | str:
    """Record the step just done (if any) and enter the next one, in one transaction."""
    with transaction.atomic():
        job = _own(job_id, owner)
        now = job.db_now
        if done is not None:
            JobStep.objects.filter(pk=done.step_id).update(
                status=JobStatus.SUCCESS,
                detail=done.detail,
                state=done.state,
                finished_at=now,
                active_tick=None,
            )
            events.step_ended(job.type, done.step, now)
            logger.info("job %s: step %s done: %s", job_id, done.name, done.detail)
        step = (
            JobStep.objects.select_for_update()
            .filter(job=job, status__in=ACTIVE_STATUSES)
            .order_by("step_order")
            .first()
        )
        if step is None:
            job.status = JobStatus.SUCCESS
            job.finished_at = now
            job.next_run_at = None
            _release(job)
            job.save(update_fields=_END_FIELDS)
            events.job_ended(job)
            logger.info("job %s: success", job_id)
            return f"{job_id}: success"
        if job.cancel_requested:
            _fail_locked(job, step, now, "cancelled before this step finished", cancelled=True)
            return f"{job_id}: cancelled"
        if step.active_tick is not None and step.active_tick != owner:
            # The previous tick in this step never left it: its worker died or lost the lease.
            step.interruptions += 1
        if step.interruptions > cfg.max_interruptions:
            _fail_locked(
                job,
                step,
                now,
                f"crash loop: interrupted {step.interruptions} times without finishing "
                f"(worker killed or lease lost); last state: {step.detail or 'none'}",
                code="crash_loop",
            )
            return f"{job_id}: crash loop"
        if step.status == JobStatus.PENDING:
            step.status = JobStatus.RUNNING
            step.started_at = now
            step.deadline_at = now + timedelta(seconds=cfg.wait_timeout)
        step.attempts += 1
        step.active_tick = owner
        step.save(
            update_fields=[
                "status",
                "started_at",
                "deadline_at",
                "attempts",
                "interruptions",
                "active_tick",
            ]
        )
        return _Entered(job=job, step=step, at=now, at_monotonic=time.monotonic())


def _run_step(
    ctx: TickContext, entered: _Entered, cfg: JobSettings, started: float
) -> _StepDone | str:
    """Run one step until it is done (returned, to be recorded with the next entry), or has
    failed or been handed on (returns the tick's outcome)."""
    step = entered.step
    while True:
        try:
            # Looked up here so that a job type or step this code no longer knows fails the
            # job with that reason (instead of crashing every tick until the crash-loop limit).
            run = get_job_type(entered.job.type).step(step.name, entered.job.params).run
            result = run(ctx)
        except LeaseLost:
            raise
        except JobCancelled:
            _fail(ctx, step, "cancelled before this step finished", cancelled=True)
            return f"{ctx.job_id}: cancelled"
        except ActorNotAllowed as exc:
            _fail(
                ctx,
                step,
                f"stopped before acting: {exc}; retry the job with a usable key",
                code="actor_not_allowed",
            )
            return f"{ctx.job_id}: actor no longer allowed"
        except Exception as exc:
            # Process boundary: whatever went wrong is recorded on the job, visibly. A refusal
            # the step raised on purpose (a guard) is expected: no traceback for it.
            if getattr(exc, "status_code", 500) >= 500:
                logger.exception("job %s: step %s raised", ctx.job_id, step.name)
            _fail(ctx, step, describe_error(exc), code=error_code(exc))
            return f"{ctx.job_id}: failed in {step.name}"
        if isinstance(result, Done):
            return _StepDone(step=step, state=ctx.state, detail=result.detail)
        if not isinstance(result, Wait):
            raise TypeError(f"step {step.name} returned {result!r}, not Done or Wait")
        if entered.db_time() >= step.deadline_at:
            timeout = round((step.deadline_at - step.started_at).total_seconds())
            _fail(ctx, step, f"timed out after {timeout} s: {result.detail}", code="timeout")
            return f"{ctx.job_id}: timed out in {step.name}"
        if time.monotonic() - started + cfg.poll_interval > cfg.tick_budget:
            _hand_on(ctx, entered, result.detail, cfg)
            return f"{ctx.job_id}: waiting in {step.name}"
        time.sleep(cfg.poll_interval)
        ctx.heartbeat()


def describe_error(exc: BaseException) -> str:
    """A one-line account of an exception for people reading the job."""
    detail = " ".join(str(getattr(exc, "detail", None) or exc).split())
    default = getattr(exc, "default_detail", None)
    if default is not None:  # one of our API errors: say what kind of failure, then the cause
        kind = str(default).rstrip(".")
        return f"{kind}: {detail}" if detail and detail != str(default) else kind
    return f"internal error: {type(exc).__name__}: {detail}" if detail else type(exc).__name__


def error_code(exc: BaseException) -> str:
    """The machine-readable code of a step's failure (an API error's own code)."""
    get_codes = getattr(exc, "get_codes", None)
    codes = get_codes() if callable(get_codes) else None
    if isinstance(codes, str):
        return codes
    return getattr(exc, "default_code", None) or "internal_error"


def _fail(ctx: TickContext, step: JobStep, detail: str, **how: Any) -> None:
    """End the job in ``step`` as :func:`_fail_locked` does (``how``: its ``code`` or
    ``cancelled``), taking the row locks first."""
    with transaction.atomic():
        job = _own(ctx.job_id, ctx.owner)
        locked = JobStep.objects.select_for_update().get(pk=step.pk)
        locked.state = ctx.state
        _fail_locked(job, locked, job.db_now, detail, **how)


_END_FIELDS = ["status", "finished_at", "next_run_at", "lease_owner", "lease_expires_at", "error"]


def _fail_locked(
    job: Job,
    step: JobStep,
    now: datetime,
    detail: str,
    *,
    code: str | None = None,
    cancelled: bool = False,
) -> None:
    """End the step and the job, failed (``error`` = {code, detail}) or cancelled (no error);
    later steps stay pending. Caller holds the row locks.

    Once that is committed, the job type may add what the job leaves behind to the detail
    (:func:`note_aftermath`): the failure itself never waits on, or fails with, that read.
    """
    status = JobStatus.CANCELLED if cancelled else JobStatus.FAILED
    if not (cancelled and step.status == JobStatus.PENDING):  # a step not run stays pending
        step.status = status
        step.detail = detail
        step.finished_at = now
        step.active_tick = None
        step.save()
        events.step_ended(job.type, step, now)
    job.status = status
    job.finished_at = now
    job.next_run_at = None
    job.error = None if cancelled else {"code": code or "failed", "detail": detail}
    _release(job)
    job.save(update_fields=_END_FIELDS)
    events.job_ended(job)
    logger.warning("job %s: step %s %s: %s", job.job_id, step.name, status, detail)
    job_id = job.job_id
    transaction.on_commit(lambda: note_aftermath(job_id), robust=True)


def note_aftermath(job_id: str) -> str | None:
    """Add to a failed job's failed step what the job leaves behind (its type's
    ``aftermath``), e.g. a StatefulSet still at 0 replicas; returns the note.

    Best effort, after the failure is committed: a note that cannot be made (the cluster
    unreachable, a type without one) leaves the detail as it was.
    """
    job = Job.objects.filter(job_id=job_id, status__in=STOPPED_STATUSES).first()
    if job is None:
        return None
    try:
        aftermath = get_job_type(job.type).aftermath
        note = aftermath(job) if aftermath else None
    except Exception:
        # Process boundary of a courtesy read: log it, keep the failure as recorded.
        logger.exception("job %s: could not tell what the failed job left behind", job_id)
        return None
    if not note:
        return None
    with transaction.atomic():
        step = (
            JobStep.objects.select_for_update(of=("self",))
            .filter(job_id=job_id, status__in=STOPPED_STATUSES, job__status__in=STOPPED_STATUSES)
            .first()
        )
        if step is None:  # retried meanwhile: the note would describe another run
            return None
        step.detail = f"{step.detail}; {note}" if step.detail else note
        step.save(update_fields=["detail"])
        if job.error:  # the machine-readable error says it too
            Job.objects.filter(job_id=job_id, status=JobStatus.FAILED).update(
                error={**job.error, "detail": step.detail}
            )
    return note


def cancel_if_unclaimed(job: Job) -> bool:
    """Finish a job nobody holds as cancelled, now; False if a live tick holds it.

    The caller holds the job's row lock (``SELECT ... FOR UPDATE``), so no tick can claim it
    meanwhile; a tick whose lease has lapsed is treated as the claim does — as gone (should
    it still be running, its next ownership check finds the job ended and it stops). A job
    with no worker at all therefore stops at once and frees its target, instead of waiting
    for a tick that may never come; a live tick honours the request at its next checkpoint.
    """
    now = db_now()
    if job.lease_owner is not None and job.lease_expires_at and job.lease_expires_at >= now:
        return False
    step = (
        JobStep.objects.select_for_update()
        .filter(job=job, status__in=ACTIVE_STATUSES)
        .order_by("step_order")
        .first()
    )
    if step is None:  # every step done, the job not yet marked: still, nothing more will run
        job.status = JobStatus.CANCELLED
        job.finished_at = now
        job.next_run_at = None
        _release(job)
        job.save(update_fields=_END_FIELDS)
        events.job_ended(job)
        return True
    started = step.status != JobStatus.PENDING
    _fail_locked(
        job,
        step,
        now,
        f"cancelled before this step {'finished' if started else 'started'}",
        cancelled=True,
    )
    return True


def _hand_on(ctx: TickContext, entered: _Entered, detail: str, cfg: JobSettings) -> None:
    """Release the lease, note what we wait for, and wake the job again after a pause."""
    from jobs.dispatch import enqueue_tick_on_commit

    next_seq = entered.job.tick_seq + 1  # only the lease holder moves it: it is still ours
    with transaction.atomic():
        released = Job.objects.filter(
            job_id=ctx.job_id, lease_owner=ctx.owner, status__in=ACTIVE_STATUSES
        ).update(
            tick_seq=next_seq,
            next_run_at=Now() + timedelta(seconds=cfg.poll_interval),
            lease_owner=None,
            lease_expires_at=None,
        )
        if released != 1:
            raise LeaseLost(ctx.job_id)
        JobStep.objects.filter(pk=entered.step.pk).update(
            state=ctx.state, detail=f"waiting: {detail}", active_tick=None
        )
        enqueue_tick_on_commit(ctx.job_id, next_seq, delay=cfg.poll_interval)
