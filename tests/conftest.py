"""Shared pytest configuration: the kubesim fixtures for every test package, a test database
of its own for each pytest process (so each pytest-xdist worker has one), every connection
closed before that database is dropped, and the tests of a module that share a module-scoped
fixture kept on one pytest-xdist worker."""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

import psutil
import pytest
from xdist.scheduler import LoadGroupScheduling

pytest_plugins = ["kubesim.pytest_plugin"]

_OWN_TEST_DB = re.compile(r"^test_(?P<base>\w+)_p(?P<pid>\d+)$")


_TESTS_DIR = Path(__file__).resolve().parent
_SHARED_SCOPE = re.compile(r"""scope\s*=\s*["'](module|package)["']""")


@functools.cache
def _shares_module_fixtures(test_file: str) -> bool:
    """Whether ``test_file`` (a path relative to the repository) or a conftest.py between it and
    tests/ defines a module- or package-scoped fixture (the opsctl stack, an installed copy of
    opsctl, rendered manifests)."""
    path = _TESTS_DIR.parent / test_file
    sources = [path, *(d / "conftest.py" for d in path.parents if d.is_relative_to(_TESTS_DIR))]
    sources = [s for s in sources if s != _TESTS_DIR / "conftest.py" and s.is_file()]
    return any(_SHARED_SCOPE.search(s.read_text(encoding="utf-8")) for s in sources)


class _LoadWithSharedModules(LoadGroupScheduling):
    """``--dist loadgroup``, where every test is its own unit of work (as with ``load``) except
    in a module that shares a module-scoped fixture: its tests go to one worker, back to back.

    Spread over several workers, each would build that fixture again (the opsctl stack starts
    kubesim, the web server and a job worker), and the stack's teardown empties what its processes
    committed before the worker runs anything else. Decided here, by the test file's path,
    because xdist's own ``xdist_group`` marks do not reach the scheduler with this pytest (it
    no longer reads ``item._nodeid``).
    """

    def _split_scope(self, nodeid: str) -> str:
        if "@" in nodeid:
            return super()._split_scope(nodeid)
        test_file = nodeid.split("::", 1)[0]
        return test_file if _shares_module_fixtures(test_file) else nodeid


def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") == "loadgroup":
        return _LoadWithSharedModules(config, log)
    return None


def _drop_stale_test_databases(base: str) -> None:
    """Drop test databases left behind by pytest processes that no longer run (killed runs)."""
    from django.db import connections

    with connections["default"]._nodb_cursor() as cursor:
        cursor.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", [f"test_{base}_p%"])
        for (name,) in cursor.fetchall():
            match = _OWN_TEST_DB.match(name)
            if match and match["base"] == base and not psutil.pid_exists(int(match["pid"])):
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def django_db_modify_db_settings(
    django_db_modify_db_settings_parallel_suffix, django_db_blocker
) -> None:
    """Name the test database after this process: ``test_<name>_p<pid>``.

    Several pytest runs may share one PostgreSQL server (the embedded one under var/ is shared
    by everything in a checkout); with Django's fixed ``test_<name>`` they would drop each
    other's database. Both aliases (``default`` and ``audit``) get the same name, so they stay
    one database reached through two connections.
    """
    from django.conf import settings

    base = settings.DATABASES["default"]["NAME"]
    name = f"test_{base}_p{os.getpid()}"
    for alias in ("default", "audit"):
        if alias in settings.DATABASES:
            settings.DATABASES[alias].setdefault("TEST", {})["NAME"] = name
    with django_db_blocker.unblock():
        _drop_stale_test_databases(base)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's database setup, closing this thread's connections before the teardown.

    Django drops the test database through ``default`` only; the ``audit`` alias is a second
    connection to the same database, left open by whichever test used it last, and PostgreSQL
    refuses to drop a database someone is connected to ("is being accessed by other users").
    This fixture wraps the original, so its teardown runs first.
    """
    yield
    from django.db import connections

    with django_db_blocker.unblock():
        connections.close_all()


def _flush_past_the_audit_triggers() -> None:
    """Let the test database's flush (pytest-django's, between transactional tests) empty
    ``ops_log``, whose trigger refuses TRUNCATE to the application.

    The flush runs its statements in one transaction; ``SET LOCAL session_replication_role =
    replica`` (superuser only, as the test database's user is) first turns the table's
    ordinary triggers off for that transaction alone. Nothing outside the tests does this.
    """
    from django.db.backends.postgresql.operations import DatabaseOperations

    original = DatabaseOperations.sql_flush
    if getattr(original, "bypasses_audit_triggers", False):
        return

    def sql_flush(self, style, tables, **kwargs):
        statements = original(self, style, tables, **kwargs)
        if statements:
            statements = ["SET LOCAL session_replication_role = replica", *statements]
        return statements

    sql_flush.bypasses_audit_triggers = True
    DatabaseOperations.sql_flush = sql_flush


_flush_past_the_audit_triggers()


@pytest.fixture
def admin_client(db, admin_user):
    """pytest-django's logged-in superuser client, its login left out of the audit log.

    ``force_login`` sends ``user_logged_in`` like a real login, which writes an ``ops_log``
    row (ops/logins.py); the tests that count rows of their own would count it too. The tests
    of the login rows log in through the login form instead.
    """
    from django.contrib.auth.signals import user_logged_in
    from django.test import Client

    from ops import logins

    client = Client()
    user_logged_in.disconnect(dispatch_uid=logins.LOGGED_IN_UID)
    try:
        client.force_login(admin_user)
    finally:
        user_logged_in.connect(logins.on_logged_in, dispatch_uid=logins.LOGGED_IN_UID)
    return client
