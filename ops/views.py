"""HTTP views of the ops app: thin — validate with a serializer, call one service, render.

The operation viewsets keep the raw body they received (before DRF parses it) so the audit
row of a refused request shows what was actually sent, even when it was not JSON.
"""

from __future__ import annotations

import json
from dataclasses import asdict

from django.core.exceptions import RequestDataTooBig
from django.db import transaction
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from ops import services
from ops.audit import Target
from ops.authentication import actor_for
from ops.errors import BodyTooLarge
from ops.extensions import operations
from ops.filters import TIME_HELP, OpsLogFilter
from ops.handlers import JsonErrors
from ops.models import ApiKey
from ops.pagination import AuditCursorPagination
from ops.query import StrictQueryParams
from ops.selectors import audit_rows, audit_rows_visible_to
from ops.serializers import (
    ApiKeyInfoSerializer,
    DeleteResultSerializer,
    EmptySerializer,
    ObjectPathSerializer,
    OpsLogSerializer,
    ScaleResultSerializer,
    ScaleSerializer,
    WhoAmISerializer,
)
from ops.validation import NAME_SCHEMA, NAMESPACE_SCHEMA

_RAW_BODY_LIMIT = 4096
#: The path parameters of an operation on one object, as the input rules define them.
OBJECT_PATH = [
    OpenApiParameter("namespace", NAMESPACE_SCHEMA, OpenApiParameter.PATH),
    OpenApiParameter("name", NAME_SCHEMA, OpenApiParameter.PATH),
]

SCALE_SERVICES = {
    services.KIND_DEPLOYMENT: services.deployment_scale,
    services.KIND_STATEFULSET: services.statefulset_scale,
}
DELETE_SERVICES = {
    services.KIND_POD: services.pod_delete,
    services.KIND_PVC: services.pvc_delete,
}


def _validate(path: dict, body_serializer: serializers.Serializer) -> dict:
    """Validate path and body together, so one 400 lists every problem."""
    path_ser = ObjectPathSerializer(data=path)
    errors = {}
    if not path_ser.is_valid():
        errors.update(path_ser.errors)
    if not body_serializer.is_valid():
        errors.update(body_serializer.errors)
    if errors:
        raise ValidationError(errors)
    return {**path_ser.validated_data, **body_serializer.validated_data}


class OperationViewSet(JsonErrors, StrictQueryParams, viewsets.ViewSet):
    """Base of the operation endpoints: knows which audit target a request is about."""

    kind: str = ""
    action_name: str = ""
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
    serializer_class = ScaleSerializer
    reaches_cluster = True

    def get_serializer(self, *args, **kwargs):
        return ScaleSerializer(*args, **kwargs)

    @extend_schema(
        request=ScaleSerializer, responses={200: ScaleResultSerializer}, parameters=OBJECT_PATH
    )
    def scale(self, request, namespace: str, name: str) -> Response:
        """Set the replica count; answers the new and the previous count."""
        data = _validate({"namespace": namespace, "name": name}, ScaleSerializer(data=request.data))
        result = SCALE_SERVICES[self.kind](actor=actor_for(request), **data)
        return Response(asdict(result), status=status.HTTP_200_OK)


class DeleteViewSet(WithoutRequestTransaction, OperationViewSet):
    """``DELETE /ops/namespaces/{ns}/{pods|persistentvolumeclaims}/{name}``."""

    action_name = services.ACTION_DELETE
    reaches_cluster = True

    @extend_schema(request=None, responses={200: DeleteResultSerializer}, parameters=OBJECT_PATH)
    def destroy(self, request, namespace: str, name: str) -> Response:
        """Delete the object; answers ``{"status": "ok", ...}``."""
        body = request.data if self.raw_body else {}
        data = _validate({"namespace": namespace, "name": name}, EmptySerializer(data=body))
        result = DELETE_SERVICES[self.kind](actor=actor_for(request), **data)
        return Response(asdict(result), status=status.HTTP_200_OK)


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
            "operations": operations(),
            "key": ApiKeyInfoSerializer(used).data if used else None,
            "keys": ApiKeyInfoSerializer(keys, many=True).data,
        }
        return Response(body)
