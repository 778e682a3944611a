"""Liveness and readiness probes (no authentication, never cached)."""

from __future__ import annotations

import logging

from django.db import Error as DatabaseError
from django.db import connections, transaction
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from ops import k8s
from ops.audit import audit_alias
from ops.extensions import readiness_info
from ops.handlers import JsonErrors
from ops.query import StrictQueryParams

logger = logging.getLogger(__name__)


def check_database() -> str | None:
    """None when both database connections (request and audit) answer, else what failed.

    The answer is served without authentication, so it names the connection and the exception
    class only: the driver's message (host, port, user name) goes to the log, for operators.
    """
    for alias in ("default", audit_alias()):
        try:
            with connections[alias].cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchone()
        except DatabaseError as e:
            logger.warning("readiness: database connection %r failed: %s", alias, e)
            return f"{alias}: unavailable ({type(e).__name__})"
    return None


def _info(name: str, provider) -> dict:
    """One registered piece of readiness information; a database error is shown, not raised."""
    try:
        return provider()
    except DatabaseError as e:
        logger.warning("readiness: cannot read %s: %s", name, e)
        return {"error": f"unavailable ({type(e).__name__})"}


def check_kubernetes() -> str | None:
    """None when the Kubernetes API answers ``GET /version``, else what failed.

    Like :func:`check_database`, the answer names the kind of failure only: the gateway's
    message (the API server's address, the service account's name) goes to the log.
    """
    try:
        k8s.ping()
    except k8s.K8sError as e:
        logger.warning("readiness: the Kubernetes API failed: %s", e)
        what = "timed out" if isinstance(e, k8s.K8sTimeout) else "unavailable"
        return f"{what} ({type(e).__name__}); the server log says why"
    return None


@method_decorator(never_cache, name="dispatch")
class _Probe(JsonErrors, StrictQueryParams, APIView):
    """A probe: no authentication, JSON only, never cached, no request transaction."""

    authentication_classes = ()
    permission_classes = (AllowAny,)
    renderer_classes = (JSONRenderer,)

    @classmethod
    def as_view(cls, **initkwargs):
        return transaction.non_atomic_requests(super().as_view(**initkwargs))


class LiveView(_Probe):
    """``GET /health/live``."""

    @extend_schema(responses={200: OpenApiTypes.OBJECT}, auth=[])
    def get(self, request) -> Response:
        """200 while the process serves requests."""
        return Response({"status": "ok"})


class ReadyView(_Probe):
    """``GET /health/ready``."""

    @extend_schema(responses={200: OpenApiTypes.OBJECT, 503: OpenApiTypes.OBJECT}, auth=[])
    def get(self, request) -> Response:
        """200 when the database and the Kubernetes API answer; 503 naming what failed.

        ``info`` adds the jobs pump's last run, which does not count towards readiness.
        """
        checks = {"database": check_database(), "kubernetes": check_kubernetes()}
        failed = [name for name, error in checks.items() if error]
        info = {
            name: {"error": "database unavailable"} if checks["database"] else _info(name, provider)
            for name, provider in readiness_info().items()
        }
        body = {
            "status": "unavailable" if failed else "ok",
            "checks": {
                name: ({"ok": False, "error": error} if error else {"ok": True})
                for name, error in checks.items()
            },
            "info": info,
        }
        if failed:
            body["detail"] = f"not ready: {', '.join(failed)}"
            body["code"] = "not_ready"
            return Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response(body)


live = LiveView.as_view()
ready = ReadyView.as_view()
