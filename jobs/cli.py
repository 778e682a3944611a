"""Job output shared by the job commands: a job's summary, its steps as a table, progress."""

from __future__ import annotations

from jobs.models import STOPPED_STATUSES, Job, JobStep
from ops.cli import fmt_duration, fmt_time, format_table, shorten

STEP_HEADERS = ["#", "step", "status", "started (UTC)", "finished (UTC)", "took", "detail"]


def job_target(job: Job) -> str:
    """``<kind> <namespace>/<name>`` of the object the job works on."""
    return f"{job.target_kind} {job.target_namespace}/{job.target_name}"


def job_summary(job: Job) -> list[str]:
    """The header lines of ``ops_job``: what, on what, by whom, how it stands."""
    params = ", ".join(f"{k}={v}" for k, v in (job.params or {}).items())
    return [
        f"job       {job.job_id}",
        f"type      {job.type}",
        f"target    {job_target(job)}",
        f"params    {params or '-'}",
        f"status    {job.status}",
        f"actor     {job.actor or '-'} from {job.source_ip or '-'}",
        f"created   {fmt_time(job.created_at)} UTC",
        f"finished  {fmt_time(job.finished_at)}{' UTC' if job.finished_at else ''}",
        f"duration  {fmt_duration(job.created_at, job.finished_at)}",
        *([f"error     {job.error.get('code')}: {job.error.get('detail')}"] if job.error else []),
        *(f"result    {key}={_result_value(value)}" for key, value in (job.result or {}).items()),
    ]


def _result_value(value: object) -> str:
    """A result entry on one line: uids by claim name as ``name=uid``."""
    if isinstance(value, dict):
        return ", ".join(f"{k}:{v}" for k, v in value.items()) or "-"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "-"
    return "-" if value is None else str(value)


def steps_table(steps: list[JobStep], *, detail_width: int = 70) -> str:
    """The steps in order, with their status, times and detail."""
    return format_table(
        STEP_HEADERS,
        [
            [
                step.step_order,
                step.name,
                step.status,
                fmt_time(step.started_at),
                fmt_time(step.finished_at),
                fmt_duration(step.started_at, step.finished_at),
                shorten(step.detail, detail_width),
            ]
            for step in steps
        ],
    )


def progress(done: int, total: int) -> str:
    """``3/5`` steps done."""
    return f"{done}/{total}"


def failed_step(steps: list[JobStep]) -> JobStep | None:
    """The step where the job stopped (failed or cancelled), if it did."""
    return next((s for s in steps if s.status in STOPPED_STATUSES), None)
