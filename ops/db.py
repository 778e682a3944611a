"""Database connection helpers for the request path.

Django's ``CONN_HEALTH_CHECKS`` sends ``SELECT 1`` on a reused connection before its first
query in each request, so a connection that died while idle (a database restart, a proxy's
idle timeout) is replaced instead of failing the request. That is one round trip per
connection per request. :func:`read_as_health_check` lets the first statement of a request —
a read — be that check: when the read fails and the connection turns out to be dead, the
connection is replaced and the read made once more. Same recovery, one round trip fewer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from django.db import Error as DatabaseError
from django.db import connections

T = TypeVar("T")


def read_as_health_check(alias: str, read: Callable[[], T]) -> T:
    """Run ``read`` on ``alias``, standing in for the connection's pending health check.

    Only for reads: they can be made twice. A write that failed on a dying connection may
    still have happened, so writes keep Django's own check (which this one has usually
    satisfied already, being the first statement). When no check is pending — a new
    connection, one checked already in this request, health checks off, or inside a
    transaction — ``read`` simply runs.
    """
    conn = connections[alias]
    pending = (
        conn.connection is not None
        and conn.health_check_enabled
        and not conn.health_check_done
        and not conn.in_atomic_block
    )
    if not pending:
        return read()
    conn.health_check_done = True  # this read is the check: Django does not send SELECT 1
    try:
        return read()
    except DatabaseError:
        if conn.is_usable():
            raise  # the read failed, not the connection
        conn.close()
    return read()  # on a new connection
