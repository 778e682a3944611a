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
