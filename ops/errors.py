"""The API's error hierarchy: each class declares ``status_code``, ``default_code`` and
``default_detail`` (as DRF's ``exceptions.py`` does), so services, views, management commands
and job steps all speak the same errors, and :mod:`ops.handlers` renders them as
``{"detail", "code"}``.

``audited`` tells the exception handler that the raiser already wrote the attempt's one
``ops_log`` row (services always do), so it must not write a second one.
"""

from __future__ import annotations

from django.conf import settings
from django.db import InterfaceError, OperationalError
from rest_framework import status
from rest_framework.exceptions import APIException

from ops import k8s


class OpsError(APIException):
    """Base of every error the ops services raise."""

    status_code = status.HTTP_500_INTERNAL_SERVER_ERROR
    default_code = "error"
    default_detail = "The operation failed."
    audited = False

    def __init__(self, detail: str | None = None, code: str | None = None) -> None:
        super().__init__(detail, code)


class InvalidInput(OpsError):
    """400: the input breaks the rules (field errors in ``errors``)."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid"
    default_detail = "Invalid input."

    def __init__(self, errors: dict[str, list[str]], detail: str | None = None) -> None:
        super().__init__(detail)
        self.errors = errors


class InvalidQuery(InvalidInput):
    """400: an unknown or repeated query parameter, or a malformed value of one."""

    default_code = "invalid_query"
    default_detail = "Invalid query parameters."


class BodyTooLarge(OpsError):
    """413: the request body is larger than the server accepts."""

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "body_too_large"
    default_detail = "The request body is too large."

    def __init__(self) -> None:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        super().__init__(f"The request body is larger than the {limit} bytes this API accepts.")


class BodyNotJson(OpsError):
    """415: the body is not sent as JSON."""

    status_code = status.HTTP_415_UNSUPPORTED_MEDIA_TYPE
    default_code = "unsupported_media_type"
    default_detail = "Send the body as JSON, with Content-Type: application/json."


class NamespaceDenied(OpsError):
    """403: the namespace is not allowed (globally, or for this key)."""

    status_code = status.HTTP_403_FORBIDDEN
    default_code = "namespace_denied"
    default_detail = "This namespace is not allowed."


class OperationNotAllowed(OpsError):
    """403: the key may not request this operation (its ``--operations``)."""

    status_code = status.HTTP_403_FORBIDDEN
    default_code = "operation_not_allowed"
    default_detail = "This key may not request this operation."


class ApprovalNotFound(OpsError):
    """404: no such approval (or not one this key may see)."""

    status_code = status.HTTP_404_NOT_FOUND
    default_code = "not_found"
    default_detail = "No such approval."


class SelfApproval(OpsError):
    """403: the approver is the requester (approvals need a second person)."""

    status_code = status.HTTP_403_FORBIDDEN
    default_code = "self_approval"
    default_detail = "A request cannot be approved or rejected by the key name that made it."


class ApproveNotAllowed(OpsError):
    """403: the key lacks the ``approve`` permission, or the request's namespace."""

    status_code = status.HTTP_403_FORBIDDEN
    default_code = "approve_not_allowed"
    default_detail = "This key may not approve or reject this request."


class ApprovalExpired(OpsError):
    """409: past the approval's ``expires_at``."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "approval_expired"
    default_detail = "The approval has expired; request the operation again."


class ApprovalClosed(OpsError):
    """409: already approved, rejected or stale."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "approval_closed"
    default_detail = "The approval is already decided."


class StaleApproval(OpsError):
    """409: an object of the plan was replaced or changed since the plan: nothing was sent."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "stale_approval"
    default_detail = "The cluster changed since the plan was approved for; nothing was done."


class ObjectNotFound(OpsError):
    """404: the cluster has no such object."""

    status_code = status.HTTP_404_NOT_FOUND
    default_code = "not_found"
    default_detail = "No such object."


class ObjectConflict(OpsError):
    """409: the cluster reported a conflict."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"
    default_detail = "The cluster reported a conflict."


class TargetHeldByJob(ObjectConflict):
    """409: an active job holds the object (or the StatefulSet it belongs to).

    Same code as a second job refused on a busy target: the same situation, met by another door.
    """

    default_code = "job_target_busy"
    default_detail = "An active job already holds this target."


class KubernetesError(OpsError):
    """502: the Kubernetes API failed."""

    status_code = status.HTTP_502_BAD_GATEWAY
    default_code = "kubernetes_error"
    default_detail = "The Kubernetes API failed."


class KubernetesForbidden(KubernetesError):
    """502: the cluster refused our service account (an RBAC problem on our side)."""

    default_code = "kubernetes_forbidden"
    default_detail = "The Kubernetes API refused the service account."


class KubernetesRejected(KubernetesError):
    """502: the cluster rejected the request as invalid (400/422)."""

    default_code = "kubernetes_rejected"
    default_detail = "The Kubernetes API rejected the request."


class KubernetesUnavailable(KubernetesError):
    """502: 429/5xx or no connection, after retries."""

    default_code = "kubernetes_unavailable"
    default_detail = "The Kubernetes API is unavailable."


class KubernetesTimeout(KubernetesError):
    """504: the Kubernetes API did not answer in time."""

    status_code = status.HTTP_504_GATEWAY_TIMEOUT
    default_code = "kubernetes_timeout"
    default_detail = "The Kubernetes API timed out."


class AuditUnavailable(OpsError):
    """503: the audit row cannot be written, so the operation is not performed (fail closed)."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "audit_unavailable"
    default_detail = "The audit log cannot be written; the operation was not performed."
    # Nothing can be written for it, by definition.
    audited = True


class DatabaseUnavailable(OpsError):
    """503: the database cannot be reached (down, restarting, refusing connections)."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "database_unavailable"
    default_detail = "The database is unavailable; try again later."


#: The database errors that say the server cannot be reached or the connection broke (Django
#: raises the driver's own errors as these). Any other database error is a bug: it stays a 500.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)


_K8S_TO_API: list[tuple[type[k8s.K8sError], type[OpsError]]] = [
    (k8s.K8sNotFound, ObjectNotFound),
    (k8s.K8sConflict, ObjectConflict),
    (k8s.K8sForbidden, KubernetesForbidden),
    (k8s.K8sInvalid, KubernetesRejected),
    (k8s.K8sTimeout, KubernetesTimeout),
    (k8s.K8sUnavailable, KubernetesUnavailable),
]


def from_k8s(exc: k8s.K8sError) -> OpsError:
    """The API error for a gateway error (raise it ``from exc``)."""
    for k8s_cls, api_cls in _K8S_TO_API:
        if isinstance(exc, k8s_cls):
            return api_cls(exc.message)
    return KubernetesError(exc.message)
