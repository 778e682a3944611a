"""Following a job until it ends: a compact view redrawn in place on a terminal, one plain
line per step change on a pipe. Exit 0 on success, 1 when it failed or was cancelled, 7 when
``--timeout`` passes first."""

from __future__ import annotations

import shutil
import sys
import time
from typing import TextIO

from opsctl.client import Client, part
from opsctl.errors import JOB_FAILED, OK, TIMED_OUT, UNAVAILABLE, CliError

TERMINAL = ("success", "failed", "cancelled")
MARKS = {"pending": " ", "running": ">", "success": "+", "failed": "!", "cancelled": "x"}


def fit(text: str, width: int) -> str:
    """One line of at most ``width`` columns."""
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 3] + "..."


def view(job: dict, width: int) -> list[str]:
    """The compact view of a job: a header, then one line per step."""
    lines = [fit(f"{job['status']}: {job['type']} {job['job_id']}", width)]
    for step in job.get("steps", []):
        mark = MARKS.get(step["status"], "?")
        detail = f"  {step['detail']}" if step.get("detail") else ""
        lines.append(fit(f" [{mark}] {step['name']:<22} {step['status']:<9}{detail}", width))
    return lines


def step_lines(job: dict, seen: dict[str, tuple]) -> list[str]:
    """Plain lines for the steps that changed since ``seen`` (updated in place)."""
    out = []
    for step in job.get("steps", []):
        state = (step["status"], step.get("detail") or "")
        before = seen.get(step["name"], ("pending", ""))
        seen[step["name"]] = state
        if state != before:
            detail = f": {state[1]}" if state[1] else ""
            out.append(fit(f"{step['order']}. {step['name']} {state[0]}{detail}", 80))
    return out


def follow(
    client: Client,
    job_id: str,
    *,
    timeout: float | None,
    interval: float = 0.5,
    out: TextIO | None = None,
) -> tuple[int, dict]:
    """Poll the job until it ends or ``timeout`` passes: ``(exit code, last job)``."""
    out = out or sys.stdout
    tty = out.isatty()
    width = min(shutil.get_terminal_size((80, 24)).columns, 200) if tty else 80
    deadline = None if timeout is None else time.monotonic() + timeout
    print(f"job {job_id}", file=out, flush=True)
    seen: dict[str, tuple] = {}
    drawn = 0
    job: dict = {}
    while True:
        job = _poll(client, job_id, job)
        if tty:
            lines = view(job, width - 1)
            if drawn:
                out.write(f"\x1b[{drawn}F\x1b[J")  # back to the view's first line, clear below
            out.write("\n".join(lines) + "\n")
            out.flush()
            drawn = len(lines)
        else:
            for line in step_lines(job, seen):
                print(line, file=out, flush=True)
        if job["status"] in TERMINAL:
            break
        if deadline is not None and time.monotonic() >= deadline:
            raise CliError(
                f"job {job_id} is still {job['status']} after {timeout:g} s (it goes on)",
                TIMED_OUT,
                "timeout",
            )
        time.sleep(interval)
    if not tty:
        print(fit(f"job {job_id} {job['status']}", 80), file=out, flush=True)
    return (OK if job["status"] == "success" else JOB_FAILED), job


#: How long a followed job's server may stay unreachable before following gives up (a
#: restart of the API should not end a wait that the job itself survives).
OUTAGE_GRACE = 30.0


def _poll(client: Client, job_id: str, last: dict) -> dict:
    """The job now; retried through a short outage of the server (the job goes on)."""
    give_up = time.monotonic() + OUTAGE_GRACE
    while True:
        try:
            return client.get(f"/ops/jobs/{part(job_id)}")
        except CliError as e:
            if not last or e.exit_code not in (UNAVAILABLE, TIMED_OUT):
                raise
            if time.monotonic() >= give_up:
                raise
            time.sleep(1)


def failure(job: dict) -> CliError:
    """What to say about a job that failed or was cancelled."""
    failed = [s for s in job.get("steps", []) if s["status"] in ("failed", "cancelled")]
    error = job.get("error") or {}
    detail = error.get("detail") or f"job {job['job_id']} {job['status']}"
    if failed:
        step = failed[0]
        detail = f"step {step['name']} {step['status']}: {step.get('detail') or detail}"
    return CliError(detail, JOB_FAILED, error.get("code") or job["status"])
