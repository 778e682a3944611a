"""URLs of the ops API. Path parts are matched loosely and validated by the views, so a
malformed name is a 400 with an audit row rather than an unexplained 404."""

from django.urls import path

from ops import health, services
from ops.views import AuditViewSet, DeleteViewSet, ScaleViewSet, WhoAmIView

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
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
]
