"""Process trees read from ``/proc`` (Linux): who runs below a process, and ending all of it.

The worker's supervisor (:mod:`jobs.worker`) and ``make run`` (``apiops_site/run.py``) must
stop every process they caused, including those whose parent died first: an orphan is
re-parented (to the nearest child subreaper, else to init) and no longer shows as anyone's
descendant, so callers keep what they saw (:class:`Proc` values, which carry the process's
start time so that a reused pid is never mistaken for it) and end that.

Plain Python, no Django: both supervisors run without it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
from collections.abc import Iterable
from dataclasses import dataclass

_PR_SET_CHILD_SUBREAPER = 36


@dataclass(frozen=True)
class Proc:
    """One process as ``/proc/<pid>/stat`` showed it."""

    pid: int
    ppid: int
    pgid: int
    state: str
    #: Clock ticks after boot when it started: with the pid, names the process for good.
    start: int

    @property
    def alive(self) -> bool:
        """False for a zombie (dead, not yet reaped) or a dead process."""
        return self.state not in ("Z", "X", "x")


def _read(pid: int) -> Proc | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read().decode(errors="replace")
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ")".
    fields = stat.rsplit(")", 1)[1].split()
    return Proc(
        pid=pid, ppid=int(fields[1]), pgid=int(fields[2]), state=fields[0], start=int(fields[19])
    )


def processes() -> dict[int, Proc]:
    """Every process visible now, by pid: a scan of /proc, a few milliseconds per hundred
    processes, so supervisors do it every second or two, not at every look."""
    table = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            proc = _read(int(entry.name))
            if proc is not None:
                table[proc.pid] = proc
    return table


def descendants(
    pid: int, table: dict[int, Proc] | None = None, *, depth: int | None = None
) -> list[Proc]:
    """The processes below ``pid`` (children first), at most ``depth`` levels down."""
    table = processes() if table is None else table
    children: dict[int, list[Proc]] = {}
    for proc in table.values():
        children.setdefault(proc.ppid, []).append(proc)
    found: list[Proc] = []
    level, current = 0, [pid]
    while current and (depth is None or level < depth):
        current_procs = [child for parent in current for child in children.get(parent, [])]
        found += current_procs
        current = [proc.pid for proc in current_procs]
        level += 1
    return found


def still_running(procs: Iterable[Proc], table: dict[int, Proc] | None = None) -> list[Proc]:
    """Those of ``procs`` that are the same process as when seen and not yet dead (read from
    ``table`` when given, else each from its own stat file: cheap for a few)."""
    running = []
    for proc in procs:
        now = _read(proc.pid) if table is None else table.get(proc.pid)
        if now is not None and now.start == proc.start and now.alive:
            running.append(now)
    return running


def send(procs: Iterable[Proc], sig: int) -> int:
    """Send ``sig`` to those of ``procs`` still running (never to a reused pid); how many."""
    sent = 0
    for proc in still_running(procs):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(proc.pid, sig)
            sent += 1
    return sent


def kill(procs: Iterable[Proc]) -> int:
    """SIGKILL those of ``procs`` still running; how many."""
    return send(procs, signal.SIGKILL)


def become_subreaper() -> bool:
    """Adopt this process's orphaned descendants (Linux ``PR_SET_CHILD_SUBREAPER``).

    A process whose parent dies is then re-parented here rather than to init, so it stays a
    descendant that a supervisor sees and stops. The adopted must be reaped:
    :func:`reap_adopted`.
    """
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        return libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def reap_adopted(own: Iterable[int] = ()) -> list[int]:
    """Reap dead children of this process other than ``own`` (those a ``Popen`` waits for).

    Children adopted as a subreaper (or as PID 1 in a container) have no ``Popen`` to reap
    them and would stay zombies. Returns the pids reaped.
    """
    me, keep = os.getpid(), set(own)
    reaped = []
    for proc in processes().values():
        if proc.ppid == me and proc.pid not in keep and not proc.alive:
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(proc.pid, os.WNOHANG)[0]:
                    reaped.append(proc.pid)
    return reaped
