"""Namespace policy: which namespaces an actor may touch.

Checked inside the services, so the API, the CLI and job steps all get it. The allowed set is
``OPS_ALLOWED_NAMESPACES`` intersected with the key's own scope (an empty scope means no
narrowing).
"""

from __future__ import annotations

from django.conf import settings

from ops.actors import Actor


def allowed_namespaces(actor: Actor) -> frozenset[str]:
    """The namespaces ``actor`` may touch."""
    allowed = frozenset(settings.APIOPS["ALLOWED_NAMESPACES"])
    if actor.namespaces:
        allowed &= frozenset(actor.namespaces)
    return allowed


def namespace_refusal(actor: Actor, namespace: str) -> str | None:
    """Why ``actor`` may not touch ``namespace``, or None when it may."""
    if namespace not in settings.APIOPS["ALLOWED_NAMESPACES"]:
        return f"Namespace {namespace!r} is not in the allowed namespaces."
    if actor.namespaces and namespace not in actor.namespaces:
        return f"Namespace {namespace!r} is outside the scope of the key {actor.name!r}."
    return None


def operation_allowed(principal, operation: str, namespace: str | None = None) -> bool:
    """Whether ``principal`` (``request.user`` of an API request) may ask for ``operation``
    (``scale``, ``delete-pod``, ``delete-pvc`` or a job type) in ``namespace``.

    The one place an operation is allowed or refused per caller: a principal without an
    ``operations`` set (the bootstrap key, the CLI) may ask for every operation; one with a set
    only for those in it. A principal whose ``namespaces`` is a tuple may act only there (an
    empty tuple: nowhere); ``namespace`` None means the request names none (yet). The
    namespace policy itself (``OPS_ALLOWED_NAMESPACES``) is still checked by the services.
    """
    allowed = getattr(principal, "operations", None)
    if allowed is not None and operation not in allowed:
        return False
    scope = getattr(principal, "namespaces", None)
    return namespace is None or scope is None or namespace in scope
