"""The API docs page: Swagger UI served from this service, under its Content-Security-Policy.

drf-spectacular's split view: the page loads Swagger UI's files (drf-spectacular-sidecar,
through our static files) and its start-up script from its own URL (``?script``), so the page
runs no inline script. A refusal (no key, no staff session) is JSON like every error of the
API, not a template page.
"""

from __future__ import annotations

from drf_spectacular.views import SpectacularSwaggerSplitView
from rest_framework.renderers import JSONRenderer


class DocsView(SpectacularSwaggerSplitView):
    """``GET /api/docs/``: the page; ``GET /api/docs/?script``: its start-up script."""

    def finalize_response(self, request, response, *args, **kwargs):
        """Render an error answer as JSON (the page's renderer would make it HTML)."""
        if response.status_code >= 400:
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)
