"""HTTP views of the jobs app: thin — validate the body, call one service, render."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.response import Response

from jobs import services
from jobs.filters import JobFilter
from jobs.models import Job
from jobs.pagination import JobCursorPagination
from jobs.selectors import jobs_visible_to
from jobs.serializers import JobCreatedSerializer, JobSerializer, PgRebuildSerializer
from ops.audit import Target
from ops.authentication import actor_for
from ops.serializers import EmptySerializer
from ops.views import OperationViewSet


class PgRebuildViewSet(OperationViewSet):
    """``POST /ops/jobs/pg-rebuild``: start rebuilding one replica of a PostgreSQL StatefulSet."""

    kind = services.KIND_STATEFULSET
    action_name = services.PG_REBUILD

    def get_serializer(self, *args, **kwargs):
        return PgRebuildSerializer(*args, **kwargs)

    def audit_target(self) -> Target:
        """The target named in the body (this path has none), for the row of a refusal."""
        body = self._body_for_audit()
        fields = body if isinstance(body, dict) else {}
        return Target(
            action=self.action_name,
            resource_kind=self.kind,
            namespace=str(fields.get("namespace", ""))[:63],
            resource_name=str(fields.get("statefulset", ""))[:253],
            request_body=body,
        )

    @extend_schema(request=PgRebuildSerializer, responses={202: JobCreatedSerializer})
    def create(self, request) -> Response:
        """Validate, check the target, record the job with its steps pending; 202 + job id."""
        body = PgRebuildSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        job = services.pg_rebuild_start(actor=actor_for(request), **body.validated_data)
        return Response({"job_id": job.job_id}, status=status.HTTP_202_ACCEPTED)


class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Jobs and their steps."""

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


class JobActionViewSet(OperationViewSet):
    """``POST /ops/jobs/{job_id}/cancel`` and ``POST /ops/jobs/{job_id}/retry`` (empty body)."""

    kind = services.KIND_JOB

    def audit_target(self) -> Target:
        """The job named in the path, for the row of a refusal."""
        return Target(
            action=self.action_name,
            resource_kind=self.kind,
            namespace="",
            resource_name=str(self.kwargs.get("job_id", ""))[:253],
            request_body=self._body_for_audit(),
        )

    def _act(self, request, service) -> Response:
        body = EmptySerializer(data=request.data if self.raw_body else {})
        body.is_valid(raise_exception=True)
        actor = actor_for(request)
        job = service(actor=actor, job_id=self.kwargs["job_id"])
        fresh = jobs_visible_to(actor).get(pk=job.pk)  # the steps as the service left them
        return Response(JobSerializer(fresh).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: JobSerializer})
    def cancel(self, request, job_id: str) -> Response:
        """Stop an active job: at once when no live tick holds it, else before its next
        action; 409 when it has already ended."""
        return self._act(request, services.job_cancel)

    @extend_schema(request=None, responses={202: JobSerializer})
    def retry(self, request, job_id: str) -> Response:
        """Run a failed job again from its failed step (succeeded steps are kept)."""
        return self._act(request, services.job_retry)
