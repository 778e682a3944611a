"""Django app for asynchronous, step-tracked operations jobs."""

from django.apps import AppConfig


class JobsConfig(AppConfig):
    """Registers the job types, connects the worker start signal, and tells ops what it needs
    to know of jobs (which targets active jobs hold, the audit values of job rows, the
    pump's last run for readiness) through its registration points."""

    name = "jobs"
    verbose_name = "Operations jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Job types register themselves on import; the worker must know them all.
        from jobs import services, types  # noqa: F401 - types register on import
        from jobs.dispatch import connect_worker_signals
        from jobs.holds import active_job_holding
        from jobs.registry import job_types
        from jobs.selectors import pump_info
        from ops.extensions import (
            register_audit_values,
            register_operations,
            register_readiness_info,
        )
        from ops.holds import register_holder_lookup

        connect_worker_signals()
        register_holder_lookup(active_job_holding)
        register_audit_values(
            "action",
            [t.name for t in job_types()] + [services.ACTION_CANCEL, services.ACTION_RETRY],
        )
        register_audit_values("resource_kind", [services.KIND_JOB])
        register_readiness_info("jobs_pump", pump_info)
        register_operations(t.name for t in job_types())
        services.register_approvable_job_types()
