"""URLs of the jobs API (included by the project's root URLs)."""

from django.urls import path

from jobs.views import JobViewSet, PgRebuildViewSet

urlpatterns = [
    path(
        "ops/jobs/pg-rebuild",
        PgRebuildViewSet.as_view({"post": "create"}),
        name="job-pg-rebuild",
    ),
    path("ops/jobs", JobViewSet.as_view({"get": "list"}), name="job-list"),
    path("ops/jobs/<str:job_id>", JobViewSet.as_view({"get": "retrieve"}), name="job-detail"),
]
