"""What a staff user may do through the API with their admin session: Django permissions.

Two families of permissions, on the audit log's content type (``ops.OpsLog``), created after
every ``migrate`` for what exists then:

- ``ops.run_<operation>`` — "Can run <operation>", one per operation: ``run_scale``,
  ``run_delete-pod``, ``run_delete-pvc`` and one per job type (``run_pg-rebuild``, ...);
  cancelling or retrying a job needs the permission of its type;
- ``ops.namespace_<namespace>`` — "Can operate in namespace <namespace>", one per namespace
  of ``OPS_ALLOWED_NAMESPACES``.

A staff user acts as ``admin:<username>`` in the audit log, may ask for the operations they
hold ``run_*`` for, in the namespaces they hold ``namespace_*`` for (without any namespace
permission: no operation at all), and reads the audit log and jobs of those namespaces (every
namespace when they hold none). A superuser holds every permission. Grant them in the admin
(Users or Groups). Refusals are 403 ``operation_not_allowed`` (the operation) or the services'
namespace refusal, each with its audit row, as for an API key.
"""

from __future__ import annotations

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS
from rest_framework.permissions import BasePermission

from ops.extensions import operations
from ops.policy import operation_allowed

RUN_PREFIX = "run_"
NAMESPACE_PREFIX = "namespace_"


class OperationAllowed(BasePermission):
    """Refuses (403 ``operation_not_allowed``, audited by the exception handler) a caller
    whose principal may not ask for the view's ``operation``."""

    code = "operation_not_allowed"

    def has_permission(self, request, view) -> bool:
        if getattr(request.user, "operations", None) is None:
            return True  # may ask for every operation: no need to work out which this is
        operation = getattr(view, "operation", None)
        if operation is None or operation_allowed(request.user, operation):
            return True
        self.message = (
            f"{request.user} may not run {operation} (a key needs --operations {operation}, "
            f"a staff user the permission ops.{RUN_PREFIX}{operation})."
        )
        return False


def ensure_permissions(*, using: str = DEFAULT_DB_ALIAS, **kwargs) -> None:
    """Create the ``run_*`` and ``namespace_*`` permissions that do not exist yet (connected
    to ``post_migrate`` of the ops app)."""
    from django.contrib.auth.models import Permission
    from django.contrib.contenttypes.models import ContentType

    from ops.models import OpsLog

    content_type = ContentType.objects.db_manager(using).get_for_model(OpsLog)
    wanted = {f"{RUN_PREFIX}{op}": f"Can run {op}" for op in operations()}
    for ns in settings.APIOPS["ALLOWED_NAMESPACES"]:
        wanted[f"{NAMESPACE_PREFIX}{ns}"] = f"Can operate in namespace {ns}"
    existing = set(
        Permission.objects.using(using)
        .filter(content_type=content_type, codename__in=list(wanted))
        .values_list("codename", flat=True)
    )
    Permission.objects.using(using).bulk_create(
        Permission(content_type=content_type, codename=codename, name=name)
        for codename, name in wanted.items()
        if codename not in existing
    )
