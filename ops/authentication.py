"""``X-API-Key`` authentication for DRF.

Accepts the bootstrap key (``OPS_API_KEY`` / the ``api-key`` secret file, acting as
``OPS_API_KEY_ACTOR``) and the usable rows of :class:`~ops.models.ApiKey`. Comparisons are
constant-time. Before looking at the key, the caller's recent failures are counted: past
``OPS_AUTH_FAILURE_LIMIT`` within the window every request from that source is 429, even with
a correct key, so guessing cannot be confirmed while throttled.

Failures are written to the audit log by the exception handler (``denied``, no actor).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS
from django.db import Error as DatabaseError
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission

from ops.actors import Actor
from ops.audit import audit_alias
from ops.client_ip import client_ip
from ops.db import read_as_health_check
from ops.errors import DATABASE_UNAVAILABLE, AuditUnavailable, DatabaseUnavailable
from ops.models import ApiKey, keys_equal
from ops.policy import DEFAULT_OPERATIONS
from ops.selectors import recent_auth_failures

HEADER = "HTTP_X_API_KEY"
_LAST_USED_RESOLUTION = timedelta(seconds=60)


@dataclass(frozen=True)
class ApiPrincipal:
    """``request.user`` for an API key: the key's name and namespace scope."""

    name: str
    namespaces: tuple[str, ...] | None
    key_id: int | None = None  # None for the bootstrap key
    key_prefix: str | None = None
    operations: tuple[str, ...] | None = None  # None: everything (the bootstrap key)

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False

    def __str__(self) -> str:
        return self.name


class AuthThrottled(exceptions.Throttled):
    """429: too many failed authentications from this source."""

    default_detail = "Too many failed authentications from this address."
    default_code = "throttled"


def actor_for(request) -> Actor:
    """The :class:`Actor` of an authenticated DRF request."""
    principal: ApiPrincipal = request.user
    return Actor(
        name=principal.name,
        source_ip=client_ip(request),
        namespaces=principal.namespaces,
        key_prefix=principal.key_prefix,
        operations=principal.operations,
    )


def _touch(key: ApiKey) -> None:
    """Record use at most once a minute, through the autocommit audit connection (no row lock
    held for the rest of the request)."""
    now = timezone.now()
    if key.last_used_at is not None and now - key.last_used_at < _LAST_USED_RESOLUTION:
        return
    ApiKey.objects.using(audit_alias()).filter(pk=key.pk).update(last_used_at=now)


class ApiKeyAuthentication(BaseAuthentication):
    """Authenticate by the ``X-API-Key`` header."""

    def authenticate(self, request):
        """Return ``(ApiPrincipal, None)``, None when there is no key, or raise 401/429."""
        conf = settings.APIOPS
        limit = conf["AUTH_FAILURE_LIMIT"]
        source = client_ip(request)
        try:
            # The first statement of an API request: it also checks the audit connection.
            failures = read_as_health_check(
                audit_alias(), lambda: recent_auth_failures(source, limit=limit)
            )
        except DatabaseError as e:
            raise AuditUnavailable() from e
        if failures >= limit:
            raise AuthThrottled(wait=conf["AUTH_FAILURE_WINDOW"])

        raw = request.META.get(HEADER, "")
        if not raw:
            return None  # IsAuthenticated then answers 401 "not_authenticated"
        bootstrap = conf["API_KEY"]
        if bootstrap and keys_equal(raw, bootstrap):
            return ApiPrincipal(name=conf["API_KEY_ACTOR"], namespaces=None), None
        try:
            key = read_as_health_check(DEFAULT_DB_ALIAS, lambda: ApiKey.objects.for_raw_key(raw))
            if key is not None:
                _touch(key)
        except DATABASE_UNAVAILABLE as e:
            # Raised as an API error, DRF counts the request as not authenticated; a driver
            # error would leave it undecided, to be looked up again against the same outage.
            raise DatabaseUnavailable() from e
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid API key.")
        return ApiPrincipal(
            name=key.name,
            namespaces=tuple(key.namespaces) or None,
            key_id=key.pk,
            key_prefix=key.prefix,
            operations=tuple(key.operations) if key.operations is not None else DEFAULT_OPERATIONS,
        ), None

    def authenticate_header(self, request) -> str:
        """Makes DRF answer 401 (not 403) and tells the client which header to send."""
        return 'ApiKey realm="apiops", header="X-API-Key"'


class IsApiKeyOrStaff(BasePermission):
    """An API key, or the admin session of a staff user: for the OpenAPI schema and docs only.

    A browser cannot send ``X-API-Key`` when it opens ``/api/docs/``, so a staff member logged
    in to the admin may read the docs; the operations themselves still take the key alone
    (entered with Swagger UI's "Authorize" button). Any other logged-in user is refused (403).
    """

    def has_permission(self, request, view) -> bool:
        user = request.user
        if isinstance(user, ApiPrincipal):
            return True
        return bool(user and user.is_authenticated and user.is_active and user.is_staff)
