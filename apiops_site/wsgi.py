"""WSGI entry point (granian ``apiops_site.wsgi:application``).

Django's application, wrapped in two ways.

Each request's environ holds the request only. granian starts every environ from a copy of the
process environment (``granian/wsgi.py``), so ``HOME``, the ``OPS_*`` settings or a variable
named like a header (``HTTP_X_FORWARDED_FOR``) would reach Django as if they were part of the
request: what the process environment put there is taken out (:func:`request_only`).

The outcome of an audited attempt (the UPDATE of the ``pending`` row written before the
cluster was touched) is recorded once the answer has been sent: the WSGI server calls the
answer's ``close()`` after writing its body, and the outcomes are written there, before
Django's own end-of-request work. The caller waits for the operation, not for its bookkeeping
(:func:`ops.audit.outcomes_after_the_answer`).
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apiops_site.settings")

django_application = get_wsgi_application()

# The Kubernetes client is imported on first use (commands start faster without it); the web
# server takes it now rather than during its first request.
from ops import audit, k8s  # noqa: E402 - after Django is set up

k8s.preload()


#: What a server sets for the request itself, kept even when a process variable of the same
#: name and value exists (PEP 3333's CGI variables).
_REQUEST_VARIABLES = frozenset(
    {
        "REQUEST_METHOD",
        "SCRIPT_NAME",
        "PATH_INFO",
        "QUERY_STRING",
        "CONTENT_TYPE",
        "CONTENT_LENGTH",
        "SERVER_NAME",
        "SERVER_PORT",
        "SERVER_PROTOCOL",
        "SERVER_SOFTWARE",
        "GATEWAY_INTERFACE",
        "REMOTE_ADDR",
        "REMOTE_PORT",
    }
)


def request_only(environ: dict, process_env: dict[str, str]) -> dict:
    """``environ`` without the entries the process environment ``process_env`` put there.

    An entry is the process's when its name and value are those of a process variable, except
    the CGI variables a server sets for every request. A header that happens to carry the
    value of a process variable of its name is dropped with it; nothing else of the request is.
    """
    for name, value in process_env.items():
        if environ.get(name) == value and name not in _REQUEST_VARIABLES:
            del environ[name]
    return environ


#: The process environment as granian copied it into every environ (its workers take that copy
#: when they start, after importing this module).
_process_env = dict(os.environ)


class _ThenRecordOutcomes:
    """The answer's iterable; its ``close()`` records the attempts' outcomes, then closes it."""

    def __init__(self, answer, later) -> None:
        self._answer = answer
        self._later = later

    def __iter__(self):
        return iter(self._answer)

    def close(self) -> None:
        try:
            audit.record_outcomes(self._later)
        finally:
            close = getattr(self._answer, "close", None)
            if close is not None:
                close()


def application(environ, start_response):
    """Django's answer to the request alone; the outcomes of its audited attempts written when
    it is closed."""
    request_only(environ, _process_env)
    with audit.outcomes_after_the_answer() as later:
        try:
            answer = django_application(environ, start_response)
        except BaseException:
            audit.record_outcomes(later)
            raise
    if not later:
        return answer  # nothing waits (and a file answer keeps the server's sendfile)
    return _ThenRecordOutcomes(answer, later)
