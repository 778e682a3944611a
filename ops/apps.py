"""App config for ops."""

from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Audited Kubernetes primitives, API keys, the audit log, metrics and notifications."""

    name = "ops"
    verbose_name = "Operations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from ops import metrics, notifications, schema  # noqa: F401 - schema registers on import

        metrics.preset_operations(["scale", "delete-pod", "delete-pvc"])
        notifications.register_gauges()
