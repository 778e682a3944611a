"""Django app for asynchronous, step-tracked operations jobs."""

from django.apps import AppConfig


class JobsConfig(AppConfig):
    """Registers the job types, connects the worker start signal, and tells ops what it needs
    to know of jobs (the query for which targets active jobs hold, the audit values of job rows, the
    pump's last run for readiness, the jobs' metrics, who wakes the notification workers)
    through its registration points."""

    name = "jobs"
    verbose_name = "Operations jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Job types register themselves on import; the worker must know them all.
        from jobs import services, types  # noqa: F401 - types register on import
        from jobs.dispatch import connect_worker_signals
        from jobs.holds import active_job_holder
        from jobs.registry import job_types
        from jobs.selectors import pump_info
        from ops.extensions import (
            register_audit_values,
            register_operations,
            register_readiness_info,
        )
        from ops.holds import register_holder_source

        connect_worker_signals()
        register_holder_source(active_job_holder)
        register_audit_values(
            "action",
            [t.name for t in job_types()] + [services.ACTION_CANCEL, services.ACTION_RETRY],
        )
        register_audit_values("resource_kind", [services.KIND_JOB])
        register_readiness_info("jobs_pump", pump_info)
        register_operations(t.name for t in job_types())
        services.register_approvable_job_types()
        self._register_observability(job_types())

    @staticmethod
    def _register_observability(types) -> None:
        """Zero-valued series of every job type, the database gauges of /metrics that jobs
        know, and the waker of the notification workers."""
        from jobs import heartbeat
        from jobs.dispatch import enqueue_deliveries
        from jobs.selectors import active_jobs_by_type, pump_status, queue_due
        from ops import metrics, notifications

        metrics.preset_operations(t.name for t in types)
        for job_type in types:
            steps = {s.name for plan in (job_type.plans or {}).values() for s in plan}
            metrics.preset_job_type(job_type.name, sorted(steps | {s.name for s in job_type.steps}))
        metrics.register_gauge_source("apiops_jobs_active", active_jobs_by_type)
        metrics.register_gauge_source("apiops_queue_due_tasks", lambda: queue_due()[0])
        metrics.register_gauge_source("apiops_queue_oldest_due_seconds", lambda: queue_due()[1])
        metrics.register_gauge_source(
            "apiops_jobs_pump_age_seconds", lambda: pump_status().age_seconds
        )
        metrics.register_gauge_source("apiops_workers_alive", heartbeat.alive)
        notifications.register_waker(enqueue_deliveries)
