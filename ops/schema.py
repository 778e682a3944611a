"""OpenAPI (drf-spectacular) description of the X-API-Key scheme."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """Documents :class:`ops.authentication.ApiKeyAuthentication` as an API-key header."""

    target_class = "ops.authentication.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "X-API-Key"}
