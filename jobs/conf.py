"""The runner's knobs, read from ``settings.APIOPS`` (filled from the environment in settings).

Read at call time, not import time, so tests can shorten leases and timeouts with
``override_settings`` and a worker subprocess picks them up from its environment.
"""

from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class JobSettings:
    """The job runner's settings, resolved (see ``DEFAULTS`` and settings.APIOPS)."""

    #: How long a wait step may take from its first entry before it fails (seconds).
    wait_timeout: float
    #: How long a claimed job stays ours without a heartbeat (seconds). A tick heartbeats every
    #: third of it; a killed worker's job is taken over once it lapses, so it bounds recovery
    #: (10 s: a job resumes within about 15 s of a SIGKILL, with the 5 s pump).
    lease_seconds: float
    #: Pause between two checks of a waiting step; 0.5 s keeps a wait at <= 2 requests/s.
    poll_interval: float
    #: How long one tick may keep polling a wait before handing the worker back (seconds).
    #: 0 means one check per tick: fairest when many jobs share few workers.
    tick_budget: float
    #: How often the pump looks for jobs whose tick was lost or whose worker died (seconds).
    pump_interval: float
    #: How many times a step may be interrupted (worker killed, lease lost) before the job
    #: is failed as a crash loop instead of being retried for ever.
    max_interruptions: int
    #: After how long the pump closes an audit row still ``pending`` as "outcome unknown"
    #: (its process died between the row and the outcome); far beyond any real call.
    audit_pending_max_age: float


DEFAULTS = {
    "JOB_WAIT_TIMEOUT": 600.0,
    "JOB_LEASE_SECONDS": 10.0,
    "JOB_POLL_INTERVAL": 1.0,
    "JOB_TICK_BUDGET": 0.0,
    "JOB_PUMP_INTERVAL": 5.0,
    "JOB_MAX_INTERRUPTIONS": 3,
    "AUDIT_PENDING_MAX_AGE": 900.0,
}


def job_settings() -> JobSettings:
    """Current job settings, with defaults for keys the APIOPS dict leaves out."""
    raw = {
        **DEFAULTS,
        **{k: v for k, v in getattr(settings, "APIOPS", {}).items() if k in DEFAULTS},
    }
    return JobSettings(
        wait_timeout=float(raw["JOB_WAIT_TIMEOUT"]),
        lease_seconds=float(raw["JOB_LEASE_SECONDS"]),
        poll_interval=float(raw["JOB_POLL_INTERVAL"]),
        tick_budget=float(raw["JOB_TICK_BUDGET"]),
        pump_interval=float(raw["JOB_PUMP_INTERVAL"]),
        max_interruptions=int(raw["JOB_MAX_INTERRUPTIONS"]),
        audit_pending_max_age=float(raw["AUDIT_PENDING_MAX_AGE"]),
    )
