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


def operation_allowed(actor: Actor, operation: str) -> bool:
    """Whether ``actor``'s key may ask for ``operation`` (``approve`` included)."""
    granted = actor.operations
    if granted is None:
        return True
    if operation in granted:
        return True
    return operation != APPROVE and ALL_OPERATIONS in granted


def operation_refusal(actor: Actor, operation: str) -> str | None:
    """Why ``actor`` may not ask for ``operation``, or None when it may."""
    if operation_allowed(actor, operation):
        return None
    granted = ", ".join(actor.operations or ()) or "none"
    return (
        f"The key {actor.name!r} may not request {operation!r} (its operations: {granted}); "
        f"ask for a key with --operations {operation}."
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
