"""Writes on jobs: starting one, cancelling one, retrying a failed one. Views and commands
call these.

Each is an attempted operation like a scale: it writes exactly one ``ops_log`` row (``denied``
/ ``error`` when refused, ``success`` with the ``job_id``), and the rows of the steps'
mutations follow, linked by the same ``job_id``.
"""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from jobs.dispatch import enqueue_tick_on_commit
from jobs.errors import (
    JobNotActive,
    JobNotFailed,
    JobNotFound,
    JobRefused,
    JobTargetBusy,
    JobTypeNotFound,
)
from jobs.models import ACTIVE_STATUSES, STOPPED_STATUSES, Job, JobStatus, JobStep, make_job_id
from jobs.plans import job_plan
from jobs.registry import JobType, UnknownJobType, get_job_type, job_type_names
from jobs.runner import cancel_if_unclaimed
from jobs.selectors import jobs_visible_to
from ops import approvals, policy
from ops.actors import Actor
from ops.audit import Target, attempt, record, record_error
from ops.errors import InvalidInput, NamespaceDenied, OperationNotAllowed, OpsError
from ops.models import Approval, OpsLogStatus
from ops.plans import Plan, PlanObject, PlanStep, bound_objects
from ops.services import Held, Planned

ONE_ACTIVE_PER_TARGET = "ops_job_one_active_per_target"
KIND_JOB = "job"
ACTION_CANCEL = "cancel"
ACTION_RETRY = "retry"


def job_start(
    *,
    actor: Actor,
    job_type: str,
    params: dict,
    target_namespace: str,
    target_name: str,
    target_kind: str | None = None,
    job_id: str | None = None,
    created_at: datetime | None = None,
    result: dict | None = None,
) -> Job:
    """Record a job with all its steps pending and wake a worker once it is committed.

    The job, its steps and its first tick are one transaction: the tick is queued on commit
    of the outermost transaction, so a caller that rolls back (e.g. because the audit log
    failed) leaves neither a job nor a tick behind. The one-active-job-per-target rule is the
    partial unique index's, not a prior SELECT: two concurrent requests cannot both pass it.
    """
    kind = get_job_type(job_type)
    target_kind = target_kind or kind.target_kind
    created_at = created_at or timezone.now()
    try:
        with transaction.atomic():
            job = Job.objects.create(
                job_id=job_id or make_job_id(created_at, job_type),
                type=job_type,
                status=JobStatus.PENDING,
                created_at=created_at,
                params=params,
                actor=actor.name,
                source_ip=actor.source_ip,
                actor_namespaces=list(actor.namespaces) if actor.namespaces else None,
                **_acting_fields(actor),
                target_kind=target_kind,
                target_namespace=target_namespace,
                target_name=target_name,
                next_run_at=created_at,
                result=result or {},
            )
            JobStep.objects.bulk_create(
                JobStep(job=job, name=step.name, step_order=order)
                for order, step in enumerate(kind.steps_for(params), start=1)
            )
            enqueue_tick_on_commit(job.job_id, job.tick_seq)
    except IntegrityError as exc:
        constraint = getattr(getattr(exc.__cause__, "diag", None), "constraint_name", None)
        if constraint != ONE_ACTIVE_PER_TARGET:
            raise
        holder = (
            Job.objects.filter(
                target_kind=target_kind,
                target_namespace=target_namespace,
                target_name=target_name,
                status__in=ACTIVE_STATUSES,
            )
            .values_list("job_id", flat=True)
            .first()
        )
        raise JobTargetBusy(
            f"{target_kind} {target_namespace}/{target_name} is already being worked on "
            f"by active job {holder or '(which has just finished: try again)'}."
        ) from exc
    return job


def job_request(
    *,
    actor: Actor,
    job_type: str,
    data: object,
    dry_run: bool = False,
    gated: bool = False,
    approval: Approval | None = None,
) -> Job | Planned | Held:
    """Start a job of any type, as ``POST /ops/jobs/{type}`` asks (202 on success).

    Everything that can be refused is checked before the job exists, each refusal audited:
    the type exists (404), its input (400, field errors from the type's serializer), the
    namespace policy and the key's operations (403), the type's checks against the live
    cluster (its ``preflight``: 404 no such object, 409 a guard...), no other active job on
    the target (409, from the database). Then, audit first: the pending row (naming the job
    id) is written before the job exists, so no audit means no job and no tick, with or
    without a surrounding request transaction; the row then gets the outcome.

    After the same checks, a ``dry_run`` answers the plan of every step (:class:`Planned`,
    nothing written but its row) and a ``gated`` request that ``OPS_APPROVAL_REQUIRED`` names
    is held for approval (:class:`Held`): a guard that refuses it now does not stop it
    (the guards decide when it is approved, on the cluster as it is then) but is shown to
    the approver as a warning. A job started by an ``approval`` records its id and
    the uids of its plan: its steps refuse any other object.
    """
    try:
        kind = get_job_type(job_type)
    except UnknownJobType:
        error = JobTypeNotFound(
            f"No job type {str(job_type)[:100]!r}; the types are: {', '.join(job_type_names())}."
        )
        target = Target(
            str(job_type)[:100], KIND_JOB, _field(data, "namespace"), "", data, dry_run=dry_run
        )
        record_error(actor=actor, target=target, error=error, status=OpsLogStatus.ERROR)
        raise error from None
    body = kind.input(data=data)
    if not body.is_valid():
        error = InvalidInput(body.error_lists())
        target = request_target(kind, data, dry_run=dry_run)
        record_error(actor=actor, target=target, error=error, status=OpsLogStatus.ERROR)
        raise error
    params = dict(body.validated_data)
    on = kind.target(params)
    audited = {**params, "approval_id": approval.approval_id} if approval else params
    target = Target(kind.name, on.audit_kind, on.namespace, on.name, audited, dry_run=dry_run)
    reason = policy.namespace_refusal(actor, on.namespace)
    error = NamespaceDenied(reason) if reason else None
    if error is None and approval is None:
        reason = policy.operation_refusal(actor, kind.name)
        error = OperationNotAllowed(reason) if reason else None
    if error is not None:
        record_error(actor=actor, target=target, error=error, status=OpsLogStatus.DENIED)
        raise error
    held = (
        gated
        and not dry_run
        and approval is None
        and policy.approval_required(on.namespace, kind.name)
    )
    warnings: list[dict] = []
    try:
        try:
            result = kind.preflight(params) if kind.preflight else {}
        except JobRefused as refusal:
            if not held:
                raise
            # Held: the guards are checked when it is approved, against the cluster as it is
            # then; the approver sees what they say now.
            result = {}
            warnings.append({"code": refusal.get_codes(), "detail": str(refusal.detail)})
        planned = job_plan(kind, params, result) if dry_run or held else None
    except OpsError as error:
        record_error(actor=actor, target=target, error=error, status=OpsLogStatus.ERROR)
        raise
    if planned is not None:
        if dry_run:
            _record_planned(actor, target)
            return Planned(planned)
        return Held(
            approvals.hold(
                actor=actor,
                operation=kind.name,
                target=target,
                params=params,
                plan=planned,
                warnings=warnings,
            )
        )
    if approval is not None:
        result = {
            **result,
            "approval_id": approval.approval_id,
            "approved_uids": {
                f"{o['kind']}/{o['name']}": o["uid"] for o in bound_objects(approval.plan)
            },
        }
    created_at = timezone.now()
    job_id = make_job_id(created_at, kind.name)
    # If only the last write of the row fails, the job stands and its row stays "pending".
    with attempt(actor=actor, target=target, job_id=job_id, success_http_status=202):
        job = job_start(
            actor=actor,
            job_type=kind.name,
            params=params,
            target_namespace=on.namespace,
            target_name=on.name,
            target_kind=on.kind,
            job_id=job_id,
            created_at=created_at,
            result=result,
        )
    return job


def _field(data: object, name: str, limit: int = 63) -> str:
    value = data.get(name, "") if isinstance(data, dict) else ""
    return str(value)[:limit]


def request_target(kind: JobType, data: object, *, dry_run: bool = False) -> Target:
    """The audit target of a request whose input was refused: what it names, as sent."""
    try:
        on = kind.target(data if isinstance(data, dict) else {})
        namespace, name, audit_kind = str(on.namespace)[:63], str(on.name)[:253], on.audit_kind
    except (KeyError, TypeError, ValueError, AttributeError):
        namespace, name, audit_kind = _field(data, "namespace"), "", kind.target_kind.lower()
    return Target(kind.name, audit_kind, namespace, name, data, dry_run=dry_run)


def _record_planned(actor: Actor, target: Target) -> None:
    """The row of a dry run that passed every check: ``success``, ``dry_run``."""
    record(
        actor_name=actor.name,
        source_ip=actor.source_ip,
        origin=actor.origin,
        target=target,
        status=OpsLogStatus.SUCCESS,
        http_status=200,
        key_prefix=actor.key_prefix,
    )


def _approved_job(
    approval: Approval, actor: Actor, now: dict[tuple[str, str, str], PlanObject]
) -> approvals.Outcome:
    """Run an approved job request: the job starts, for the requester (202 ``{"job_id"}``)."""
    job = job_request(
        actor=actor, job_type=approval.operation, data=approval.params, approval=approval
    )
    return approvals.Outcome(status=202, body={"job_id": job.job_id}, job_id=job.job_id)


def register_approvable_job_types() -> None:
    """Every registered job type can be held for approval and run once approved."""
    for name in job_type_names():
        approvals.register(name, _approved_job)


def _job_for_action(
    *, actor: Actor, job_id: str, action: str, dry_run: bool = False
) -> tuple[Job, Target]:
    """The job ``actor`` may act on (404 when unknown or outside the key's scope, 403 when its
    namespace is no longer allowed), locked for this transaction, and the audit target."""
    job = jobs_visible_to(actor).select_for_update(of=("self",)).filter(job_id=job_id).first()
    if job is None:
        error = JobNotFound(f"No job {job_id}.")
        record_error(
            actor=actor,
            target=Target(action, KIND_JOB, "", job_id[:253], dry_run=dry_run),
            error=error,
            status=OpsLogStatus.ERROR,
        )
        raise error
    target = Target(action, KIND_JOB, job.target_namespace, job.job_id, dry_run=dry_run)
    reason = policy.namespace_refusal(actor, job.target_namespace)
    if reason:
        error = NamespaceDenied(reason)
        record_error(actor=actor, target=target, error=error, status=OpsLogStatus.DENIED)
        raise error
    return job, target


def _job_plan_of(job: Job, action: str, change: dict) -> Planned:
    """The plan of a cancel or a retry: what happens to the job (nothing in the cluster yet)."""
    obj = PlanObject(kind="Job", namespace=job.target_namespace, name=job.job_id, uid=None)
    return Planned(Plan((PlanStep(action, obj, change),)))


def job_cancel(*, actor: Actor, job_id: str, dry_run: bool = False) -> Job | Planned:
    """Stop an active job. A job no live tick holds (never claimed, between two ticks, or its
    worker dead) is failed as cancelled at once, freeing its target; a job a tick is working
    on is failed by that tick at the next point where it may (before the step's next
    mutation, or before the next step), never mid-call."""
    with transaction.atomic():
        job, target = _job_for_action(
            actor=actor, job_id=job_id, action=ACTION_CANCEL, dry_run=dry_run
        )
        if not job.is_active:
            error = JobNotActive(f"Job {job_id} has already ended ({job.status}).")
            record_error(actor=actor, target=target, error=error, status=OpsLogStatus.ERROR)
            raise error
        if dry_run:
            _record_planned(actor, target)
            return _job_plan_of(
                job, ACTION_CANCEL, {"status": {"from": job.status, "to": JobStatus.CANCELLED}}
            )
        job.cancel_requested = True
        job.save(update_fields=["cancel_requested"])
        cancel_if_unclaimed(job)  # under the row lock taken above
        _record_success(actor, target, job.job_id)
    return job


def job_retry(*, actor: Actor, job_id: str, dry_run: bool = False) -> Job | Planned:
    """Run a failed or cancelled job again from the step where it stopped; the steps that
    succeeded are kept.

    First the job type's guards for that step are checked against the live cluster (e.g. a
    rebuild about to delete a claim while the set's pods are back): a failing one refuses the
    retry with its code (409), and nothing changes. The step checks them again before it acts.
    The failed step and every later one go back to ``pending`` (their state cleared: steps
    look before they act, so nothing already done is done twice). The job becomes active
    again, so the one-active-job-per-target index still guards its target (409). From then on
    the job acts for ``actor``: the steps' audit rows name them (not the original requester),
    and the job stops if their key is revoked or expires.
    """
    try:
        with transaction.atomic():
            job, target = _job_for_action(
                actor=actor, job_id=job_id, action=ACTION_RETRY, dry_run=dry_run
            )
            if job.status not in STOPPED_STATUSES:
                error = JobNotFailed(f"Job {job_id} is {job.status}, not failed or cancelled.")
                record_error(actor=actor, target=target, error=error, status=OpsLogStatus.ERROR)
                raise error
            resume = (
                job.steps.exclude(status=JobStatus.SUCCESS)
                .order_by("step_order")
                .values_list("step_order", "name")
                .first()
            )
            failed_at = resume[0] if resume else None
            _check_resume(actor, target, job, resume[1] if resume else None)
            if dry_run:
                _record_planned(actor, target)
                change = {
                    "status": {"from": job.status, "to": JobStatus.PENDING},
                    "resume_at": resume[1] if resume else None,
                }
                return _job_plan_of(job, ACTION_RETRY, change)
            job.steps.filter(step_order__gte=failed_at or 0).update(
                status=JobStatus.PENDING,
                detail=None,
                started_at=None,
                finished_at=None,
                state={},
                attempts=0,
                interruptions=0,
                deadline_at=None,
                active_tick=None,
            )
            job.status = JobStatus.PENDING
            job.finished_at = None
            job.error = None
            job.cancel_requested = False
            # From now on the steps act for (and their audit rows name) whoever retried it.
            for field, value in _acting_fields(actor).items():
                setattr(job, field, value)
            job.tick_seq += 1
            job.next_run_at = timezone.now()
            job.lease_owner = None
            job.lease_expires_at = None
            job.save()  # a second active job on the target: IntegrityError, all rolled back
            _record_success(actor, target, job.job_id)
            enqueue_tick_on_commit(job.job_id, job.tick_seq)
    except IntegrityError as exc:
        constraint = getattr(getattr(exc.__cause__, "diag", None), "constraint_name", None)
        if constraint != ONE_ACTIVE_PER_TARGET:
            raise
        error = JobTargetBusy(
            f"Another active job holds {job.target_kind} {job.target_namespace}/"
            f"{job.target_name}; retry {job_id} once it has ended."
        )
        record_error(actor=actor, target=target, error=error, status=OpsLogStatus.ERROR)
        raise error from exc
    return job


def _check_resume(actor: Actor, target: Target, job: Job, step_name: str | None) -> None:
    """Run the job type's guards for resuming at ``step_name``; a refusal is audited, raised."""
    try:
        kind = get_job_type(job.type)
    except UnknownJobType:
        return  # the runner fails such a job with that reason
    if step_name is None or kind.resume_check is None:
        return
    try:
        kind.resume_check(job, step_name)
    except OpsError as error:
        record_error(actor=actor, target=target, error=error, status=OpsLogStatus.ERROR)
        raise


def _acting_fields(actor: Actor) -> dict[str, object]:
    """The ``acting_*`` columns for a job that acts for ``actor`` from now on."""
    return {
        "acting_actor": actor.name,
        "acting_source_ip": actor.source_ip,
        "acting_namespaces": list(actor.namespaces) if actor.namespaces else None,
        "acting_origin": actor.origin,
    }


def _record_success(actor: Actor, target: Target, job_id: str) -> None:
    record(
        actor_name=actor.name,
        source_ip=actor.source_ip,
        origin=actor.origin,
        target=target,
        status=OpsLogStatus.SUCCESS,
        http_status=202,
        job_id=job_id,
        key_prefix=actor.key_prefix,
    )
