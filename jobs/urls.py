"""URLs of the jobs API (included by the project's root URLs)."""

from django.urls import path

from jobs import services
from jobs.views import JobActionViewSet, JobViewSet, PgRebuildViewSet

urlpatterns = [
    path(
        "ops/jobs/pg-rebuild",
        PgRebuildViewSet.as_view({"post": "create"}),
        name="job-pg-rebuild",
    ),
    path("ops/jobs", JobViewSet.as_view({"get": "list"}), name="job-list"),
    path("ops/jobs/<str:job_id>", JobViewSet.as_view({"get": "retrieve"}), name="job-detail"),
    path(
        "ops/jobs/<str:job_id>/cancel",
        JobActionViewSet.as_view({"post": "cancel"}, action_name=services.ACTION_CANCEL),
        name="job-cancel",
    ),
    path(
        "ops/jobs/<str:job_id>/retry",
        JobActionViewSet.as_view({"post": "retry"}, action_name=services.ACTION_RETRY),
        name="job-retry",
    ),
]
