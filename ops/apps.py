"""App config for ops."""

from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Audited Kubernetes primitives, API keys, the audit log, metrics and notifications."""

    name = "ops"
    verbose_name = "Operations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from axes.signals import user_locked_out
        from django.contrib.auth.signals import user_logged_in, user_login_failed
        from django.db.models.signals import post_migrate

        # schema registers the OpenAPI auth extension; approval_admin and notification_admin
        # register their admins (they build on ops.admin's).
        from ops import (  # noqa: F401
            approval_admin,
            approvals,
            logins,
            metrics,
            notification_admin,
            notifications,
            schema,
        )
        from ops.permissions import ensure_permissions

        # The operations' permissions for staff sessions (job types register in their
        # ready(), which has run by the time migrate ends).
        post_migrate.connect(ensure_permissions, sender=self)
        metrics.preset_operations(["scale", "delete-pod", "delete-pvc"])
        notifications.register_gauges()
        metrics.register_gauge_source("apiops_approvals_pending", approvals.pending_count)
        # Admin logins, failures and lockouts are audit rows (ops/logins.py).
        user_logged_in.connect(logins.on_logged_in, dispatch_uid=logins.LOGGED_IN_UID)
        user_login_failed.connect(logins.on_login_failed, dispatch_uid="ops.logins.failed")
        user_locked_out.connect(logins.on_locked_out, dispatch_uid="ops.logins.locked")
