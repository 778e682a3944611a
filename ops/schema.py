"""OpenAPI (drf-spectacular) description of the X-API-Key scheme, the staff session and
the Idempotency-Key header."""

from drf_spectacular.authentication import SessionScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """Documents :class:`ops.authentication.ApiKeyAuthentication` as an API-key header."""

    target_class = "ops.authentication.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "X-API-Key"}


_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    "description": (
        "Makes a retry safe: the same key (per API key name) with the same method, path, query "
        "and body answers the first request's stored status and body again with "
        "`Idempotent-Replayed: true`, and nothing runs twice. 409 `idempotency_in_flight` while "
        "the first request runs, 422 `idempotency_key_reused` for a different request, 400 "
        "`invalid_idempotency_key` unless 1 to 255 printable ASCII. Kept OPS_IDEMPOTENCY_TTL "
        "seconds; 5xx answers are not kept."
    ),
}
_REPLAYED = {
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored answer of an earlier request.",
        "schema": {"type": "string", "enum": ["true"]},
    }
}
_IDEMPOTENCY_ANSWERS = {
    "409": "Conflict; `idempotency_in_flight`: the first request with this Idempotency-Key "
    "still runs (Retry-After).",
    "422": "`idempotency_key_reused`: the Idempotency-Key was used for a different request.",
}


def idempotency_key_header(result, generator, request, public):
    """drf-spectacular postprocessing hook: the Idempotency-Key header, its answers and the
    ``Idempotent-Replayed`` response header on every POST and DELETE under ``/ops/`` (where
    :mod:`ops.idempotency` honours it)."""
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/ops/"):
            continue
        for method in ("post", "delete"):
            operation = operations.get(method)
            if operation is None:
                continue
            operation.setdefault("parameters", []).append(_IDEMPOTENCY_KEY)
            responses = operation.setdefault("responses", {})
            for code, text in _IDEMPOTENCY_ANSWERS.items():
                responses.setdefault(code, {"description": text})
            for answer in responses.values():
                answer.setdefault("headers", {}).update(_REPLAYED)
    return result


class StaffSessionScheme(SessionScheme):
    """Documents :class:`ops.authentication.StaffSessionAuthentication`: the admin's session
    cookie (a browser's, with its CSRF token on unsafe methods)."""

    target_class = "ops.authentication.StaffSessionAuthentication"
    name = "StaffSession"
