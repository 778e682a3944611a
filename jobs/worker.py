"""``python -m jobs.worker``: django-q2's ``manage.py qcluster``, kept working and stoppable.

A django-q2 cluster is a main process, its sentinel, and the sentinel's workers, monitor and
pusher, which pass tasks and results through multiprocessing queues. This supervisor adds what
the cluster lacks; ``make run`` and the Kubernetes worker Deployment both run it.

**A killed process breaks the cluster for good.** A queue's lock is held by whoever waits on
it: an idle worker holds the task queue's reader lock while it blocks reading, and a worker's
feeder thread holds the result queue's writer lock while it writes. A process SIGKILLed while
holding one (``kill -9``, the OOM killer, the sentinel's own kill after a timeout) never
releases it. The sentinel spawns a replacement, which blocks on that same lock, and the cluster
runs nothing again (django-q2 #23, #339). Measured with two workers, one of them inside a job
step: after a SIGKILL of both (or of the idle one alone), the tasks sat unread in the task
queue's pipe, every worker and the pusher waited on a lock, and no tick ran for 200 s, until
the test gave up. Only fresh queues help, that is a fresh cluster. So the supervisor watches the
cluster's processes (``/proc``) and, as soon as one of them is gone or the cluster exits,
stops what is left (SIGTERM, then SIGKILL after :data:`RESTART_GRACE`: a broken cluster never
finishes a graceful stop) and starts a new one. Workers are never recycled (``recycle`` in
``Q_CLUSTER``), so a worker leaving the pool always means a death. The new workers revive the
jobs pump, which re-dispatches the dead tick's job once its lease lapses.

**A SIGTERM to the process group.** Supervisors stop a service by signalling its whole process
group; django-q2's sentinel restores the default SIGTERM action and dies at once, and the main
process then waits for it for ever (measured: still hanging 20 s later). So the cluster runs
in a session of its own, and a SIGTERM or SIGINT here becomes one SIGTERM to the cluster's
main process, with ``--stop-grace`` seconds to finish before everything left is SIGKILLed. If
this process is killed itself, the kernel sends the cluster that SIGTERM (``PR_SET_PDEATHSIG``).
It is a child subreaper, so processes orphaned by a dying sentinel stay in its tree and end
with the cluster.

**Metrics** (``--metrics-port``): serves what the cluster's processes counted, for a worker
pod of its own (:mod:`jobs.metrics_server`).

**A stall without a death** (``--liveness-max-age``): every third of that time it runs
``manage.py jobs_health`` and restarts the cluster when the jobs pump has not run for that
long, as the Kubernetes worker's liveness probe does through the kubelet.

A cluster that keeps failing within :data:`HEALTHY_AFTER` of its start is given up after
:data:`MAX_FAILED_STARTS` tries: this exits 1 and leaves the decision to its own supervisor.

Plain Python on purpose: no Django here, the cluster loads it.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from jobs import proctree
from jobs.stop_signal import StopSignal

REPO = Path(__file__).resolve().parent.parent
MANAGE = REPO / "manage.py"
_PR_SET_PDEATHSIG = 1

#: Seconds between two looks at the cluster's processes: how soon a death is noticed.
CHECK_INTERVAL = 0.2
#: Seconds after a cluster's start during which every look scans for its new processes...
STARTUP = 10.0
#: ... and between two such scans afterwards (a scan of /proc costs milliseconds).
SCAN_INTERVAL = 2.0
#: Seconds a broken cluster gets to stop on SIGTERM before the rest is killed. Workers still
#: inside a tick can finish it; a cluster stuck on a dead process's lock never stops anyway.
RESTART_GRACE = 3.0
#: A cluster that breaks sooner than this after its start counts as a failed start.
HEALTHY_AFTER = 30.0
#: Failed starts in a row after which the supervisor gives up (exit 1).
MAX_FAILED_STARTS = 5
#: Seconds to wait before starting again after a failed start.
RETRY_PAUSE = 1.0
#: Seconds a ``jobs_health`` run may take (it starts Django) before it is abandoned.
LIVENESS_TIMEOUT = 60.0
#: Default ``--stop-grace``: under the 5 s that ``make run`` gives its children.
DEFAULT_STOP_GRACE = 4.0


def log(message: str) -> None:
    print(f"jobs.worker: {message}", file=sys.stderr, flush=True)


def _term_when_parent_dies() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _exe(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


class Cluster:
    """One ``manage.py qcluster`` run: its main process and the processes seen below it."""

    def __init__(self, qcluster_args: list[str]) -> None:
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and manage.py
            [sys.executable, str(MANAGE), "qcluster", *qcluster_args],
            cwd=REPO,
            start_new_session=True,
            preexec_fn=_term_when_parent_dies,
        )
        self.started = time.monotonic()
        self._exe = _exe(self.proc.pid)
        #: The sentinel and its workers, monitor and pusher (forks of the main process, so
        #: the same executable), as first seen. Any of them gone means the cluster is broken.
        self.members: dict[tuple[int, int], proctree.Proc] = {}
        #: Everything seen below the main process and still running: what to end at the stop,
        #: orphans included (they are no longer below it once their parent has died).
        self.seen: dict[tuple[int, int], proctree.Proc] = {}
        self._others: set[tuple[int, int]] = set()
        self._next_scan = 0.0

    @property
    def uptime(self) -> float:
        return time.monotonic() - self.started

    def check(self) -> str | None:
        """None while the cluster is whole; otherwise why it must be replaced.

        Looks at the known members every time (a stat file each) and scans every process for
        new ones only every :data:`SCAN_INTERVAL` after the start-up (the cluster's processes
        are all there by then; a death after it brings a restart anyway).
        """
        code = self.proc.poll()
        if code is not None:
            return f"the cluster's main process exited with status {code}"
        for key, member in self.members.items():
            if not proctree.still_running([member]):
                return f"its process {key[0]} died"
        now = time.monotonic()
        if self.uptime > STARTUP and now < self._next_scan:
            return None
        self._next_scan = now + SCAN_INTERVAL
        table = proctree.processes()
        self.seen = {
            key: proc for key, proc in self.seen.items() if proctree.still_running([proc], table)
        }
        for proc in proctree.descendants(self.proc.pid, table):
            self.seen.setdefault((proc.pid, proc.start), proc)
        for proc in proctree.descendants(self.proc.pid, table, depth=2):
            key = (proc.pid, proc.start)
            if key in self.members or key in self._others:
                continue
            # A fork of the cluster, not a program one of them ran (pg_ctl, a credential plugin).
            if self._exe is not None and _exe(proc.pid) == self._exe:
                self.members[key] = proc
            else:
                self._others.add(key)
        return None

    def stop(self, grace: float) -> int:
        """SIGTERM the main process, SIGKILL whatever is left after ``grace`` seconds; returns
        the main process's exit status (negative: killed by that signal)."""
        if self.proc.poll() is None:
            self.check()  # note any process started since the last look
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(grace)
        below = {(proc.pid, proc.start): proc for proc in proctree.descendants(self.proc.pid)}
        left = proctree.still_running({**self.seen, **below}.values())
        if self.proc.poll() is None:
            log(f"the cluster did not stop within {grace:g} s: killing it")
            self.proc.kill()
        if left:
            log(f"killing {len(left)} process(es) the cluster left behind")
        proctree.kill(left)
        status = self.proc.wait()
        proctree.reap_adopted()
        return status


class LivenessCheck:
    """``manage.py jobs_health --max-age`` run in the background every third of the age."""

    def __init__(self, max_age: float) -> None:
        self.max_age = max_age
        self.every = max(5.0, max_age / 3)
        self.proc: subprocess.Popen | None = None
        self.started = 0.0
        self.last = time.monotonic()

    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def poll(self, cluster: Cluster) -> str | None:
        """Start a check when one is due; returns the reason when one says the pump is late.

        Only once the cluster has run for ``max_age``: the pump's stamp is shared and may be
        old from before this cluster started.
        """
        now = time.monotonic()
        if self.proc is None:
            if cluster.uptime >= self.max_age and now - self.last >= self.every:
                self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and manage.py
                    [sys.executable, str(MANAGE), "jobs_health", "--max-age", f"{self.max_age:g}"],
                    cwd=REPO,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
                self.started = now
            return None
        code = self.proc.poll()
        if code is None:
            if now - self.started > LIVENESS_TIMEOUT:
                log(f"jobs_health gave no answer within {LIVENESS_TIMEOUT:g} s")
                self.cancel()
            return None
        output = " ".join((self.proc.stdout.read() or "").split())
        self.proc.stdout.close()
        self.proc, self.last = None, now
        if code == 1:  # jobs_health's EXIT_STALE: the pump is late or never ran
            return f"liveness: {output}"
        if code != 0:  # the database unreadable, say: a new cluster would not help
            log(f"jobs_health could not tell (exit {code}): {output}")
        return None

    def cancel(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            self.proc.wait()
            self.proc.stdout.close()
            self.proc, self.last = None, time.monotonic()


def _parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="python -m jobs.worker",
        description="Run manage.py qcluster; replace it when it breaks. Other arguments go "
        "to qcluster.",
    )
    parser.add_argument(
        "--stop-grace",
        type=float,
        default=DEFAULT_STOP_GRACE,
        metavar="SECONDS",
        help="on SIGTERM/SIGINT, how long the cluster may take to stop before it is killed "
        f"(default {DEFAULT_STOP_GRACE:g})",
    )
    parser.add_argument(
        "--liveness-max-age",
        type=float,
        default=None,
        metavar="SECONDS",
        help="restart the cluster when the jobs pump has not run for this long (default: off)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        metavar="PORT",
        help="serve the cluster's metrics on this port (/metrics, bearer token; see "
        "jobs/metrics_server.py); default: off",
    )
    return parser.parse_known_args(argv)


def main(argv: list[str]) -> int:
    """Keep ``manage.py qcluster`` (extra arguments passed on) running until told to stop."""
    args, qcluster_args = _parse(argv)
    proctree.become_subreaper()
    # Not a threading.Event set in a handler: that can deadlock (see jobs/stop_signal.py).
    stopping = StopSignal()
    stopping.install((signal.SIGTERM, signal.SIGINT))
    if args.metrics_port is not None:
        from jobs.metrics_server import serve

        serve(args.metrics_port)
    liveness = LivenessCheck(args.liveness_max_age) if args.liveness_max_age else None
    failed_starts = 0
    while True:
        cluster = Cluster(qcluster_args)
        reason = None
        next_reap = time.monotonic() + SCAN_INTERVAL
        while reason is None and not stopping.wait(CHECK_INTERVAL):
            reason = cluster.check() or (liveness.poll(cluster) if liveness else None)
            if time.monotonic() >= next_reap:  # orphans adopted (as PID 1 in a container too)
                own = [cluster.proc.pid, *([liveness.pid()] if liveness else [])]
                proctree.reap_adopted(own=[pid for pid in own if pid])
                next_reap = time.monotonic() + SCAN_INTERVAL
        if liveness:
            liveness.cancel()
        if stopping.is_set():
            status = cluster.stop(args.stop_grace)
            return 0 if status == 0 else 1
        lived = cluster.uptime
        failed_starts = failed_starts + 1 if lived < HEALTHY_AFTER else 0
        if failed_starts >= MAX_FAILED_STARTS:
            log(
                f"{reason} after {lived:.1f} s; giving up: {failed_starts} clusters in a row "
                f"failed within {HEALTHY_AFTER:g} s of their start"
            )
            cluster.stop(RESTART_GRACE)
            return 1
        log(f"{reason} after {lived:.1f} s: starting a new cluster")
        cluster.stop(RESTART_GRACE)
        if stopping.is_set() or (failed_starts and stopping.wait(RETRY_PAUSE)):
            return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
