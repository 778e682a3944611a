"""opsctl through a server that fails or is slow, played by a throwaway HTTP server.

Following a job survives a short outage of the API server (a restart, a 503): the job goes
on, so the wait does too. A change whose answer does not come in time is sent again with the
same Idempotency-Key, so it runs once; when opsctl gives up, it prints the key to send it with
again."""

from __future__ import annotations

import json
import threading
import time
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


class SlowIdempotentApi:
    """Plays the API for ``POST .../scale`` as the real one treats an Idempotency-Key: the
    first request with a key runs (slowly: longer than the client waits), a request with the
    same key meanwhile is 409 ``idempotency_in_flight``, and after it the stored answer is
    replayed with ``Idempotent-Replayed: true``. ``runs`` counts the operations executed."""

    RUN_SECONDS = 1.0

    def __init__(self) -> None:
        self.keys: list[str | None] = []
        self.runs = 0
        self.answers: dict[str, dict] = {}
        self.lock = threading.Lock()

    def handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                key = self.headers.get("Idempotency-Key")
                with api.lock:
                    api.keys.append(key)
                    stored = api.answers.get(key)
                    if stored is None:
                        api.answers[key] = {}  # claimed: in flight
                if stored == {}:
                    body = {"detail": "In flight.", "code": "idempotency_in_flight"}
                    self.reply(409, body, {"Retry-After": "1"})
                elif stored:
                    self.reply(200, stored, {"Idempotent-Replayed": "true"})
                else:
                    time.sleep(api.RUN_SECONDS)
                    answer = {"kind": "Deployment", "namespace": "staging", "name": "web"}
                    answer |= {"replicas": 3, "previous_replicas": 2}
                    with api.lock:
                        api.runs += 1
                        api.answers[key] = answer
                    self.reply(200, answer, {})

            def reply(self, status: int, body: dict, headers: dict) -> None:
                raw = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(raw)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(raw)
                except OSError:
                    pass  # the client stopped waiting: its retry gets the answer

            def log_message(self, *args) -> None:
                pass

        return Handler


@pytest.fixture
def slow_api() -> Iterator[tuple[str, SlowIdempotentApi]]:
    api = SlowIdempotentApi()
    server = ThreadingHTTPServer(("127.0.0.1", 0), api.handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", api
    server.shutdown()
    thread.join()


SCALE = (
    "--request-timeout",
    "0.5",
    "scale",
    "-n",
    "staging",
    "deployment",
    "web",
    "--replicas",
    "3",
)


def test_a_change_retried_after_a_timeout_carries_its_key_and_runs_once(slow_api, tmp_path):
    url, api = slow_api
    env = opsctl_env(tmp_path, OPSCTL_SERVER=url, OPSCTL_KEY="k" * 20)

    retried = run_opsctl(*SCALE, env=env)
    sent = list(api.keys)
    other = run_opsctl(*SCALE, env=env)

    assert retried.returncode == 0, retried.stderr
    assert "staging/web scaled 2 -> 3" in retried.stdout
    assert "nothing ran now" in retried.stderr  # the retry got the first request's answer
    assert len(sent) >= 2
    assert len(set(sent)) == 1
    assert sent[0].startswith("opsctl-")
    assert other.returncode == 0
    assert sent[0] not in api.keys[len(sent) :]  # each run has a key of its own
    assert api.runs == 2


def test_a_change_that_timed_out_is_resent_with_the_printed_key_without_running_twice(
    slow_api, tmp_path
):
    url, api = slow_api
    env = opsctl_env(tmp_path, OPSCTL_SERVER=url, OPSCTL_KEY="k" * 20)

    gave_up = run_opsctl("--retries", "0", "--idempotency-key", "chg-1", *SCALE, env=env)
    time.sleep(api.RUN_SECONDS)
    resent = run_opsctl("--idempotency-key", "chg-1", *SCALE, env=env)

    assert gave_up.returncode == 7
    assert "--idempotency-key chg-1" in gave_up.stderr
    assert resent.returncode == 0, resent.stderr
    assert "nothing ran now" in resent.stderr
    assert api.keys == ["chg-1", "chg-1"]
    assert api.runs == 1
