"""Kubernetes `Status` errors with the reasons and messages a real API server sends.

Clients branch on `reason` and `code`, and people read `message`, so both follow
k8s.io/apimachinery/pkg/api/errors/errors.go word for word where it matters.
"""

from __future__ import annotations

from typing import Any

# HTTP code -> (reason, message used when nothing more specific is known), as in
# apimachinery's NewGenericServerResponse.
_GENERIC: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "the server rejected our request for an unknown reason"),
    401: ("Unauthorized", "the server has asked for the client to provide credentials"),
    403: ("Forbidden", "forbidden"),
    404: ("NotFound", "the server could not find the requested resource"),
    405: ("MethodNotAllowed", "the server does not allow this method on the requested resource"),
    406: (
        "NotAcceptable",
        "the server was unable to respond with a content type that the client supports",
    ),
    409: ("Conflict", "the server reported a conflict"),
    410: ("Expired", "the resource has expired"),
    413: ("RequestEntityTooLarge", "the request entity is too large"),
    415: ("UnsupportedMediaType", "the server was unable to handle the media type in the request"),
    422: ("Invalid", "the server rejected our request due to an error in our request"),
    429: (
        "TooManyRequests",
        "the server has received too many requests and has asked us to try again later",
    ),
    500: (
        "InternalError",
        'an error on the server ("unknown") has prevented the request from succeeding',
    ),
    502: ("InternalError", "the server responded with a bad gateway"),
    503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
    504: (
        "Timeout",
        "the server was unable to return a response in the time allotted, "
        "but may still be processing the request",
    ),
}


def status_body(
    code: int,
    reason: str,
    message: str,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build a `Status` object as the API server serialises it."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
    }
    if details is not None:
        body["details"] = details
    body["code"] = code
    return body


class ApiError(Exception):
    """A request the API server refuses; rendered as a `Status` with `code`."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The `Status` object to send."""
        return status_body(self.code, self.reason, self.message, self.details)

    def __repr__(self) -> str:
        return f"ApiError({self.code}, {self.reason!r}, {self.message!r})"


def qualified(resource: str, group: str) -> str:
    """`statefulsets.apps`, or `pods` for the core group."""
    return f"{resource}.{group}" if group else resource


def _details(name: str, group: str, kind: str, **extra: Any) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    details["kind"] = kind
    details.update(extra)
    return details


def not_found(resource: str, group: str, name: str) -> ApiError:
    """404 `statefulsets.apps "pg" not found`."""
    return ApiError(
        404,
        "NotFound",
        f'{qualified(resource, group)} "{name}" not found',
        _details(name, group, resource),
    )


def no_route() -> ApiError:
    """404 for a path the server does not serve at all."""
    return ApiError(404, "NotFound", _GENERIC[404][1], {})


def already_exists(resource: str, group: str, name: str) -> ApiError:
    """409 AlreadyExists, as from a create of an existing name."""
    return ApiError(
        409,
        "AlreadyExists",
        f'{qualified(resource, group)} "{name}" already exists',
        _details(name, group, resource),
    )


def conflict(resource: str, group: str, name: str, why: str) -> ApiError:
    """409 Conflict with apimachinery's `Operation cannot be fulfilled` wording."""
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {qualified(resource, group)} "{name}": {why}',
        _details(name, group, resource),
    )


STALE = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


def stale(resource: str, group: str, name: str) -> ApiError:
    """409 for an update that carries an out-of-date resourceVersion."""
    return conflict(resource, group, name, STALE)


def invalid(kind: str, group: str, name: str, causes: list[dict[str, str]]) -> ApiError:
    """422 Invalid; `causes` are `{"reason", "message", "field"}` items as in `details.causes`."""
    gk = f"{kind}.{group}" if group else kind
    parts = [f"{c['field']}: {c['message']}" if c.get("field") else c["message"] for c in causes]
    summary = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    return ApiError(
        422,
        "Invalid",
        f'{gk} "{name}" is invalid: {summary}',
        _details(name, group, kind, causes=causes),
    )


def cause(kind: str, field: str, message: str) -> dict[str, str]:
    """One `details.causes` entry. `kind` is the field.ErrorType (Required, Invalid, ...)."""
    reason = {
        "Required": "FieldValueRequired",
        "Invalid": "FieldValueInvalid",
        "Forbidden": "FieldValueForbidden",
        "NotSupported": "FieldValueNotSupported",
        "Duplicate": "FieldValueDuplicate",
        "TooLong": "FieldValueTooLong",
    }[kind]
    return {"reason": reason, "message": message, "field": field}


def bad_request(message: str) -> ApiError:
    """400 BadRequest with the given message."""
    return ApiError(400, "BadRequest", message)


def method_not_allowed() -> ApiError:
    """405, for a verb the resource (or subresource) does not support."""
    return ApiError(405, "MethodNotAllowed", _GENERIC[405][1], {})


def unsupported_media_type(content_type: str, accepted: list[str]) -> ApiError:
    """415 as from the apiserver's negotiation of the request body."""
    return ApiError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        + ", ".join(accepted),
        {},
    )


def not_acceptable() -> ApiError:
    """406 when no acceptable response media type is on offer."""
    return ApiError(
        406,
        "NotAcceptable",
        "only the following media types are accepted: application/json, application/yaml",
        {},
    )


def forbidden(resource: str, group: str, name: str, why: str) -> ApiError:
    """403 Forbidden: `pods "x" is forbidden: <why>`."""
    target = f'{qualified(resource, group)} "{name}"' if name else qualified(resource, group)
    return ApiError(
        403, "Forbidden", f"{target} is forbidden: {why}", _details(name, group, resource)
    )


def expired(message: str) -> ApiError:
    """410 Expired, used for too-old resource versions."""
    return ApiError(410, "Expired", message)


def internal(message: str) -> ApiError:
    """500 InternalError; never carries a traceback."""
    return ApiError(
        500,
        "InternalError",
        f"Internal error occurred: {message}",
        {"causes": [{"message": message}]},
    )


def generic(
    code: int,
    message: str | None = None,
    reason: str | None = None,
    retry_after: int | None = None,
) -> ApiError:
    """Any status code with the reason and wording the real server uses for it.

    Used by fault injection, so a 429 or 503 reads like the real thing and carries
    `Retry-After` both as a header and as `details.retryAfterSeconds`.
    """
    default_reason, default_message = _GENERIC.get(code, ("", f"status code {code}"))
    if code >= 500 and code not in _GENERIC:
        default_reason = "InternalError"
    details: dict[str, Any] = {}
    headers: dict[str, str] = {}
    if retry_after is not None:
        details["retryAfterSeconds"] = int(retry_after)
        headers["Retry-After"] = str(int(retry_after))
    return ApiError(
        code,
        reason or default_reason,
        message or default_message,
        details,
        headers,
    )
