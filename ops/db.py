"""Database connection helpers for the request path.

Django's ``CONN_HEALTH_CHECKS`` sends ``SELECT 1`` on a reused connection before its first
query in each request, so a connection that died while idle (a database restart, a proxy's
idle timeout) is replaced instead of failing the request. That is one round trip per
connection per request. :func:`read_as_health_check` lets the first statement of a request —
a read — be that check: when the read fails and the connection turns out to be dead, the
connection is replaced and the read made once more. Same recovery, one round trip fewer.

:func:`execute_prepared` runs the request path's few hot statements as server-side prepared
statements: PostgreSQL plans each once per connection instead of on every request.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import weakref
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from django.conf import settings
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


#: The prepared statements of each open driver connection (they live as long as it does).
_prepared: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()
_PLACEHOLDER = re.compile(r"%s")


def _numbered(sql: str) -> str:
    """``sql`` with its ``%s`` placeholders as PostgreSQL's ``$1, $2, ...``."""
    number = itertools.count(1)
    return _PLACEHOLDER.sub(lambda _: f"${next(number)}", sql)


_WORD = re.compile(r"[a-z_]+")


def sql_word(value: str) -> str:
    """A code constant (a lowercase word: a status, an error code) as a SQL text literal.

    For a prepared statement's fixed values: PostgreSQL switches a prepared statement to a
    generic plan after five runs, and a generic plan can use a partial index only when the
    values its predicate names are in the statement's text, not parameters.
    """
    if not _WORD.fullmatch(value):
        raise ValueError(f"not a plain word: {value!r}")
    return f"'{value}'"


def sql_words(*values: str) -> str:
    """Code constants as a SQL text array literal (see :func:`sql_word`)."""
    return "ARRAY[" + ", ".join(sql_word(v) for v in values) + "]::text[]"


def prepared_name(sql: str) -> str:
    """The name ``sql`` is prepared under (the server shows a run as ``EXECUTE <name>(...)``)."""
    return "apiops_" + hashlib.blake2b(sql.encode(), digest_size=8).hexdigest()


def execute_prepared(cursor, sql: str, params: Sequence[Any]) -> None:
    """Execute ``sql`` (``%s`` placeholders, a statement of the code's own; parameters whose
    type the statement does not imply carry a cast) with ``params`` as a server-side prepared
    statement of the cursor's connection, prepared on its first use there.

    Planning is most of the server's time on the request path's short statements (0.17 ms of
    0.33 for the pending row's). Prepared statements are per session, so a pooler that hands
    one client several server sessions (PgBouncer in transaction mode) cannot keep them:
    ``OPS_DB_PREPARED_STATEMENTS=0`` sends every statement as it is.
    """
    if not settings.APIOPS["DB_PREPARED_STATEMENTS"]:
        cursor.execute(sql, params)
        return
    name = prepared_name(sql)
    known = _prepared.setdefault(cursor.db.connection, set())
    if name not in known:
        cursor.execute(f"PREPARE {name} AS {_numbered(sql)}")
        known.add(name)
    arguments = ", ".join("%s" for _ in params)
    cursor.execute(f"EXECUTE {name}({arguments})" if params else f"EXECUTE {name}", params)
