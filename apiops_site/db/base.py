"""Django's PostgreSQL backend, pointed at the embedded server (started on demand)."""

from __future__ import annotations

from django.db.backends.postgresql import base

from apiops_site.db import DEFAULT_DB_NAME, SUPERUSER, ensure_running


class DatabaseWrapper(base.DatabaseWrapper):
    """Fills in the unix-socket host and port of the embedded server on each new connection."""

    def get_connection_params(self):
        params = super().get_connection_params()
        # The test runner connects to "postgres" to create test_<name>; the app database is
        # created on first use so a fresh clone needs no manual createdb.
        dbname = params.get("database") or DEFAULT_DB_NAME
        wanted = (
            DEFAULT_DB_NAME if dbname in ("postgres",) or dbname.startswith("test_") else dbname
        )
        server = ensure_running(wanted)
        params["host"] = server.socket_dir
        params["port"] = server.port
        params.setdefault("user", SUPERUSER)
        return params
