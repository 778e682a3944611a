"""The views serving the OpenAPI document and its docs page.

They refuse unknown query parameters and answer their errors as JSON ``{detail, code}`` (a
401 without a key), whatever their own format (YAML, HTML) would have been, like every
endpoint.

The docs page is Swagger UI served from this service, under its Content-Security-Policy:
drf-spectacular's split view loads Swagger UI's files (drf-spectacular-sidecar, through our
static files) and its start-up script from its own URL (``?script``), so the page runs no
inline script.
"""

from __future__ import annotations

from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from ops.handlers import JsonErrors
from ops.query import StrictQueryParams


class SchemaView(JsonErrors, StrictQueryParams, SpectacularAPIView):
    """``GET /api/schema/``: the OpenAPI document (YAML, or JSON with ``?format=json``)."""

    query_params = ("lang", "version")


class DocsView(JsonErrors, StrictQueryParams, SpectacularSwaggerSplitView):
    """``GET /api/docs/``: Swagger UI over the schema; ``GET /api/docs/?script``: its
    start-up script."""

    query_params = ("lang", "script")
