"""The views serving the OpenAPI document and its docs page.

They refuse unknown query parameters and answer their errors as JSON ``{detail, code}`` (a
401 without a key), whatever their own format (YAML, HTML) would have been, like every
endpoint.
"""

from __future__ import annotations

from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from ops.handlers import JsonErrors
from ops.query import StrictQueryParams


class SchemaView(JsonErrors, StrictQueryParams, SpectacularAPIView):
    """``GET /api/schema/``: the OpenAPI document (YAML, or JSON with ``?format=json``)."""

    query_params = ("lang", "version")


class DocsView(JsonErrors, StrictQueryParams, SpectacularSwaggerView):
    """``GET /api/docs/``: Swagger UI over the schema."""

    query_params = ("lang",)
