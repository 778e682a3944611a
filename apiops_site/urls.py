"""Root URLs: the ops and jobs APIs, health probes, OpenAPI schema and docs, the admin,
Prometheus metrics."""

from django.contrib import admin
from django.urls import include, path

from apiops_site.api_root import ApiRootView
from ops.metrics import metrics_view
from ops.schema_views import DocsView, SchemaView

urlpatterns = [
    path("ops/", ApiRootView.as_view(), name="api-root"),
    path("", include("ops.urls")),
    path("", include("jobs.urls")),
    path("api/schema/", SchemaView.as_view(), name="schema"),
    path("api/docs/", DocsView.as_view(url_name="schema"), name="docs"),
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="metrics"),
]

handler400 = "ops.handlers.json_400"
handler403 = "ops.handlers.json_403"
handler404 = "ops.handlers.json_404"
handler500 = "ops.handlers.json_500"
