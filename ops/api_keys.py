"""Creating and revoking API keys: one service for the admin and the management commands,
each change written as an ``ops_log`` row (action ``create`` / ``revoke``, kind ``api_key``,
the key's name as the object), in the same transaction as the change, so there is no key
change without its row (AuditUnavailable rolls the change back). Rotation writes ``rotate``.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from ops.actors import Actor
from ops.audit import Target, record
from ops.models import ApiKey, NewKey, OpsLogStatus

KIND_API_KEY = "api_key"
ACTION_CREATE = "create"
ACTION_REVOKE = "revoke"


def _row(actor: Actor, action: str, name: str, body: dict) -> None:
    record(
        actor_name=actor.name,
        source_ip=actor.source_ip,
        origin=actor.origin,
        target=Target(action, KIND_API_KEY, "", name, body),
        status=OpsLogStatus.SUCCESS,
        key_prefix=actor.key_prefix,
    )


def api_key_create(
    *,
    actor: Actor,
    name: str,
    namespaces: list[str] | None = None,
    expires_at: datetime | None = None,
    operations: list[str] | None = None,
) -> NewKey:
    """Issue a key for ``name`` (see :meth:`ApiKeyManager.issue`) and audit it."""
    with transaction.atomic():
        new = ApiKey.objects.issue(
            name=name, namespaces=namespaces, expires_at=expires_at, operations=operations
        )
        _row(
            actor,
            ACTION_CREATE,
            name,
            {
                "prefix": new.key.prefix,
                "namespaces": list(new.key.namespaces),
                "operations": new.key.operations,
                "expires_at": expires_at.isoformat() if expires_at else None,
            },
        )
    return new


def api_key_revoke(*, actor: Actor, keys) -> list[ApiKey]:
    """Revoke the active keys among ``keys`` (a queryset); one audit row per key revoked."""
    with transaction.atomic():
        revoked = list(keys.select_for_update().filter(active=True).order_by("pk"))
        now = timezone.now()
        for key in revoked:
            key.active = False
            key.revoked_at = now
            key.save(update_fields=["active", "revoked_at"])
            _row(actor, ACTION_REVOKE, key.name, {"prefix": key.prefix})
    return revoked
