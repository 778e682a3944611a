"""``GET /ops/``: the API's root, listing its endpoints as a DRF router's root does.

Paths with parameters are given as templates (``{namespace}``, ``{name}``, ``{job_id}``); in
the browsable API the others are links.
"""

from __future__ import annotations

from urllib.parse import unquote

from drf_spectacular.utils import OpenApiTypes, extend_schema
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from jobs.registry import job_type_names
from ops.handlers import JsonErrors
from ops.query import StrictQueryParams

# (label, URL name, path parameters), in the order a reader meets them.
ENDPOINTS = [
    ("whoami", "whoami", ()),
    ("audit", "audit-list", ()),
    ("jobs", "job-list", ()),
    ("job_types", "job-types", ()),
    ("job", "job-detail", ("job_id",)),
    ("job_cancel", "job-cancel", ("job_id",)),
    ("job_retry", "job-retry", ("job_id",)),
    ("deployment_scale", "deployment-scale", ("namespace", "name")),
    ("statefulset_scale", "statefulset-scale", ("namespace", "name")),
    ("pod_delete", "pod-delete", ("namespace", "name")),
    ("pvc_delete", "pvc-delete", ("namespace", "name")),
    ("approvals", "approval-list", ()),
    ("approval", "approval-detail", ("approval_id",)),
    ("approval_approve", "approval-approve", ("approval_id",)),
    ("approval_reject", "approval-reject", ("approval_id",)),
    ("schema", "schema", ()),
    ("docs", "docs", ()),
]


def _url(request, name: str, params: tuple[str, ...]) -> str:
    url = reverse(name, kwargs={p: f"{{{p}}}" for p in params}, request=request)
    return unquote(url)  # the braces of a template, not percent-escapes


class ApiRootView(JsonErrors, StrictQueryParams, APIView):
    """The endpoints of the API, by name; each job type's start under ``job_start``."""

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request) -> Response:
        """Every endpoint's URL (a template where it takes path parameters)."""
        body = {label: _url(request, name, params) for label, name, params in ENDPOINTS}
        body["job_start"] = {
            job_type: _url(request, f"job-start-{job_type}", ()) for job_type in job_type_names()
        }
        return Response(body)
