"""The OpenAPI schema and the docs page, whose refusals are JSON like every error of the API.

The docs page is Swagger UI served from this service, under its Content-Security-Policy:
drf-spectacular's split view loads Swagger UI's files (drf-spectacular-sidecar, through our
static files) and its start-up script from its own URL (``?script``), so the page runs no
inline script. A refusal (no key, no staff session) of either is ``{"detail", "code"}`` as
``application/json``, not a template page or YAML.
"""

from __future__ import annotations

from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.renderers import JSONRenderer


class JsonErrors:
    """Renders an error answer as JSON, whatever renderer the view would otherwise use."""

    def finalize_response(self, request, response, *args, **kwargs):
        if response.status_code >= 400:
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)


class SchemaView(JsonErrors, SpectacularAPIView):
    """``GET /api/schema/``: the OpenAPI document (YAML, or JSON on request)."""


class DocsView(JsonErrors, SpectacularSwaggerSplitView):
    """``GET /api/docs/``: the page; ``GET /api/docs/?script``: its start-up script."""
