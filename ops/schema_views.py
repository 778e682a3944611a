"""The views serving the OpenAPI document and its docs page.

They refuse unknown query parameters like every endpoint, and answer their errors (a 401
without a key) as JSON ``{detail, code}``, whatever their own format (YAML, HTML) would have
been.
"""

from __future__ import annotations

from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.renderers import JSONRenderer

from ops.query import StrictQueryParams


class JsonErrors:
    """Mixin for views whose success is not JSON (the schema in YAML, the docs page): their
    error answers are JSON ``{detail, code}`` all the same."""

    def finalize_response(self, request, response, *args, **kwargs):
        if response.status_code >= 400 and getattr(response, "data", None) is not None:
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)


class SchemaView(JsonErrors, StrictQueryParams, SpectacularAPIView):
    """``GET /api/schema/``: the OpenAPI document (YAML, or JSON with ``?format=json``)."""

    query_params = ("lang", "version")


class DocsView(JsonErrors, StrictQueryParams, SpectacularSwaggerView):
    """``GET /api/docs/``: Swagger UI over the schema."""

    query_params = ("lang",)
