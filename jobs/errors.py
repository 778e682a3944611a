"""The errors of the jobs API and of job types.

Every check a job type makes raises :class:`JobRefused` with its own code (``primary_guard``,
``pods_not_down``, ``snapshot_not_ready``...): the code is what the API answers, the audit row
records and the job's ``error.code`` says; the detail says what to do instead. The others are
the answers of the job endpoints themselves, one line each (:func:`_api_error`).
"""

from __future__ import annotations

from ops.errors import OpsError


class JobRefused(OpsError):
    """409 with the code of the check that failed."""

    status_code = 409
    default_code = "refused"
    default_detail = "The job cannot go on."

    def __init__(self, detail: str, *, code: str) -> None:
        super().__init__(detail, code=code)


def _api_error(name: str, status: int, code: str, detail: str, doc: str) -> type[OpsError]:
    """An API error class: its HTTP status, code and default detail."""
    attrs = {"status_code": status, "default_code": code, "default_detail": detail}
    return type(name, (OpsError,), {**attrs, "__doc__": doc, "__module__": __name__})


JobNotFound = _api_error(
    "JobNotFound",
    404,
    "not_found",
    "No such job.",
    "404: no such job (or not one this key may see).",
)
JobTypeNotFound = _api_error(
    "JobTypeNotFound", 404, "not_found", "No such job type.", "404: no job type of that name."
)
JobTargetBusy = _api_error(
    "JobTargetBusy",
    409,
    "job_target_busy",
    "An active job already holds this target.",
    "409: the database refused a second active job on the same object.",
)
JobNotActive = _api_error(
    "JobNotActive",
    409,
    "job_not_active",
    "The job is not active.",
    "409: only a pending or running job can be cancelled.",
)
JobNotFailed = _api_error(
    "JobNotFailed",
    409,
    "job_not_failed",
    "Only a failed or cancelled job can be retried.",
    "409: only a failed or cancelled job can be retried.",
)
