"""Each job worker process says it is alive every few seconds, so ``/metrics`` can count the
workers (``apiops_workers_alive``) from the database, where every web pod can read it.

A thread started when django-q2 spawns the worker (:func:`start`) upserts the process's row in
``ops_job_worker`` on the database clock; a busy worker (inside a long tick) keeps beating, a
dead one stops. Rows unseen for an hour are removed by whoever beats next.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import threading

from django.db import DatabaseError, connection

logger = logging.getLogger(__name__)

#: Seconds between two beats, and how recent a beat must be to count as alive.
INTERVAL = 10.0
ALIVE_WITHIN = 30.0

_BEAT_SQL = """
INSERT INTO ops_job_worker (name, started_at, seen_at) VALUES (%s, now(), now())
ON CONFLICT (name) DO UPDATE SET seen_at = now()
"""
_PRUNE_SQL = "DELETE FROM ops_job_worker WHERE seen_at < now() - interval '1 hour'"
_ALIVE_SQL = (
    "SELECT count(*) FROM ops_job_worker WHERE seen_at >= now() - make_interval(secs => %s)"
)


def beat(name: str) -> None:
    """Record that worker ``name`` is alive now (and forget long-dead ones)."""
    with connection.cursor() as cursor:
        cursor.execute(_BEAT_SQL, [name])
        cursor.execute(_PRUNE_SQL)


def alive() -> int:
    """Workers that beat within :data:`ALIVE_WITHIN` seconds."""
    with connection.cursor() as cursor:
        cursor.execute(_ALIVE_SQL, [ALIVE_WITHIN])
        return cursor.fetchone()[0]


def _run(name: str) -> None:
    while True:
        try:
            beat(name)
        except DatabaseError:
            logger.warning("worker heartbeat of %s failed", name, exc_info=True)
        finally:
            connection.close()  # no session held between beats
        threading.Event().wait(INTERVAL)


_started: set[int] = set()


def start() -> None:
    """Beat from a daemon thread of this worker process until it exits (once per process).

    django-q2's workers are child processes of the cluster; in a main process (a test sending
    the spawn signal, django-q2's sync mode) nothing is started.
    """
    if multiprocessing.current_process().name == "MainProcess" or os.getpid() in _started:
        return
    _started.add(os.getpid())
    name = f"{socket.gethostname()}:{os.getpid()}"
    threading.Thread(target=_run, args=(name,), name="heartbeat", daemon=True).start()
