"""The shared test configuration: a single database test run on its own leaves nothing behind.

Runs pytest in a subprocess on one test that uses both database aliases, then looks at the
server: that run's test database must be gone, dropped without a teardown warning.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

REPO = Path(__file__).resolve().parents[1]
ONE_TEST = "tests/ops/test_audit_api.py::test_the_list_is_newest_first_with_every_column"


@pytest.mark.django_db
def test_a_database_test_run_alone_drops_its_database_without_a_warning(settings):
    child = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", ONE_TEST],
        cwd=REPO,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = child.communicate(timeout=240)
    finally:
        child.kill()
    # Each pytest process names its database test_<name>_p<pid> (tests/conftest.py).
    ours = settings.DATABASES["default"]["TEST"]["NAME"]
    theirs = f"{ours.rsplit('_p', 1)[0]}_p{child.pid}"

    assert child.returncode == 0, output[-3000:]
    assert "1 passed" in output
    assert "Error when trying to teardown test databases" not in output, output[-3000:]
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_database WHERE datname = %s", [theirs])
        assert cursor.fetchone()[0] == 0
