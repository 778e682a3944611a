"""App config for ops."""

from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Audited Kubernetes primitives, API keys and the audit log."""

    name = "ops"
    verbose_name = "Operations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from axes.signals import user_locked_out
        from django.contrib.auth.signals import user_logged_in, user_login_failed

        from ops import (
            logins,
            schema,  # noqa: F401 - registers the OpenAPI auth extension
        )

        # Admin logins, failures and lockouts are audit rows (ops/logins.py).
        user_logged_in.connect(logins.on_logged_in, dispatch_uid=logins.LOGGED_IN_UID)
        user_login_failed.connect(logins.on_login_failed, dispatch_uid="ops.logins.failed")
        user_locked_out.connect(logins.on_locked_out, dispatch_uid="ops.logins.locked")
