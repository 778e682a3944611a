"""The one error of job types: a request or a step refused because going on would do harm.

Every check a job type makes raises :class:`JobRefused` with its own code (``primary_guard``,
``pods_not_down``, ``snapshot_not_ready``...): the code is what the API answers, the audit row
records and the job's ``error.code`` says; the detail says what to do instead.
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
