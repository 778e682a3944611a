"""A real stack for the opsctl tests, one per module: kubesim with the demo cluster, the web server
serving the API on a free port and a job worker, both on the test database; and ``run_opsctl``,
which drives ``python -m opsctl`` from the repository root as a user would."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from apiops_site import run
from kubesim.pytest_plugin import DEMO_YAML, FAST, _all_demo_pods_ready
from kubesim.sim import KubeSim
from tests.jobs.test_worker import FAST as WORKER_FAST
from tests.jobs.test_worker import child_db_url, running_cluster

REPO = Path(run.__file__).resolve().parent.parent
KEY = "opsctl-test-bootstrap-key-0123456789"


@dataclass
class Stack:
    """Where the test server listens, its key, the simulator behind it, a child environment."""

    url: str
    key: str
    sim: KubeSim
    env: dict[str, str]  # the server's environment (database, kubeconfig) for manage.py


def server_env(db_url: str, kubeconfig: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "apiops_site.settings",
        "OPS_DB_URL": db_url,
        "OPS_KUBECONFIG": kubeconfig,
        "OPS_ALLOWED_NAMESPACES": "prod,staging",
        "OPS_API_KEY": KEY,
        "OPS_API_KEY_ACTOR": "bootstrap",
        "OPS_AUTH_FAILURE_LIMIT": "1000",
        "OPS_LOG_LEVEL": "WARNING",
        "OPS_K8S_BACKOFF": "0.01",
        "OPS_K8S_RETRY_MAX_WAIT": "0.1",
    }


@contextlib.contextmanager
def web_server(env: dict[str, str], log: Path) -> Iterator[str]:
    """The web server (granian) on a free port of 127.0.0.1 (never 8000); its URL."""
    port = str(run.free_port())
    with log.open("wb") as out:
        proc = subprocess.Popen(
            run.web_spec({**env, "OPS_WEB_WORKERS": "2"}, port).argv,
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        assert run.wait_http(f"{url}/health/live", 60, proc), log.read_text()[-3000:]
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def stack_settings() -> dict[str, str]:
    """Settings of the module's server on top of :func:`server_env` (a module overrides this
    fixture, e.g. to set ``OPS_APPROVAL_REQUIRED``: each module has its own stack anyway)."""
    return {}


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker, tmp_path_factory, stack_settings) -> Iterator[Stack]:
    """kubesim (demo cluster, every pod Ready), the API and a worker, for one test module."""
    logs = tmp_path_factory.mktemp("stack")
    with django_db_blocker.unblock():
        connection.close()  # one opened before the test database existed names the real one
        db_url = child_db_url()
    with KubeSim(**FAST) as sim:
        sim.load_file(DEMO_YAML)
        sim.wait_for(lambda: _all_demo_pods_ready(sim), timeout=20, message="demo not Ready")
        env = {**server_env(db_url, sim.kubeconfig_path), **stack_settings}
        with (
            django_db_blocker.unblock(),
            # Waits give up after 5 s, so a job that cannot finish fails within a test.
            running_cluster(
                sim.kubeconfig_path,
                logs / "worker.log",
                env={**WORKER_FAST, "OPS_JOB_WAIT_TIMEOUT": "5", **stack_settings},
            ),
            web_server(env, logs / "web.log") as url,
        ):
            yield Stack(url=url, key=KEY, sim=sim, env=env)
    # The server and the worker committed what they wrote (jobs, keys, audit rows, queued
    # ticks) outside any test transaction: empty the test database again, as a transactional
    # test does after itself, so later tests start from nothing.
    with django_db_blocker.unblock():
        call_command("flush", interactive=False, verbosity=0)


def opsctl_env(home: Path, **extra: str) -> dict[str, str]:
    """A user's environment: a home of its own, no opsctl settings unless given, and no
    COLUMNS/LINES (pytest-xdist workers have them): a terminal's size is the terminal's."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPSCTL_", "XDG_CONFIG")) and k not in ("COLUMNS", "LINES")
    }
    return {**env, "HOME": str(home), **extra}


def run_opsctl(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess:
    """``python -m opsctl ARGS`` from the repository root, output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "opsctl", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def user(stack, tmp_path) -> dict[str, str]:
    """The environment of a user pointed at the stack with OPSCTL_SERVER and OPSCTL_KEY."""
    return opsctl_env(tmp_path / "home", OPSCTL_SERVER=stack.url, OPSCTL_KEY=stack.key)
