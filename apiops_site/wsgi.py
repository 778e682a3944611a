"""WSGI entry point (gunicorn ``apiops_site.wsgi:application``).

Django's application, wrapped so that the outcome of an audited attempt (the UPDATE of the
``pending`` row written before the cluster was touched) is recorded once the answer has been
sent: the WSGI server calls the answer's ``close()`` after writing its body, and the outcomes
are written there, before Django's own end-of-request work. The caller waits for the
operation, not for its bookkeeping (:func:`ops.audit.outcomes_after_the_answer`).
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apiops_site.settings")

django_application = get_wsgi_application()

# The Kubernetes client is imported on first use (commands start faster without it); the web
# server takes it now rather than during its first request.
from ops import audit, k8s  # noqa: E402 - after Django is set up

k8s.preload()


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
    """Django's answer; the outcomes of its audited attempts written when it is closed."""
    with audit.outcomes_after_the_answer() as later:
        try:
            answer = django_application(environ, start_response)
        except BaseException:
            audit.record_outcomes(later)
            raise
    if not later:
        return answer  # nothing waits (and a file answer keeps the server's sendfile)
    return _ThenRecordOutcomes(answer, later)
