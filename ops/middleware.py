"""A database connection error met around a view is a 503, not a 500 with a traceback.

DRF's exception handler (:func:`ops.handlers.exception_handler`) sees only what a DRF view
raises. A view with a request transaction (``ATOMIC_REQUESTS``: the jobs views, the schema and
docs, the admin) meets the database before that: Django opens the transaction around the whole
view, so a database that is down fails there — before authentication, before DRF — and again
when the transaction commits. Django hands such an error to ``process_exception``; here it gets
the same answer the handler gives (HTML under /admin/).
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from ops.errors import DATABASE_UNAVAILABLE
from ops.handlers import database_unavailable_response


class DatabaseUnavailableMiddleware:
    """Answer 503 ``database_unavailable`` to a database connection error a view let out."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        """Pass the request on; only exceptions are this middleware's business."""
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        """The 503 for a database connection error; None (Django's handling) for the rest."""
        if isinstance(exception, DATABASE_UNAVAILABLE):
            return database_unavailable_response(request, exception)
        return None
