"""Django app for asynchronous, step-tracked operations jobs."""

from django.apps import AppConfig


class JobsConfig(AppConfig):
    """Registers the job types and connects the worker start signal."""

    name = "jobs"
    verbose_name = "Operations jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Job types register themselves on import; the worker must know them all.
        from jobs import types  # noqa: F401
        from jobs.dispatch import connect_worker_signals

        connect_worker_signals()
