"""The ``make run`` supervisor: children run in their own process groups, a ready line is
waited for, a child's death is noticed, and stopping reaches grandchildren too. The web server
it starts prints one access line per request."""

from __future__ import annotations

import os
import sys
import threading
import urllib.error
import urllib.request

import psutil
import pytest

from apiops_site import run

PY = sys.executable
# A child that starts a grandchild in its own process group, says it is ready, and waits.
PARENT = (
    "import subprocess, sys, time;"
    "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
    "print('grandchild', p.pid, flush=True); print('child ready', flush=True); time.sleep(60)"
)


@pytest.fixture
def supervisor():
    sup = run.Supervisor()
    yield sup
    sup.stop_all()


def test_start_waits_for_the_ready_line_and_stop_all_ends_the_whole_group(supervisor, capsys):
    proc = supervisor.start(run.Spec("child", [PY, "-c", PARENT], ready_text="child ready"), {})
    assert os.getpgid(proc.pid) == proc.pid  # its own process group
    grandchildren = psutil.Process(proc.pid).children()
    assert grandchildren

    supervisor.stop_all()

    assert proc.poll() is not None
    assert psutil.wait_procs(grandchildren, timeout=5)[1] == []


def test_a_child_dying_before_it_is_ready_is_an_error(supervisor):
    with pytest.raises(SystemExit, match="exited with 3 before it was ready"):
        supervisor.start(run.Spec("bad", [PY, "-c", "raise SystemExit(3)"], ready_text="never"), {})


def test_wait_returns_when_a_child_exits(supervisor):
    supervisor.start(run.Spec("short", [PY, "-c", "pass"]), {})

    assert supervisor.wait() == 1


def test_wait_returns_zero_when_asked_to_stop(supervisor):
    supervisor.start(run.Spec("long", [PY, "-c", "import time; time.sleep(60)"]), {})
    supervisor.stopping.set()

    assert supervisor.wait() == 0


def test_the_dev_api_key_is_kept_between_runs(monkeypatch, tmp_path):
    monkeypatch.setattr(run, "VAR", tmp_path)
    monkeypatch.setattr(run, "DEV_KEY_FILE", tmp_path / "dev-api-key")

    first = run.dev_api_key()

    assert run.dev_api_key() == first
    assert len(first) >= 32
    assert (tmp_path / "dev-api-key").stat().st_mode & 0o077 == 0


def test_the_web_server_prints_one_access_line_per_request(supervisor, capsys):
    port = str(run.free_port())
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "apiops_site.settings",
        "OPS_WEB_WORKERS": "1",
        "OPS_LOG_FORMAT": "plain",
        "OPS_LOG_LEVEL": "INFO",
    }
    proc = supervisor.start(run.web_spec(env, port), env)
    assert run.wait_http(f"http://127.0.0.1:{port}/health/live", 60, proc)
    path = "/health/live/one-line-check"

    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10)
    supervisor.stop_all()
    for thread in threading.enumerate():
        if thread.name == "log-web":
            thread.join(10)  # the output is read to its end once gunicorn has exited

    assert answer.value.code == 404
    lines = [line for line in capsys.readouterr().out.splitlines() if path in line]
    assert len(lines) == 1, lines
    assert "apiops.request" in lines[0]
