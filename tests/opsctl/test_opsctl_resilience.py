"""Following a job survives a short outage of the API server (a restart, a 503): the job goes
on, so the wait does too. A throwaway HTTP server plays the API, answering the job's status,
then 503 twice, then the finished job."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.opsctl.conftest import opsctl_env, run_opsctl

JOB_ID = "2026-01-02T12:00:00+00:00_rollout-restart_0123abcd"


def job(status: str) -> dict:
    step = "success" if status == "success" else "running"
    return {
        "job_id": JOB_ID,
        "type": "rollout-restart",
        "status": status,
        "error": None,
        "steps": [{"order": 1, "name": "restart", "status": step, "detail": ""}],
    }


@pytest.fixture
def flaky_api() -> Iterator[str]:
    answers = [(200, job("running")), (503, None), (503, None), (200, job("success"))]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = answers.pop(0) if len(answers) > 1 else answers[0]
            body = body or {"detail": "Service unavailable.", "code": "unavailable"}
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()


def test_follow_keeps_going_through_a_short_outage(flaky_api, tmp_path):
    env = opsctl_env(tmp_path, OPSCTL_SERVER=flaky_api, OPSCTL_KEY="k" * 20)

    result = run_opsctl("job", "follow", JOB_ID, env=env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f"job {JOB_ID} success"


def test_a_job_that_cannot_be_read_at_all_is_not_waited_for(tmp_path):
    env = opsctl_env(tmp_path, OPSCTL_SERVER="http://127.0.0.1:9", OPSCTL_KEY="k" * 20)

    result = run_opsctl("job", "follow", JOB_ID, env=env, timeout=20)

    assert result.returncode == 6
    assert "cannot connect" in result.stderr
