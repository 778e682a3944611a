"""The Content-Security-Policy of every answer (django-csp), with a fixed one for JSON.

A page a browser renders (the admin, the browsable API, the docs) gets the configured policy
(settings ``CONTENT_SECURITY_POLICY``). A JSON answer has nothing for a browser to load or
run: it gets ``default-src 'none'; frame-ancestors 'none'`` (what OWASP recommends for APIs),
stricter than the pages' and a constant, where django-csp builds its policy anew for every
answer — the API's answers are the request path, where that was a measurable part of the time.
"""

from __future__ import annotations

from csp.constants import HEADER
from csp.middleware import CSPMiddleware as _DjangoCSPMiddleware

#: The policy of a JSON answer.
JSON_POLICY = "default-src 'none'; frame-ancestors 'none'"


class CSPMiddleware(_DjangoCSPMiddleware):
    """django-csp's middleware; a JSON answer gets :data:`JSON_POLICY` (unless its view set
    one of its own)."""

    def process_response(self, request, response):
        content_type = response.get("Content-Type", "")
        if content_type.startswith("application/json") and HEADER not in response:
            response[HEADER] = JSON_POLICY
            return response
        return super().process_response(request, response)
