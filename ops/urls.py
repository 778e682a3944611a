"""URLs of the ops API. Path parts are matched loosely and validated by the views, so a
malformed name is a 400 with an audit row rather than an unexplained 404."""

from django.urls import path

from ops import approvals, health, services
from ops.views import ApprovalViewSet, AuditViewSet, DeleteViewSet, ScaleViewSet, WhoAmIView

_PART = "<str:namespace>"
_NAME = "<str:name>"

urlpatterns = [
    path(
        f"ops/namespaces/{_PART}/deployments/{_NAME}/scale",
        ScaleViewSet.as_view({"post": "scale"}, kind=services.KIND_DEPLOYMENT),
        name="deployment-scale",
    ),
    path(
        f"ops/namespaces/{_PART}/statefulsets/{_NAME}/scale",
        ScaleViewSet.as_view({"post": "scale"}, kind=services.KIND_STATEFULSET),
        name="statefulset-scale",
    ),
    path(
        f"ops/namespaces/{_PART}/pods/{_NAME}",
        DeleteViewSet.as_view({"delete": "destroy"}, kind=services.KIND_POD),
        name="pod-delete",
    ),
    path(
        f"ops/namespaces/{_PART}/persistentvolumeclaims/{_NAME}",
        DeleteViewSet.as_view({"delete": "destroy"}, kind=services.KIND_PVC),
        name="pvc-delete",
    ),
    path("ops/audit", AuditViewSet.as_view({"get": "list"}), name="audit-list"),
    path("ops/whoami", WhoAmIView.as_view(), name="whoami"),
    path("ops/approvals", ApprovalViewSet.as_view({"get": "list"}), name="approval-list"),
    path(
        "ops/approvals/<str:approval_id>",
        ApprovalViewSet.as_view({"get": "retrieve"}),
        name="approval-detail",
    ),
    path(
        "ops/approvals/<str:approval_id>/approve",
        ApprovalViewSet.as_view({"post": "approve"}, action_name=approvals.ACTION_APPROVE),
        name="approval-approve",
    ),
    path(
        "ops/approvals/<str:approval_id>/reject",
        ApprovalViewSet.as_view({"post": "reject"}, action_name=approvals.ACTION_REJECT),
        name="approval-reject",
    ),
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
]
