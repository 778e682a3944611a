"""The OpenAPI document (drf-spectacular): every status code, the X-API-Key scheme, and the
Idempotency-Key header and the staff session.

:class:`AutoSchema` lists, for every operation, each error status it can answer with the
error body ``{detail, code, errors?}`` (:class:`~ops.serializers.ErrorSerializer`), derived
from what the view is: every endpoint refuses unknown and repeated query parameters (400); an
authenticated one answers 401, 403, 429 and 503 (the throttle and the audit log live in the
database); a path with a parameter 404; a write 409, and with a body 413 and 415; a view that
calls the Kubernetes API (``reaches_cluster``) 404, 409, 502 and 504 as the cluster answers;
a POST or DELETE under ``/ops/`` 422 (an Idempotency-Key reused, :func:`idempotency_key_header`).

The views serving the document are in :mod:`ops.schema_views` (DRF loads this module while
its settings load, before any view class can be defined).
"""

from __future__ import annotations

from drf_spectacular import openapi
from drf_spectacular.authentication import SessionScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse

from ops.serializers import ErrorSerializer

#: What each error status means on this API (SPEC "Status codes").
ERROR_STATUSES = {
    400: "Bad input: field errors in `errors`, or an unknown or repeated query parameter.",
    401: "The X-API-Key header is missing or the key is wrong.",
    403: "Not allowed: the namespace, or the operation, is outside this key's permissions.",
    404: "No such object, in the cluster or in our tables.",
    409: "Conflict: the cluster said so, a guard refused, or an active job holds the target.",
    422: "`idempotency_key_reused`: the Idempotency-Key was used for a different request.",
    413: "The request body is larger than the API accepts.",
    415: "The body is not JSON (Content-Type: application/json).",
    429: "Too many failed authentications from this address; retry after Retry-After seconds.",
    502: "The Kubernetes API failed or refused our service account.",
    503: "The audit log or the database cannot be reached: nothing was done (fail closed).",
    504: "The Kubernetes API timed out.",
}
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_HEADERS = {
    401: {
        "WWW-Authenticate": {
            "description": "Which header carries the key.",
            "schema": {"type": "string"},
        }
    },
    429: {
        "Retry-After": {
            "description": "Seconds until requests from this address are heard again.",
            "schema": {"type": "integer"},
        }
    },
}


def reaches_cluster(view) -> bool:
    """Whether this view's action calls the Kubernetes API (``reaches_cluster`` on the view:
    True, or the names of the actions that do)."""
    declared = getattr(view, "reaches_cluster", False)
    if isinstance(declared, bool):
        return declared
    return getattr(view, "action", None) in declared


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's schema, with every error status each operation can answer."""

    def error_statuses(self) -> list[int]:
        """The error statuses of this operation (see the module docstring)."""
        codes = {400}
        if self.get_auth():
            codes |= {401, 403, 429, 503}
        if "{" in self.path:
            codes.add(404)
        if self.method in _BODY_METHODS:
            codes |= {409, 413, 415}
            if self.path.startswith("/ops/") and self.method in ("POST", "DELETE"):
                codes.add(422)  # the Idempotency-Key (ops.idempotency)
        if reaches_cluster(self.view):
            codes |= {404, 409, 502, 504}
        return sorted(codes)

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code in self.error_statuses():
            if str(code) in responses:
                continue
            response = self._get_response_for_code(
                OpenApiResponse(ErrorSerializer, description=ERROR_STATUSES[code]),
                str(code),
                media_types=["application/json"],
                direction=direction,
            )
            if code in _HEADERS:
                response["headers"] = _HEADERS[code]
            responses[str(code)] = response
        return responses


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
