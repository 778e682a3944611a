"""Django app for asynchronous, step-tracked operations jobs."""

from django.apps import AppConfig


class JobsConfig(AppConfig):
    """Registers the job types, connects the worker start signal, and tells the ops services
    which targets active jobs hold."""

    name = "jobs"
    verbose_name = "Operations jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Job types register themselves on import; the worker must know them all.
        from jobs import types  # noqa: F401
        from jobs.dispatch import connect_worker_signals
        from jobs.holds import active_job_holding
        from ops.holds import register_holder_lookup

        connect_worker_signals()
        register_holder_lookup(active_job_holding)
