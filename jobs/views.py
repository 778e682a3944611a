"""HTTP views of the jobs app: thin — validate the body, call one service, render."""

from __future__ import annotations

from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs import services
from jobs.filters import JobFilter
from jobs.models import Job
from jobs.pagination import JobCursorPagination
from jobs.registry import get_job_type, job_types
from jobs.selectors import jobs_visible_to
from jobs.serializers import (
    JobCreatedSerializer,
    JobSerializer,
    JobTypesSerializer,
    describe_job_type,
)
from ops.audit import Target
from ops.authentication import actor_for
from ops.handlers import JsonErrors
from ops.idempotency import IdempotentMixin
from ops.query import StrictQueryParams
from ops.serializers import ApprovalHeldSerializer, DryRunSerializer, EmptySerializer
from ops.views import DRY_RUN_PARAMETER, OperationViewSet, dry_run_requested, respond


class JobStartViewSet(OperationViewSet):
    """``POST /ops/jobs/{type}``: start a job of a registered type (one route per type)."""

    kind = services.KIND_JOB
    job_type: str = ""
    reaches_cluster = True  # the type's checks read the live cluster

    def get_serializer(self, *args, **kwargs):
        return get_job_type(self.job_type).input(*args, **kwargs)

    @property
    def action_name(self) -> str:  # the audit rows' action: the type's name
        return self.job_type

    @property
    def operation(self) -> str:  # the operation callers must be allowed: the type's name
        return self.job_type

    def audit_target(self) -> Target:
        """What the body names (this path names no object), for the row of a refusal."""
        return services.request_target(
            get_job_type(self.job_type), self._body_for_audit(), dry_run=self.dry_run_flag()
        )

    @extend_schema(
        parameters=[DRY_RUN_PARAMETER],
        responses={
            200: DryRunSerializer,
            202: PolymorphicProxySerializer(
                "JobOrApproval",
                [JobCreatedSerializer, ApprovalHeldSerializer],
                resource_type_field_name=None,
            ),
        },
    )
    def create(self, request) -> Response:
        """Check the request (input, namespace, the type's checks against the cluster, a free
        target), record the job with its steps pending; 202 with its id (``dry_run=true``:
        200 with the plan of every step; held for approval: 202 with the approval)."""
        outcome = services.job_request(
            actor=actor_for(request),
            job_type=self.job_type,
            data=request.data,
            dry_run=dry_run_requested(request),
            gated=True,
        )
        if isinstance(outcome, Job):
            return Response({"job_id": outcome.job_id}, status=status.HTTP_202_ACCEPTED)
        return respond(outcome)


class JobTypesView(JsonErrors, StrictQueryParams, APIView):
    """``GET /ops/jobs/types``: every job type, its steps and the JSON Schema of its input."""

    @extend_schema(responses={200: JobTypesSerializer})
    def get(self, request) -> Response:
        return Response({"types": [describe_job_type(t) for t in job_types()]})


class JobViewSet(
    JsonErrors,
    IdempotentMixin,
    StrictQueryParams,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Jobs and their steps (its POST: an unknown job type's 404)."""

    serializer_class = JobSerializer
    filterset_class = JobFilter
    pagination_class = JobCursorPagination
    lookup_field = "job_id"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request user
            return Job.objects.none()
        return jobs_visible_to(actor_for(self.request))

    def list(self, request, *args, **kwargs) -> Response:
        """``GET /ops/jobs``: newest first, filtered by status, type and namespace."""
        return super().list(request, *args, **kwargs)

    def retrieve(self, request, *args, **kwargs) -> Response:
        """``GET /ops/jobs/{job_id}``: the job and its steps, in order (404 when unknown)."""
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(exclude=True)
    def unknown_type(self, request, job_id: str) -> Response:
        """``POST /ops/jobs/{name}`` for a name no type has: 404, audited."""
        services.job_request(actor=actor_for(request), job_type=job_id, data=request.data)
        raise AssertionError("an unknown job type was started")  # job_request raised


class JobActionViewSet(OperationViewSet):
    """``POST /ops/jobs/{job_id}/cancel`` and ``POST /ops/jobs/{job_id}/retry`` (empty body)."""

    kind = services.KIND_JOB
    reaches_cluster = ("retry",)  # a retry checks the step's guards against the live cluster

    @property
    def operation(self) -> str | None:
        """Cancelling or retrying a job is allowed to whoever may run its type (None for an
        unknown job: the service answers its 404)."""
        return (
            Job.objects.filter(job_id=self.kwargs.get("job_id"))
            .values_list("type", flat=True)
            .first()
        )

    def audit_target(self) -> Target:
        """The job named in the path, for the row of a refusal."""
        return Target(
            action=self.action_name,
            resource_kind=self.kind,
            namespace="",
            resource_name=str(self.kwargs.get("job_id", ""))[:253],
            request_body=self._body_for_audit(),
            dry_run=self.dry_run_flag(),
        )

    def _act(self, request, service) -> Response:
        dry_run = dry_run_requested(request)
        body = EmptySerializer(data=request.data if self.raw_body else {})
        body.is_valid(raise_exception=True)
        actor = actor_for(request)
        job = service(actor=actor, job_id=self.kwargs["job_id"], dry_run=dry_run)
        if not isinstance(job, Job):
            return respond(job)
        fresh = jobs_visible_to(actor).get(pk=job.pk)  # the steps as the service left them
        return Response(JobSerializer(fresh).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        request=None,
        parameters=[DRY_RUN_PARAMETER],
        responses={202: JobSerializer, 200: DryRunSerializer},
    )
    def cancel(self, request, job_id: str) -> Response:
        """Stop an active job: at once when no live tick holds it, else before its next
        action; 409 when it has already ended."""
        return self._act(request, services.job_cancel)

    @extend_schema(
        request=None,
        parameters=[DRY_RUN_PARAMETER],
        responses={202: JobSerializer, 200: DryRunSerializer},
    )
    def retry(self, request, job_id: str) -> Response:
        """Run a failed job again from its failed step (succeeded steps are kept)."""
        return self._act(request, services.job_retry)
