"""The embedded PostgreSQL shared by parallel processes: a database that several of them find
missing at once (pytest-xdist workers on a fresh clone) is created once, and none of them fails
on the others' create."""

from __future__ import annotations

import os
import secrets
import threading

import psycopg2
import pytest
from django.conf import settings

from apiops_site import db

pytestmark = pytest.mark.skipif(
    settings.DATABASES["default"]["ENGINE"] != "apiops_site.db",
    reason="OPS_DB_URL is set: the embedded server is not in use",
)


def _connect(server: db.EmbeddedServer):
    conn = psycopg2.connect(
        dbname="postgres", user=db.SUPERUSER, host=server.socket_dir, port=server.port
    )
    conn.autocommit = True
    return conn


def test_parallel_creates_of_a_missing_database_all_succeed():
    server = db.ensure_running()
    name = f"apiops_race_{os.getpid()}_{secrets.token_hex(3)}"
    start = threading.Barrier(6)
    errors: list[BaseException] = []

    def ensure() -> None:
        start.wait()
        try:
            db._ensure_database(server, name)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=ensure) for _ in range(start.parties)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)

        assert errors == []
        conn = _connect(server)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM pg_database WHERE datname = %s", [name])
                assert cur.fetchone()[0] == 1
        finally:
            conn.close()
    finally:
        conn = _connect(server)
        try:
            with conn.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            conn.close()
