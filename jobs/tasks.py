"""django-q2 task entry points: thin wrappers, all logic lives in the runner and dispatch."""

from jobs.dispatch import pump as _pump
from jobs.dispatch import send_notifications
from jobs.runner import run_tick


def tick(job_id: str, seq: int) -> str:
    """Advance one job (a django-q2 task: may be delivered late, twice, or concurrently)."""
    return run_tick(job_id, seq)


def pump() -> int:
    """Re-dispatch stranded jobs and keep the pump chain alive (schedule and self-chained)."""
    return _pump()


def deliver_notifications() -> int:
    """Start sending due notifications from this worker's sending threads; returns at once."""
    return send_notifications()
