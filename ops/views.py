"""HTTP views of the ops app: thin — validate with a serializer, call one service, render.

The operation viewsets keep the raw body they received (before DRF parses it) so the audit
row of a refused request shows what was actually sent, even when it was not JSON.
"""

from __future__ import annotations

import json
from dataclasses import asdict

from django.core.exceptions import RequestDataTooBig
from django.db import transaction
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from ops import approvals, services
from ops.audit import Target
from ops.authentication import actor_for
from ops.errors import ApprovalNotFound, BodyTooLarge
from ops.extensions import operations
from ops.filters import TIME_HELP, ApprovalFilter, OpsLogFilter
from ops.handlers import JsonErrors
from ops.idempotency import IdempotentMixin
from ops.models import ApiKey, Approval, ApprovalStatus
from ops.pagination import ApprovalCursorPagination, AuditCursorPagination
from ops.permissions import OperationAllowed
from ops.policy import ALL_OPERATIONS, APPROVE
from ops.query import StrictQueryParams
from ops.selectors import audit_rows, audit_rows_visible_to
from ops.serializers import (
    ApiKeyInfoSerializer,
    ApprovalHeldSerializer,
    ApprovalSerializer,
    DeleteResultSerializer,
    DryRunSerializer,
    EmptySerializer,
    OpsLogSerializer,
    ReasonSerializer,
    ScaleResultSerializer,
    ScaleSerializer,
    WhoAmISerializer,
)
from ops.validation import NAME_SCHEMA, NAMESPACE_SCHEMA, name_problem, namespace_problem

_RAW_BODY_LIMIT = 4096
#: The path parameters of an operation on one object, as the input rules define them.
OBJECT_PATH = [
    OpenApiParameter("namespace", NAMESPACE_SCHEMA, OpenApiParameter.PATH),
    OpenApiParameter("name", NAME_SCHEMA, OpenApiParameter.PATH),
]

DRY_RUN_PARAMETER = OpenApiParameter(
    "dry_run",
    bool,
    description=(
        "true: every check of the real request, then the plan of the exact changes (with the "
        "objects' uids and a digest); nothing changes (the cluster sees only dryRun=All)."
    ),
)

SCALE_SERVICES = {
    services.KIND_DEPLOYMENT: services.deployment_scale,
    services.KIND_STATEFULSET: services.statefulset_scale,
}
DELETE_SERVICES = {
    services.KIND_POD: services.pod_delete,
    services.KIND_PVC: services.pvc_delete,
}


_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no", "")


def dry_run_requested(request) -> bool:
    """``?dry_run=true``: plan and check, change nothing (400 for a value that is not a
    boolean, so a typo never turns a dry run into the real thing)."""
    values = request.query_params.getlist("dry_run")
    if not values:
        return False
    if len(values) > 1:
        raise ValidationError({"dry_run": ["Give dry_run once."]})
    value = values[0].strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValidationError({"dry_run": [f"{values[0][:20]!r} is not a boolean: use true or false."]})


def approval_held_body(approval) -> dict:
    """The 202 answer of a request held for approval."""
    return {
        "approval_id": approval.approval_id,
        "status": approval.status,
        "plan": approval.plan,
        "plan_digest": approval.plan_digest,
        "expires_at": approval.expires_at,
        "warnings": approval.warnings,
    }


def respond(outcome, success_status: int = status.HTTP_200_OK) -> Response:
    """The answer of an operation: its result, a dry run's plan (200), or the approval a
    held request waits for (202)."""
    if isinstance(outcome, services.Planned):
        return Response(outcome.plan.as_response(), status=status.HTTP_200_OK)
    if isinstance(outcome, services.Held):
        return Response(approval_held_body(outcome.approval), status=status.HTTP_202_ACCEPTED)
    return Response(asdict(outcome), status=success_status)


def _validate(namespace: str, name: str, body_serializer: serializers.Serializer) -> dict:
    """Validate the path's namespace and name (strings from the URL: the same rules as
    everywhere, without a serializer's machinery on every request) and the body together,
    so one 400 lists every problem."""
    path = {"namespace": namespace, "name": name}
    problems = {"namespace": namespace_problem(namespace), "name": name_problem(name)}
    errors = {field: [problem] for field, problem in problems.items() if problem}
    if not body_serializer.is_valid():
        errors.update(body_serializer.errors)
    if errors:
        raise ValidationError(errors)
    return {**path, **body_serializer.validated_data}


class OperationViewSet(JsonErrors, IdempotentMixin, StrictQueryParams, viewsets.ViewSet):
    """Base of the operation endpoints: knows which audit target a request is about, and
    honours Idempotency-Key (:mod:`ops.idempotency`), claimed once the query is known good."""

    kind: str = ""
    action_name: str = ""
    #: The operation a caller must be allowed (ops.policy.operation_allowed) to ask for.
    operation: str | None = None
    permission_classes = [IsAuthenticated, OperationAllowed]
    # Every refusal on these paths (bad input, wrong method) is an attempt: audit it.
    audits_refusals = True
    raw_body: bytes = b""

    def initial(self, request, *args, **kwargs):
        # Read the body before DRF's parser consumes the stream (Django caches it), so a
        # refusal can audit what was sent. Django's DATA_UPLOAD_MAX_MEMORY_SIZE bounds it; a
        # larger body is refused (413) once the caller is known, so its row names the actor.
        too_large = False
        try:
            self.raw_body = request._request.body
        except RequestDataTooBig:
            too_large = True
        super().initial(request, *args, **kwargs)
        if too_large:
            raise BodyTooLarge()

    def allowed_query_params(self) -> frozenset[str]:
        """A write also takes ``dry_run``."""
        allowed = super().allowed_query_params()
        if self.request.method in ("POST", "DELETE"):
            allowed |= {"dry_run"}
        return allowed

    def dry_run_flag(self) -> bool:
        """Whether this request asked for a dry run (for the row of a refusal; a malformed
        value counts as asked: it is refused, and nothing was done)."""
        value = self.request.query_params.get("dry_run")
        return value is not None and value.strip().lower() not in _FALSE

    def _body_for_audit(self):
        if not self.raw_body:
            return None
        text = self.raw_body[: _RAW_BODY_LIMIT * 4].decode("utf-8", "replace")
        try:
            return json.loads(text)
        except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
            return {"_raw": text[:_RAW_BODY_LIMIT]}

    def audit_target(self) -> Target:
        """What this request tried to do, for the audit row of a refusal."""
        return Target(
            action=self.action_name,
            resource_kind=self.kind,
            namespace=str(self.kwargs.get("namespace", "")),
            resource_name=str(self.kwargs.get("name", "")),
            request_body=self._body_for_audit(),
            dry_run=self.dry_run_flag(),
        )


class WithoutRequestTransaction:
    """For views that write nothing through ``default``: no ATOMIC_REQUESTS transaction.

    Their rows go through the autocommit ``audit`` connection and their reads are single
    statements, so a transaction on ``default`` would protect nothing and cost a health
    check and BEGIN/COMMIT round trips on every request. (The jobs views write jobs through
    ``default`` and keep theirs.)
    """

    @classmethod
    def as_view(cls, *args, **kwargs):
        return transaction.non_atomic_requests(super().as_view(*args, **kwargs))


class ScaleViewSet(WithoutRequestTransaction, OperationViewSet):
    """``POST /ops/namespaces/{ns}/{deployments|statefulsets}/{name}/scale``."""

    action_name = services.ACTION_SCALE
    operation = "scale"
    serializer_class = ScaleSerializer
    reaches_cluster = True

    def get_serializer(self, *args, **kwargs):
        return ScaleSerializer(*args, **kwargs)

    @extend_schema(
        request=ScaleSerializer,
        parameters=[DRY_RUN_PARAMETER, *OBJECT_PATH],
        responses={
            200: PolymorphicProxySerializer(
                "ScaleOrPlan",
                [ScaleResultSerializer, DryRunSerializer],
                resource_type_field_name=None,
            ),
            202: ApprovalHeldSerializer,
        },
    )
    def scale(self, request, namespace: str, name: str) -> Response:
        """Set the replica count; answers the new and the previous count (``dry_run=true``:
        the plan; held for approval: 202 with the approval)."""
        dry_run = dry_run_requested(request)
        data = _validate(namespace, name, ScaleSerializer(data=request.data))
        outcome = SCALE_SERVICES[self.kind](
            actor=actor_for(request), dry_run=dry_run, gated=True, **data
        )
        return respond(outcome)


class DeleteViewSet(WithoutRequestTransaction, OperationViewSet):
    """``DELETE /ops/namespaces/{ns}/{pods|persistentvolumeclaims}/{name}``."""

    action_name = services.ACTION_DELETE
    reaches_cluster = True

    @property
    def operation(self) -> str:
        return "delete-pod" if self.kind == services.KIND_POD else "delete-pvc"

    @extend_schema(
        request=None,
        parameters=[DRY_RUN_PARAMETER, *OBJECT_PATH],
        responses={
            200: PolymorphicProxySerializer(
                "DeleteOrPlan",
                [DeleteResultSerializer, DryRunSerializer],
                resource_type_field_name=None,
            ),
            202: ApprovalHeldSerializer,
        },
    )
    def destroy(self, request, namespace: str, name: str) -> Response:
        """Delete the object; answers ``{"status": "ok", ...}`` (``dry_run=true``: the plan;
        held for approval: 202 with the approval)."""
        dry_run = dry_run_requested(request)
        body = request.data if self.raw_body else {}
        data = _validate(namespace, name, EmptySerializer(data=body))
        outcome = DELETE_SERVICES[self.kind](
            actor=actor_for(request), dry_run=dry_run, gated=True, **data
        )
        return respond(outcome)


@extend_schema(
    parameters=[
        OpenApiParameter("since", str, description=f"Rows at or after this time. {TIME_HELP}"),
        OpenApiParameter("until", str, description=f"Rows before this time. {TIME_HELP}"),
    ]
)
class AuditViewSet(
    WithoutRequestTransaction,
    JsonErrors,
    StrictQueryParams,
    mixins.ListModelMixin,
    viewsets.GenericViewSet,
):
    """``GET /ops/audit``: the audit log, newest first, filtered, cursor-paginated.

    A key scoped to namespaces reads only the rows about them (see
    :func:`ops.selectors.audit_rows_visible_to`).
    """

    serializer_class = OpsLogSerializer
    filterset_class = OpsLogFilter
    pagination_class = AuditCursorPagination

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # drf-spectacular: no key, no rows
            return audit_rows().none()
        return audit_rows_visible_to(actor_for(self.request))

    def audit_target(self) -> Target:
        """Only consulted for authentication failures (reads are not operations)."""
        return Target(
            action="list",
            resource_kind="ops_log",
            namespace=self.request.query_params.get("namespace", "")[:63],
            resource_name="",
            request_body=None,
        )


def granted_operations(granted: tuple[str, ...] | None) -> list[str]:
    """What a key may request, spelled out: every operation ``all`` covers, and ``approve``
    when granted (None: everything, the bootstrap key)."""
    every = operations()
    if granted is None:
        return [*every, APPROVE]
    names = [op for op in every if ALL_OPERATIONS in granted or op in granted]
    return [*names, APPROVE] if APPROVE in granted else names


class WhoAmIView(WithoutRequestTransaction, JsonErrors, StrictQueryParams, APIView):
    """``GET /ops/whoami``: who this key acts as, where, and its name's keys."""

    @extend_schema(responses={200: WhoAmISerializer})
    def get(self, request) -> Response:
        """The key's name (the audit actor), namespace scope (null: every allowed one), the
        operations it may ask for, the key used, and every usable key of the name (during a
        rotation's overlap: the old and the new, with when each was last used)."""
        principal = request.user
        keys = []
        if principal.key_id is not None:
            keys = list(ApiKey.objects.usable().filter(name=principal.name).order_by("created_at"))
        used = next((k for k in keys if k.pk == principal.key_id), None)
        body = {
            "name": principal.name,
            "namespaces": list(principal.namespaces) if principal.namespaces else None,
            "operations": granted_operations(principal.operations),
            "key": ApiKeyInfoSerializer(used).data if used else None,
            "keys": ApiKeyInfoSerializer(keys, many=True).data,
        }
        return Response(body)


class ApprovalViewSet(WithoutRequestTransaction, OperationViewSet, viewsets.GenericViewSet):
    """``/ops/approvals``: requests held for approval, and their decision.

    Listing and reading need any key that may see the namespace; approving and rejecting need
    the ``approve`` permission, another key name than the requester's, and a reason.
    """

    kind = approvals.KIND_APPROVAL
    reaches_cluster = ("approve",)  # the plan is checked against the cluster, then run
    serializer_class = ApprovalSerializer
    filterset_class = ApprovalFilter
    pagination_class = ApprovalCursorPagination

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Approval.objects.none()
        return approvals.visible_to(actor_for(self.request))

    def audit_target(self) -> Target:
        return Target(
            action=self.action_name or "list",
            resource_kind=self.kind,
            namespace="",
            resource_name=str(self.kwargs.get("approval_id", ""))[:64],
            request_body=self._body_for_audit(),
            dry_run=self.dry_run_flag(),
        )

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "status", str, enum=[s.value for s in ApprovalStatus], description="filter"
            )
        ],
        responses={200: ApprovalSerializer(many=True)},
    )
    def list(self, request) -> Response:
        """Approvals, newest first (``status`` filter: pending, approved, rejected, expired,
        stale)."""
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(ApprovalSerializer(page, many=True).data)

    @extend_schema(responses={200: ApprovalSerializer})
    def retrieve(self, request, approval_id: str) -> Response:
        """One approval (404 when unknown or outside the key's namespaces)."""
        approval = self.get_queryset().filter(approval_id=approval_id).first()
        if approval is None:
            raise ApprovalNotFound(f"No approval {approval_id[:64]}.")
        return Response(ApprovalSerializer(approval).data)

    def _decide(self, request, approval_id: str, *, approve: bool) -> Response:
        dry_run = dry_run_requested(request)
        body = ReasonSerializer(data=request.data if self.raw_body else {})
        body.is_valid(raise_exception=True)
        approval, outcome = approvals.decide(
            actor=actor_for(request),
            approval_id=approval_id,
            reason=body.validated_data["reason"],
            approve=approve,
            dry_run=dry_run,
        )
        if outcome is not None:
            return Response(outcome.body, status=outcome.status)
        return Response(ApprovalSerializer(approval).data)

    @extend_schema(
        request=ReasonSerializer,
        parameters=[DRY_RUN_PARAMETER],
        responses={
            200: OpenApiResponse(
                description="the operation's own answer (its result); with dry_run: the plan"
            ),
            202: OpenApiResponse(description='the operation\'s own answer ({"job_id"})'),
        },
    )
    def approve(self, request, approval_id: str) -> Response:
        """Approve: the plan is checked against the cluster now (409 ``stale_approval`` when
        an object was replaced or changed), then the operation runs for the requester; its
        answer is this answer."""
        return self._decide(request, approval_id, approve=True)

    @extend_schema(
        request=ReasonSerializer,
        parameters=[DRY_RUN_PARAMETER],
        responses={
            200: PolymorphicProxySerializer(
                "RejectedOrPlan",
                [ApprovalSerializer, DryRunSerializer],
                resource_type_field_name=None,
            )
        },
    )
    def reject(self, request, approval_id: str) -> Response:
        """Reject, with a reason: nothing runs."""
        return self._decide(request, approval_id, approve=False)
