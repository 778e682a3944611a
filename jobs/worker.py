"""``python -m jobs.worker``: django-q2's ``manage.py qcluster``, stoppable by its process group.

Supervisors (``make run``, most init systems) stop a service by sending SIGTERM to its whole
process group. django-q2's cluster does not survive that: its sentinel process restores the
default SIGTERM action and dies at once, and the main process then waits for it for ever
(measured: still hanging 20 s later, where a SIGTERM to the main process alone stops it in
about a second). So this wrapper runs the cluster in a session of its own and turns any
SIGTERM or SIGINT it receives into one SIGTERM to the cluster's main process; if the wrapper
itself is killed, the kernel sends that SIGTERM (Linux ``PR_SET_PDEATHSIG``).

Plain Python on purpose: no Django here, the cluster loads it.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_PR_SET_PDEATHSIG = 1


def _term_when_parent_dies() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def main(argv: list[str]) -> int:
    """Run ``manage.py qcluster`` (extra arguments passed on) until it exits."""
    cluster = subprocess.Popen(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, str(REPO / "manage.py"), "qcluster", *argv],
        cwd=REPO,
        start_new_session=True,
        preexec_fn=_term_when_parent_dies,
    )

    def stop(signum: int, frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            cluster.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return cluster.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
