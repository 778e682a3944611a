"""URLs of the jobs API (included by the project's root URLs).

One ``POST /ops/jobs/{type}`` route per registered job type (each with its own input schema
in the OpenAPI document), listed before ``/ops/jobs/{job_id}``, whose POST answers an unknown
type's 404.
"""

from django.urls import path

from jobs import services
from jobs.registry import job_type_names
from jobs.views import JobActionViewSet, JobStartViewSet, JobTypesView, JobViewSet

urlpatterns = [
    path("ops/jobs/types", JobTypesView.as_view(), name="job-types"),
    *(
        path(
            f"ops/jobs/{name}",
            JobStartViewSet.as_view({"post": "create"}, job_type=name),
            name=f"job-start-{name}",
        )
        for name in job_type_names()
    ),
    path("ops/jobs", JobViewSet.as_view({"get": "list"}), name="job-list"),
    path(
        "ops/jobs/<str:job_id>",
        JobViewSet.as_view({"get": "retrieve", "post": "unknown_type"}),
        name="job-detail",
    ),
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
