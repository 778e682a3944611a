"""Approvals: requests held until a second person approves them (SPEC "Change control").

A request that ``OPS_APPROVAL_REQUIRED`` names passes every check of the real request, then
is held: an :class:`~ops.models.Approval` keeps the operation, its validated input and its
plan — every object it will change, by uid, at the generation (workloads) or resourceVersion
(pods, claims) it was read at — and nothing is changed. Approving it:

1. refuses the requester (``self_approval``), a key without ``approve`` or the namespace
   (``approve_not_allowed``), a decided approval (``approval_closed``) and one past its
   ``expires_at`` (``approval_expired``), each audited;
2. re-reads every object of the plan: one replaced or changed since makes the approval
   ``stale`` (409 ``stale_approval``) and nothing is sent;
3. runs the operation for the requester through the same service as any request, carrying
   Kubernetes preconditions (the plan's uid on a delete, the resourceVersion read in step 2
   on a scale), so a change in the last millisecond is refused by the API server itself
   (409, recorded, the approval then ``stale`` too); the answer is the operation's.

The approval row is locked for the whole decision, so two concurrent approvals run the
operation once: the second finds it decided. Expired approvals are marked by the workers
(:func:`expire_due`, from the jobs pump), though a request past its ``expires_at`` is refused
whether or not they have run yet.

The operations themselves are registered by the code that owns them (:func:`register`): the
primitives by :mod:`ops.services`, the job types by the jobs app — this module imports
neither.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone

from ops import policy
from ops.actors import Actor
from ops.audit import Target, attempt, record, record_error, record_success
from ops.errors import (
    ApprovalClosed,
    ApprovalExpired,
    ApprovalNotFound,
    ApproveNotAllowed,
    InvalidInput,
    ObjectConflict,
    OpsError,
    SelfApproval,
    StaleApproval,
)
from ops.models import Approval, ApprovalStatus, OpsLogOrigin, OpsLogStatus
from ops.notifications import notify
from ops.plans import Plan, PlanObject, stale

logger = logging.getLogger(__name__)

KIND_APPROVAL = "approval"
ACTION_REQUEST = "request-approval"
ACTION_APPROVE = "approve"
ACTION_REJECT = "reject"
ACTION_EXPIRE = "expire"
#: The actor of the rows the workers write when they mark approvals expired.
EXPIRY_ACTOR = Actor(name="system:approval-expiry", source_ip="local", origin=OpsLogOrigin.SYSTEM)
_MAX_REASON = 2000


@dataclass(frozen=True)
class Outcome:
    """What running an approved operation answered: the HTTP status and body it would have
    answered itself (200 and the result, or 202 and ``{"job_id"}``)."""

    status: int
    body: dict[str, Any]
    job_id: str | None = None


#: Runs an approved operation for the requester: ``(approval, requester, objects now)`` —
#: the objects of the plan as just read, by (kind, namespace, name) — to its :class:`Outcome`;
#: raises the operation's API error.
Executor = Callable[[Approval, Actor, dict[tuple[str, str, str], PlanObject]], Outcome]
#: Reads an object of a plan now, None when it is gone (see :func:`ops.plans.stale`).
Reader = Callable[[str, str, str], PlanObject | None]

_executors: dict[str, Executor] = {}
_reader: list[Reader] = []


def register(operation: str, execute: Executor) -> None:
    """Make ``operation`` approvable: ``execute`` runs it once approved."""
    _executors[operation] = execute


def register_reader(read: Reader) -> None:
    """How objects of a plan are read now (the services' gateway read)."""
    _reader[:] = [read]


def new_approval_id() -> str:
    """``apr_`` and 16 lowercase hex digits."""
    return f"apr_{secrets.token_hex(8)}"


def _object_text(target: Target) -> str:
    return f"{target.resource_kind} {target.namespace}/{target.resource_name}"


def hold(
    *,
    actor: Actor,
    operation: str,
    target: Target,
    params: dict,
    plan: Plan,
    warnings: list[dict] | None = None,
) -> Approval:
    """Hold a checked request for approval: the approval row, audited first (``202``).
    ``warnings``: what the checks that run again at approval time say now."""
    entries = plan.entries()
    approval_id = new_approval_id()
    body = {
        "operation": operation,
        "object": _object_text(target),
        "plan_digest": plan.digest,
        "request": target.request_body,
    }
    audit_target = Target(ACTION_REQUEST, KIND_APPROVAL, target.namespace, approval_id, body)
    now = timezone.now()
    with attempt(actor=actor, target=audit_target, success_http_status=202), transaction.atomic():
        approval = Approval.objects.create(
            approval_id=approval_id,
            operation=operation,
            namespace=target.namespace,
            resource_kind=target.resource_kind,
            resource_name=target.resource_name,
            params=params,
            plan=entries,
            plan_digest=plan.digest,
            status=ApprovalStatus.PENDING,
            requested_by=actor.name,
            requested_from=actor.source_ip,
            requester_namespaces=list(actor.namespaces) if actor.namespaces else None,
            requester_origin=actor.origin,
            created_at=now,
            expires_at=now + timedelta(seconds=settings.APIOPS["APPROVAL_TTL"]),
            warnings=list(warnings or []),
        )
        _notify("approval.requested", approval)
        return approval


def _notify(event: str, approval: Approval) -> None:
    """The notification of an approval's change, in the transaction that makes it."""
    notify(
        event,
        approval.namespace,
        {
            "approval_id": approval.approval_id,
            "operation": approval.operation,
            "object": f"{approval.resource_kind} {approval.namespace}/{approval.resource_name}",
            "requested_by": approval.requested_by,
            "decided_by": approval.decided_by,
            "reason": approval.reason,
            "status": approval.status,
            "plan_digest": approval.plan_digest,
            "expires_at": approval.expires_at.isoformat(),
            "job_id": approval.job_id,
        },
    )


def visible_to(actor: Actor):
    """The approvals ``actor`` may see: those in namespaces its key may touch."""
    return Approval.objects.filter(namespace__in=sorted(policy.allowed_namespaces(actor)))


def effective_status(approval: Approval) -> str:
    """The status as it stands now: a pending approval past its ``expires_at`` is expired,
    whether or not the workers have marked it yet."""
    if approval.status == ApprovalStatus.PENDING and approval.expires_at <= timezone.now():
        return ApprovalStatus.EXPIRED
    return approval.status


def requester(approval: Approval) -> Actor:
    """The actor an approved operation runs for: the requester, with their scope."""
    return Actor(
        name=approval.requested_by,
        source_ip=approval.requested_from,
        namespaces=tuple(approval.requester_namespaces or ()) or None,
        origin=approval.requester_origin,
    )


def _refuse(actor: Actor, target: Target, error: OpsError, status: str) -> OpsError:
    record_error(actor=actor, target=target, error=error, status=status)
    return error


def decide(
    *, actor: Actor, approval_id: str, reason: str, approve: bool, dry_run: bool = False
) -> tuple[Approval, Outcome | None]:
    """Approve (run the operation) or reject a pending approval, as SPEC says; every
    refusal audited and raised. Returns the approval as decided and, for an approval, what
    the operation answered. ``dry_run``: every check (for an approval, the plan's objects
    against the cluster too), then the plan as the answer; nothing is decided or run."""
    action = ACTION_APPROVE if approve else ACTION_REJECT
    reason = (reason or "").strip()
    approval_id = str(approval_id)[:64]
    target = Target(
        action, KIND_APPROVAL, "", approval_id, {"reason": reason[:_MAX_REASON]}, dry_run=dry_run
    )
    if not reason:
        raise _refuse(
            actor,
            target,
            InvalidInput({"reason": ["A reason is required."]}),
            OpsLogStatus.ERROR,
        )
    error: OpsError | None = None
    outcome: Outcome | None = None
    with transaction.atomic():
        approval = visible_to(actor).select_for_update().filter(approval_id=approval_id).first()
        if approval is None:
            raise _refuse(
                actor, target, ApprovalNotFound(f"No approval {approval_id}."), OpsLogStatus.ERROR
            )
        target = Target(
            action,
            KIND_APPROVAL,
            approval.namespace,
            approval.approval_id,
            {"reason": reason[:_MAX_REASON], "operation": approval.operation},
            dry_run=dry_run,
        )
        why_not = policy.namespace_refusal(actor, approval.namespace) or policy.operation_refusal(
            actor, policy.APPROVE
        )
        if why_not:
            raise _refuse(actor, target, ApproveNotAllowed(why_not), OpsLogStatus.DENIED)
        if actor.name == approval.requested_by:
            raise _refuse(
                actor,
                target,
                SelfApproval(
                    f"{approval.approval_id} was requested by {actor.name!r}: another key "
                    "name must approve or reject it."
                ),
                OpsLogStatus.DENIED,
            )
        status = effective_status(approval)
        if status == ApprovalStatus.EXPIRED:
            raise _refuse(
                actor,
                target,
                ApprovalExpired(
                    f"{approval.approval_id} expired at {approval.expires_at.isoformat()}; "
                    "request the operation again."
                ),
                OpsLogStatus.ERROR,
            )
        if status != ApprovalStatus.PENDING:
            raise _refuse(
                actor,
                target,
                ApprovalClosed(f"{approval.approval_id} is already {status}."),
                OpsLogStatus.ERROR,
            )
        if dry_run:
            if approve and _reader:
                why = stale(approval.plan, _reader[0])
                if why:
                    raise _refuse(
                        actor,
                        target,
                        StaleApproval(f"{approval.approval_id}: {why}; nothing would be sent."),
                        OpsLogStatus.ERROR,
                    )
            record_success(actor=actor, target=target)
            body = {"dry_run": True, "plan": approval.plan, "plan_digest": approval.plan_digest}
            return approval, Outcome(status=200, body=body)
        if not approve:
            _close(approval, ApprovalStatus.REJECTED, actor, reason)
            record_success(actor=actor, target=target)
            return approval, None
        error, outcome = _approve(approval, actor, target, reason)
    if error is not None:
        raise error
    return approval, outcome


def _approve(
    approval: Approval, actor: Actor, target: Target, reason: str
) -> tuple[OpsError | None, Outcome | None]:
    """Check the plan against the cluster now and run the operation (under the row lock);
    the approval's new state is saved whatever happens, the error returned to raise after
    the commit."""
    execute = _executors.get(approval.operation)
    try:
        with attempt(actor=actor, target=target):
            if execute is None or not _reader:
                raise OpsError(f"Operation {approval.operation!r} cannot be run here.")
            now: dict[tuple[str, str, str], PlanObject] = {}

            def read(kind: str, namespace: str, name: str) -> PlanObject | None:
                obj = _reader[0](kind, namespace, name)
                if obj is not None:
                    now[(kind, namespace, name)] = obj
                return obj

            why = stale(approval.plan, read)
            if why:
                raise StaleApproval(f"{approval.approval_id}: {why}; nothing was sent.")
            try:
                outcome = execute(approval, requester(approval), now)
            except ObjectConflict as e:
                if type(e) is not ObjectConflict:  # a busy target, a guard: not staleness
                    raise
                # The API server refused a precondition: the object changed between our
                # check and the mutation.
                raise StaleApproval(
                    f"{approval.approval_id}: the cluster refused the change, the object "
                    f"changed since the check: {e.detail}"
                ) from e
    except StaleApproval as e:
        _close(approval, ApprovalStatus.STALE, actor, reason, outcome={"error": str(e.detail)})
        return e, None
    except OpsError as e:
        # The operation itself failed (refused, the cluster failed): decided all the same,
        # with what it answered; the operation's own row says the rest.
        _close(
            approval,
            ApprovalStatus.APPROVED,
            actor,
            reason,
            outcome={"status": e.status_code, "body": {"detail": str(e.detail), "code": _code(e)}},
        )
        return e, None
    _close(
        approval,
        ApprovalStatus.APPROVED,
        actor,
        reason,
        outcome={"status": outcome.status, "body": outcome.body},
        job_id=outcome.job_id,
    )
    return None, outcome


def _code(error: OpsError) -> str:
    codes = error.get_codes()
    return codes if isinstance(codes, str) else error.default_code


def _close(
    approval: Approval,
    status: str,
    actor: Actor,
    reason: str,
    *,
    outcome: dict | None = None,
    job_id: str | None = None,
) -> None:
    approval.status = status
    approval.decided_by = actor.name
    approval.decided_at = timezone.now()
    approval.reason = reason[:_MAX_REASON]
    approval.outcome = outcome
    approval.job_id = job_id
    approval.save(
        update_fields=["status", "decided_by", "decided_at", "reason", "outcome", "job_id"]
    )
    if status in (ApprovalStatus.APPROVED, ApprovalStatus.REJECTED):
        _notify(f"approval.{status}", approval)


def expire_due(limit: int = 500) -> int:
    """Mark pending approvals past their ``expires_at`` expired, each with its audit row
    (the workers call this); returns how many."""
    done = 0
    with transaction.atomic():
        due = list(
            Approval.objects.select_for_update(skip_locked=True)
            .filter(Q(status=ApprovalStatus.PENDING) & Q(expires_at__lte=Now()))
            .order_by("expires_at")[:limit]
        )
        for approval in due:
            record(
                actor_name=EXPIRY_ACTOR.name,
                source_ip=EXPIRY_ACTOR.source_ip,
                origin=EXPIRY_ACTOR.origin,
                target=Target(
                    ACTION_EXPIRE,
                    KIND_APPROVAL,
                    approval.namespace,
                    approval.approval_id,
                    {
                        "operation": approval.operation,
                        "expires_at": approval.expires_at.isoformat(),
                    },
                ),
                status=OpsLogStatus.SUCCESS,
            )
            approval.status = ApprovalStatus.EXPIRED
            approval.decided_at = timezone.now()
            approval.save(update_fields=["status", "decided_at"])
            _notify("approval.expired", approval)
            done += 1
    if done:
        logger.info("marked %d approvals expired", done)
    return done


def pending_count() -> int:
    """Approvals waiting for a decision now (past ``expires_at`` they no longer wait)."""
    return Approval.objects.filter(status=ApprovalStatus.PENDING, expires_at__gt=Now()).count()
