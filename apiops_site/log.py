"""Structured logs: one JSON object per line, a request id on every line, secrets scrubbed.

Three pieces, wired by ``LOGGING`` and ``MIDDLEWARE`` in settings:

- :class:`RequestLogMiddleware` gives each request an id (the caller's ``X-Request-ID`` when it
  is a sane token, so an ingress's id follows the request; else a new one), echoes it in the
  ``X-Request-ID`` response header, and writes one access line per request (the web server's
  own access log is off: this line knows the actor and the real client address, its line not).
- :class:`RequestIdFilter` copies the current request id onto every record, whoever logs it
  (Django, DRF, our services), so all lines of one request can be found together.
- :class:`JsonFormatter` (and :class:`PlainFormatter` for a terminal) render records with every
  registered secret value and any password inside a URL replaced by ``[redacted]``: a secret
  that reaches a log line by accident (an exception message quoting a database URL, say) is
  still not written out.

The module imports no Django at import time, so settings can register secrets before Django is
configured; the middleware imports what it needs when it is built.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

REDACTED = "[redacted]"
REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_META = "HTTP_X_REQUEST_ID"
ACCESS_LOGGER = "apiops.request"

# A caller's id is kept when it is a short token (an ingress's hex id, a UUID, "abc-123.4");
# anything else (spaces, quotes, control characters, 200 bytes) is replaced, so the id is safe
# to put in a header and to grep for.
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
# scheme://user:password@host -> scheme://user:[redacted]@host
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*:)[^\s@/]+@")
# Values shorter than this are not registered: replacing "pw" everywhere would mangle the log
# without protecting anything (the URL pattern above still catches such a password in a URL).
MIN_SECRET_LENGTH = 4

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "apiops_request_id", default=None
)
_secrets: set[str] = set()

# Attributes every LogRecord has; anything else on a record came in through ``extra=``.
_RECORD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "request_id"}
)
# ``extra`` values that are objects, not data: Django passes the request to django.request's
# lines, and its repr would carry headers (X-API-Key among them).
_NEVER_LOGGED = frozenset({"request", "server_time"})


def register_secret(*values: str | None) -> None:
    """Scrub these values from every log line written from now on."""
    for value in values:
        if value and len(value) >= MIN_SECRET_LENGTH:
            _secrets.add(value)


def redact(text: str) -> str:
    """``text`` with registered secrets and URL passwords replaced by ``[redacted]``."""
    if not text:
        return text
    # Longest first, so a secret that contains another is replaced whole.
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return _URL_PASSWORD.sub(rf"\g<head>{REDACTED}@", text)


def current_request_id() -> str | None:
    """The id of the request being served in this context, or None outside a request."""
    return _request_id.get()


def request_id_from(header_value: str | None) -> str:
    """The caller's id when it is a sane token, else a new random one."""
    if header_value and _SANE_REQUEST_ID.match(header_value):
        return header_value
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Sets ``record.request_id`` (None outside a request) for the formatters."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Annotate, never drop."""
        record.request_id = _request_id.get()
        return True


def _scrub(value: object) -> object:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bool | int | float) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return redact(str(value))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, extras, exc.

    Strings are scrubbed before they are encoded, so the line stays valid JSON whatever the
    secret contains.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as a single line of JSON."""
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or _request_id.get(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS and key not in _NEVER_LOGGED and not key.startswith("_"):
                entry.setdefault(key, value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(_scrub(entry), ensure_ascii=False, default=str)


class PlainFormatter(logging.Formatter):
    """A human-readable line (for a terminal), scrubbed like the JSON one."""

    def __init__(self, fmt: str | None = None, datefmt: str | None = None, **kwargs) -> None:
        super().__init__(
            fmt or "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s",
            datefmt,
            **kwargs,
        )

    def format(self, record: logging.LogRecord) -> str:
        """The standard rendering, then scrubbed (traceback included)."""
        if not hasattr(record, "request_id"):
            record.request_id = _request_id.get()
        return redact(super().format(record))


def _actor(request) -> str | None:
    """The name of whoever the request authenticated as, without causing a lookup.

    DRF sets ``request.user`` to the API key's principal after authenticating; the admin's
    session user is a lazy object that is only named when the view already loaded it.
    """
    from django.utils.functional import empty

    user = vars(request).get("user")
    if user is None:
        return None
    wrapped = vars(user).get("_wrapped", user)
    if wrapped is None or wrapped is empty:  # a lazy user nobody has loaded
        return None
    if not getattr(wrapped, "is_authenticated", False):
        return None
    name = getattr(wrapped, "name", None)
    if isinstance(name, str):
        return name
    get_username = getattr(wrapped, "get_username", None)
    return get_username() if callable(get_username) else None


class RequestLogMiddleware:
    """Request id in, request id out, and one access line per request.

    Goes first in ``MIDDLEWARE`` so redirects and refusals by later middleware are logged and
    carry the id too. The id stays current until the response is closed (Django's
    ``request_finished``), which is after Django's own error line for the request.
    """

    def __init__(self, get_response: Callable) -> None:
        from django.core.signals import request_finished

        self.get_response = get_response
        self.log = logging.getLogger(ACCESS_LOGGER)
        request_finished.connect(_forget_request_id, dispatch_uid="apiops-request-id")

    def __call__(self, request):
        """Serve ``request`` with an id, then log it."""
        # From META, not request.headers: that mapping would be built for this alone.
        request_id = request_id_from(request.META.get(_REQUEST_ID_META))
        _request_id.set(request_id)
        request.request_id = request_id
        started = time.monotonic()
        response = self.get_response(request)
        duration_ms = round((time.monotonic() - started) * 1000, 1)
        response[REQUEST_ID_HEADER] = request_id
        self._log(request, response.status_code, duration_ms)
        return response

    def _log(self, request, status: int, duration_ms: float) -> None:
        from ops.client_ip import client_ip

        level = logging.INFO
        if status >= 500:
            level = logging.ERROR
        elif status >= 400:
            level = logging.WARNING
        # The path only: a query string can carry anything a client typed, keys included.
        path = request.path
        self.log.log(
            level,
            "%s %s %s %.1fms",
            request.method,
            path,
            status,
            duration_ms,
            extra={
                "method": request.method,
                "path": path,
                "status": status,
                "duration_ms": duration_ms,
                "actor": _actor(request),
                "source_ip": client_ip(request),
            },
        )


def _forget_request_id(**kwargs) -> None:
    _request_id.set(None)
