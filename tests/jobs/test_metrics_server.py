"""The worker's own /metrics (``python -m jobs.worker --metrics-port``): what the processes
sharing its metrics directory counted, summed, behind the bearer token."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from jobs import metrics_server

COUNT = """
from prometheus_client import Counter
jobs = Counter("apiops_jobs", "Jobs that ended.", ["type", "status"])
jobs.labels("pg-backup", "success").inc(%d)
"""


def get(url: str, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - our own server
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@pytest.fixture
def served(tmp_path, monkeypatch):
    directory = tmp_path / "metrics"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    monkeypatch.setenv("OPS_SECRETS_DIR", str(tmp_path / "secrets"))
    monkeypatch.setenv("OPS_METRICS_TOKEN", "worker-token-123")
    server = metrics_server.serve(0, host="127.0.0.1")
    env = {"PROMETHEUS_MULTIPROC_DIR": str(directory), "PATH": "/usr/bin:/bin"}
    for n in (2, 3):  # two processes, as two django-q2 workers
        subprocess.run([sys.executable, "-c", COUNT % n], env=env, check=True)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_worker_serves_the_sum_of_its_processes_behind_the_token(served):
    assert get(served + "/metrics")[0] == 401
    assert get(served + "/metrics", "wrong")[0] == 401
    assert get(served + "/other", "worker-token-123")[0] == 404

    status, text = get(served + "/metrics", "worker-token-123")

    assert status == 200
    assert 'apiops_jobs_total{status="success",type="pg-backup"} 5.0' in text


def test_the_secret_file_wins_over_the_environment(tmp_path):
    (tmp_path / "metrics-token").write_text("from-file\n")

    environ = {"OPS_SECRETS_DIR": str(tmp_path), "OPS_METRICS_TOKEN": "from-env"}

    assert metrics_server.metrics_token(environ) == "from-file"
    assert metrics_server.metrics_token({"OPS_SECRETS_DIR": str(tmp_path / "none")}) is None
