"""App config for ops."""

from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Audited Kubernetes primitives, API keys, the audit log, metrics and notifications."""

    name = "ops"
    verbose_name = "Operations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # schema registers the OpenAPI auth extension; notification_admin registers its admins
        # (they build on ops.admin's, which the admin app has loaded by now).
        from ops import metrics, notification_admin, notifications, schema  # noqa: F401

        metrics.preset_operations(["scale", "delete-pod", "delete-pvc"])
        notifications.register_gauges()
