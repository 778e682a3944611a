"""App config for ops."""

from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Audited Kubernetes primitives, API keys and the audit log."""

    name = "ops"
    verbose_name = "Operations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from ops import schema  # noqa: F401 - registers the OpenAPI auth extension
        from ops.permissions import ensure_permissions

        # The operations' permissions for staff sessions (job types register in their
        # ready(), which has run by the time migrate ends).
        post_migrate.connect(ensure_permissions, sender=self)
