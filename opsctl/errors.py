"""Exit codes and the one error type the commands raise: printed as ``error: ...``, never a
traceback."""

from __future__ import annotations

OK = 0
JOB_FAILED = 1
BAD_INPUT = 2
DENIED = 3
NOT_FOUND = 4
CONFLICT = 5
UNAVAILABLE = 6
TIMED_OUT = 7
HELD = 8

EXIT_CODES_HELP = """exit codes:
  0  ok
  1  the job failed or was cancelled
  2  bad input (HTTP 400/413/415/422, or a usage error)
  3  denied (HTTP 401/403)
  4  not found (HTTP 404)
  5  conflict (HTTP 409)
  6  unavailable (HTTP 429/5xx, connection refused, DNS or TLS error)
  7  timed out (the request, or --timeout of a wait)
  8  held for approval (nothing changed yet: see opsctl approvals)"""


class CliError(Exception):
    """A failure to report on stderr and exit with ``exit_code``."""

    def __init__(
        self,
        detail: str,
        exit_code: int = BAD_INPUT,
        code: str | None = None,
        errors: dict | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.exit_code = exit_code
        self.code = code
        self.errors = errors or {}
        #: Seconds after which the same request may be sent again; None: not to be retried.
        self.retry_after = retry_after

    def lines(self) -> list[str]:
        """``error: <detail> [<code>]``, then one line per field error."""
        head = f"error: {self.detail}" + (f" [{self.code}]" if self.code else "")
        out = [head]
        for field, messages in self.errors.items():
            msgs = messages if isinstance(messages, list) else [messages]
            out.append(f"  {field}: {' '.join(str(m) for m in msgs)}")
        return out


class Stop(CliError):
    """An end that is not an error: exit with ``exit_code`` after ``notes`` on stderr (a dry
    run's plan was printed; a request is held for approval)."""

    def __init__(self, exit_code: int, *notes: str) -> None:
        super().__init__(" ".join(notes), exit_code)
        self.notes = list(notes)

    def lines(self) -> list[str]:
        return self.notes


def exit_code_for_status(status: int) -> int:
    """The exit code of an HTTP error status."""
    if status in (401, 403):
        return DENIED
    if status == 404:
        return NOT_FOUND
    if status == 409:
        return CONFLICT
    if status == 429 or status >= 500:
        return UNAVAILABLE
    return BAD_INPUT
