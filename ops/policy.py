"""Namespace and operation policy: which namespaces an actor may touch, what it may ask for,
and which requests wait for a second person's approval.

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


#: The permission that lets a key approve or reject requests held for approval.
APPROVE = "approve"
#: In a key's operations: every operation (but not ``approve``, which is only ever named).
ALL_OPERATIONS = "all"
#: What a key made before permissions existed may do: every operation, not ``approve``.
DEFAULT_OPERATIONS = (ALL_OPERATIONS,)


def operation_allowed(principal, operation: str, namespace: str | None = None) -> bool:
    """Whether ``principal`` (an :class:`Actor`, or ``request.user`` of an API request) may ask
    for ``operation`` (``scale``, ``delete-pod``, ``delete-pvc``, a job type, or ``approve``)
    in ``namespace``.

    The one place an operation is allowed or refused per caller. ``operations`` None (the
    bootstrap key, the CLI, job steps): everything. Else the names it holds, ``all`` standing
    for every operation but ``approve``, which is only ever given by name (a key's
    ``--operations``; a staff session's ``ops.run_*`` and ``ops.decide_approval``
    permissions). A principal with a namespace scope may act only there; ``namespace`` None
    means the request names none (yet). The namespace policy itself
    (``OPS_ALLOWED_NAMESPACES``) is checked by the services.
    """
    granted = getattr(principal, "operations", None)
    if (
        granted is not None
        and operation not in granted
        and (operation == APPROVE or ALL_OPERATIONS not in granted)
    ):
        return False
    scope = getattr(principal, "namespaces", None)
    return namespace is None or not scope or namespace in scope


def operation_refusal(actor: Actor, operation: str) -> str | None:
    """Why ``actor`` may not ask for ``operation``, or None when it may."""
    if operation_allowed(actor, operation):
        return None
    granted = ", ".join(sorted(actor.operations or ())) or "none"
    return (
        f"{actor.name!r} may not request {operation!r} (its operations: {granted}); a key "
        f"needs --operations {operation}, a staff user the permission "
        + ("ops.decide_approval." if operation == APPROVE else f"ops.run_{operation}.")
    )


def _matches(pattern: str, value: str) -> bool:
    return pattern == "*" or pattern == value


def approval_required(namespace: str, operation: str) -> bool:
    """Whether ``OPS_APPROVAL_REQUIRED`` holds requests for ``operation`` in ``namespace``."""
    for rule in settings.APIOPS["APPROVAL_REQUIRED"]:
        ns, _, op = rule.partition(":")
        if _matches(ns, namespace) and _matches(op, operation):
            return True
    return False
