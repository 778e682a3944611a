"""App config for ops."""

from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Audited Kubernetes primitives, API keys and the audit log."""

    name = "ops"
    verbose_name = "Operations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from ops import schema  # noqa: F401 - registers the OpenAPI auth extension
