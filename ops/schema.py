"""OpenAPI (drf-spectacular) description of the X-API-Key scheme and the staff session."""

from drf_spectacular.authentication import SessionScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """Documents :class:`ops.authentication.ApiKeyAuthentication` as an API-key header."""

    target_class = "ops.authentication.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "X-API-Key"}


class StaffSessionScheme(SessionScheme):
    """Documents :class:`ops.authentication.StaffSessionAuthentication`: the admin's session
    cookie (a browser's, with its CSRF token on unsafe methods)."""

    target_class = "ops.authentication.StaffSessionAuthentication"
    name = "StaffSession"
