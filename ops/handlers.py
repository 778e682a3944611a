"""Error rendering: one DRF exception handler, and JSON for Django-level errors.

Every error answer is ``{"detail": "...", "code": "..."}`` (plus ``errors`` for field errors),
never an HTML page or a stack trace. Like DRF's handler, this one sets ``Retry-After`` and
``WWW-Authenticate`` and rolls back the request transaction — but only where the view has one
(DRF marks any open transaction on an ATOMIC_REQUESTS database, encode/django-rest-framework
#6921, which for a view without a request transaction would be a caller's). It also writes the
audit row for refusals that happen before a service runs: a missing or wrong key, throttling,
and malformed input on an operation's path. Services write their own rows and mark their
errors ``audited``.

A database that cannot be reached is an outage, not a bug: 503 ``database_unavailable`` with
one warning line, never a 500 with a traceback — here for errors inside a DRF view, and through
:mod:`ops.middleware` for those around it (a request transaction that cannot begin or commit)
and in the admin.
"""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.db import DatabaseError, connections, transaction
from django.http import Http404, HttpResponse, JsonResponse
from django.utils.html import escape
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.response import Response

from ops.audit import Target, audit_alias, record
from ops.authentication import note_failure
from ops.client_ip import client_ip
from ops.errors import (
    DATABASE_UNAVAILABLE,
    BodyNotJson,
    BodyTooLarge,
    DatabaseUnavailable,
    InvalidInput,
    InvalidQuery,
    OpsError,
)
from ops.models import OpsLogStatus

logger = logging.getLogger(__name__)

_AUTH_ERRORS = (exceptions.NotAuthenticated, exceptions.AuthenticationFailed, exceptions.Throttled)


def _browsable_form(request, response) -> bool:
    """A staff session's browser asking for an operation's page (see :class:`JsonErrors`)."""
    return (
        response.status_code == status.HTTP_405_METHOD_NOT_ALLOWED
        and request.method == "GET"
        and isinstance(getattr(request, "accepted_renderer", None), BrowsableAPIRenderer)
        and isinstance(request.successful_authenticator, SessionAuthentication)
    )


class BadRequest(exceptions.APIException):
    """400 for requests Django itself finds malformed (too large, suspicious)."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "bad_request"
    default_detail = "Malformed request."


class JsonErrors:
    """Mixin for DRF views: an error answer is JSON ``{detail, code}`` whatever format the
    request negotiated (the schema's YAML, the docs page, the browsable API's HTML).

    One exception: a staff user's browser opening an operation's URL (a GET on a POST or
    DELETE endpoint: 405) gets the browsable API's page, which is the form to send the
    operation with (the page shows the 405's JSON too).
    """

    def finalize_response(self, request, response, *args, **kwargs):
        if (
            response.status_code >= 400
            and getattr(response, "data", None) is not None
            and not _browsable_form(request, response)
        ):
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)


def _normalise(exc: Exception, request) -> Exception:
    if isinstance(exc, Http404):
        return exceptions.NotFound()
    if isinstance(exc, PermissionDenied):
        return exceptions.PermissionDenied()
    if isinstance(exc, exceptions.UnsupportedMediaType):
        sent = getattr(request, "content_type", "") or "no content type"
        return BodyNotJson(
            f"The body must be JSON (Content-Type: application/json); this one was sent as {sent}."
        )
    if isinstance(exc, RequestDataTooBig):
        return BodyTooLarge()
    if isinstance(exc, SuspiciousOperation):
        return BadRequest(str(exc) or None)
    return exc


def error_body(exc: exceptions.APIException) -> dict:
    """The JSON body of an API error."""
    if isinstance(exc, InvalidInput):
        code = getattr(exc.detail, "code", None) or exc.default_code
        return {"detail": str(exc.detail), "code": code, "errors": exc.errors}
    if isinstance(exc.detail, dict | list):
        errors = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        return {"detail": "Invalid input.", "code": "invalid", "errors": errors}
    code = getattr(exc.detail, "code", None) or exc.default_code
    return {"detail": str(exc.detail), "code": code}


def _error_text(body: dict) -> str:
    text = body["detail"]
    errors = body.get("errors")
    if isinstance(errors, dict):
        parts = []
        for field, messages in errors.items():
            msgs = messages if isinstance(messages, list) else [messages]
            parts.append(f"{field}: {' '.join(str(m) for m in msgs)}")
        text = f"{text} {'; '.join(parts)}"
    return text


def _audit_refusal(exc: Exception, body: dict, response: Response, context: dict) -> None:
    """Write the one row of an attempt refused before any service ran."""
    if getattr(exc, "audited", False):
        return
    view, request = context.get("view"), context.get("request")
    if request is None:
        return
    is_operation = getattr(view, "audits_refusals", False)
    # The principal, when authentication got that far (DRF keeps it in Request._user).
    principal = vars(request).get("_user")
    # A keyed caller's refused query (an unknown, repeated or malformed parameter) is an
    # attempt too, on a read as on an operation: someone probing shows up in the log.
    refused_query = isinstance(exc, InvalidQuery) and principal is not None
    if not (is_operation or refused_query or isinstance(exc, _AUTH_ERRORS)):
        return  # not an operation, not a refused query, not an authentication failure
    target_of = getattr(view, "audit_target", None)
    target = (
        target_of()
        if target_of
        else Target(request.method.lower(), "endpoint", "", request.path, None)
    )
    refused = isinstance(exc, (*_AUTH_ERRORS, exceptions.PermissionDenied))
    source = client_ip(request)
    try:
        # One transaction: the row of a failed authentication and, when it locks the source
        # out, the auth.lockout notification.
        with transaction.atomic(using=audit_alias()):
            record(
                actor_name=getattr(principal, "name", None),
                source_ip=source,
                origin="api",
                target=target,
                status=OpsLogStatus.DENIED if refused else OpsLogStatus.ERROR,
                error_message=_error_text(body),
                code=body["code"],
                http_status=response.status_code,
                key_prefix=getattr(principal, "key_prefix", None),
            )
            if principal is None:
                note_failure(source, body["code"])
    except (OpsError, DatabaseError):
        # The answer is already a refusal; nothing was done. The failure is logged by audit.
        logger.error("refused %s %s could not be audited", request.method, request.path)


def set_request_rollback(request) -> None:
    """Mark the request transaction of each ATOMIC_REQUESTS database for rollback, skipping
    the databases the view opted out of with ``transaction.non_atomic_requests``."""
    view = getattr(getattr(request, "resolver_match", None), "func", None)
    non_atomic = getattr(view, "_non_atomic_requests", set())
    for db in connections.all(initialized_only=True):
        if (
            db.settings_dict["ATOMIC_REQUESTS"]
            and db.in_atomic_block
            and db.alias not in non_atomic
        ):
            db.set_rollback(True)


def database_unavailable(exc: Exception, request) -> DatabaseUnavailable:
    """The 503 for a database connection error (or the one already made of it), logged as one
    warning line naming the driver's error: an outage, not a bug, so no traceback."""
    if isinstance(exc, DatabaseUnavailable):
        error, cause = exc, exc.__cause__ or exc
    else:
        error, cause = DatabaseUnavailable(), exc
    logger.warning(
        "database unavailable: %s %s answered 503 (%s: %s)",
        getattr(request, "method", "?"),
        getattr(request, "path", "?"),
        type(cause).__name__,
        " ".join(str(cause).split()),
    )
    return error


def exception_handler(exc: Exception, context: dict) -> Response:
    """DRF's handling with our body shape, JSON 500s, and audit rows for early refusals."""
    request = context.get("request")
    exc = _normalise(exc, request)
    if isinstance(exc, (*DATABASE_UNAVAILABLE, DatabaseUnavailable)):
        exc = database_unavailable(exc, request)
    set_request_rollback(request)
    if isinstance(exc, exceptions.APIException):
        headers = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        body = error_body(exc)
        response = Response(body, status=exc.status_code, headers=headers)
    else:
        logger.error(
            "unhandled error on %s %s",
            getattr(request, "method", "?"),
            getattr(request, "path", "?"),
            exc_info=(type(exc), exc, exc.__traceback__),
        )
        body = {"detail": "Internal server error.", "code": "server_error"}
        response = Response(body, status=status.HTTP_500_INTERNAL_SERVER_ERROR)
    _audit_refusal(exc, body, response, context)
    return response


# --- Django-level errors (no DRF view involved: unknown URL, crash in middleware) ---------------


def _is_admin(request) -> bool:
    return request.path.startswith("/admin/")


def json_404(request, exception=None):
    """404 for unknown URLs, as JSON (HTML only under /admin/)."""
    if _is_admin(request):
        return defaults.page_not_found(request, exception)
    return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)


def json_400(request, exception=None):
    """400 for requests Django rejects itself (bad Host header, oversized body)."""
    if _is_admin(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        error = BodyTooLarge()
        return JsonResponse(error_body(error), status=error.status_code)
    return JsonResponse({"detail": "Bad request.", "code": "bad_request"}, status=400)


def json_403(request, exception=None):
    """403 raised outside DRF (CSRF on admin, PermissionDenied)."""
    if _is_admin(request):
        return defaults.permission_denied(request, exception)
    return JsonResponse({"detail": "Forbidden.", "code": "forbidden"}, status=403)


def database_unavailable_response(request, exc: Exception) -> HttpResponse:
    """503 for a database connection error raised where DRF's handler cannot see it (see
    :mod:`ops.middleware`): JSON, or a plain HTML page under /admin/."""
    error = database_unavailable(exc, request)
    if _is_admin(request):
        page = defaults.ERROR_PAGE_TEMPLATE % {
            "title": "Service Unavailable (503)",
            "details": escape(str(error.detail)),
        }
        return HttpResponse(page, status=error.status_code)
    return JsonResponse(error_body(error), status=error.status_code)


def json_500(request):
    """500 outside DRF: never a stack trace."""
    if _is_admin(request):
        return defaults.server_error(request)
    return JsonResponse({"detail": "Internal server error.", "code": "server_error"}, status=500)
