"""The ``make run`` supervisor: children run in their own process groups, a ready line is
waited for, a child's death is noticed, a restartable child (the worker) is started again
unless it keeps dying, and stopping reaches grandchildren too, orphans included. The web server
it starts prints one access line per request. End to end: a SIGKILLed worker is replaced
together with its django-q2 cluster, and Ctrl-C of ``make run`` leaves no process behind."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from apiops_site import run
from tests.jobs.test_worker import child_db_url

PY = sys.executable
REPO = Path(run.__file__).resolve().parent.parent
# A child that starts a grandchild in its own process group, says it is ready, and waits.
PARENT = (
    "import subprocess, sys, time;"
    "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
    "print('grandchild', p.pid, flush=True); print('child ready', flush=True); time.sleep(60)"
)


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
            thread.join(10)  # the output is read to its end once the web server has exited

    assert answer.value.code == 404
    lines = [line for line in capsys.readouterr().out.splitlines() if path in line]
    assert len(lines) == 1, lines
    assert "apiops.request" in lines[0]


# A child that says it is ready (with its pid) and waits.
READY = "import os, time; print('ready', os.getpid(), flush=True); time.sleep(60)"


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"{what} not reached within {timeout:g} s"
        time.sleep(0.05)
    return value


def child_environment(kubesim) -> dict[str, str]:
    """What a child needs to reach the test database and the test's kubesim."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "apiops_site.settings",
        "OPS_DB_URL": child_db_url(),
        "OPS_KUBECONFIG": kubesim.kubeconfig_path,
    }


def supervise_in_background(supervisor: run.Supervisor) -> tuple[threading.Thread, list[int]]:
    status: list[int] = []
    thread = threading.Thread(target=lambda: status.append(supervisor.wait()), daemon=True)
    thread.start()
    return thread, status


def test_a_restartable_child_that_is_killed_is_started_again(supervisor):
    spec = run.Spec("worker", [PY, "-c", READY], ready_text="ready", restart=True)
    first = supervisor.start(spec, {})
    thread, status = supervise_in_background(supervisor)

    first.kill()

    second = wait_for(
        lambda: next((c.proc for c in supervisor.children if c.proc is not first), None),
        10,
        "a second worker",
    )
    assert second.poll() is None
    supervisor.stopping.set()
    thread.join(5)
    assert status == [0]


def test_a_restartable_child_that_keeps_dying_at_once_stops_everything(supervisor, capsys):
    supervisor.start(run.Spec("web", [PY, "-c", "import time; time.sleep(60)"]), {})
    supervisor.start(run.Spec("worker", [PY, "-c", "raise SystemExit(3)"], restart=True), {})

    assert supervisor.wait() == 1

    out = capsys.readouterr().out
    assert out.count("worker exited with 3; starting it again") == run.RESTART_LIMIT
    assert "worker exited with 3; stopping" in out


def test_stop_all_ends_what_a_dead_child_left_behind(supervisor):
    orphan_maker = (
        "import subprocess, sys, time;"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],"
        " start_new_session=True);"
        "print('ready', flush=True); time.sleep(60)"
    )
    proc = supervisor.start(run.Spec("child", [PY, "-c", orphan_maker], ready_text="ready"), {})
    [orphan] = psutil.Process(proc.pid).children()
    proc.kill()  # the grandchild, in a session of its own, is now nobody's descendant
    proc.wait()

    supervisor.stop_all()

    assert psutil.wait_procs([orphan], timeout=5)[1] == []


@pytest.mark.django_db(databases=["default", "audit"], transaction=True)
def test_make_run_replaces_a_sigkilled_worker_and_its_whole_cluster(supervisor, kubesim):
    env = child_environment(kubesim)
    [spec] = run.EXTRA_PROCESSES
    assert spec.restart
    first = supervisor.start(spec, env)
    cluster = psutil.Process(first.pid).children(recursive=True)
    assert len(cluster) >= 5  # qcluster, sentinel, workers, monitor, pusher
    thread, status = supervise_in_background(supervisor)

    first.send_signal(signal.SIGKILL)

    second = wait_for(
        lambda: next((c.proc for c in supervisor.children if c.proc is not first), None),
        30,
        "a new worker",
    )
    # No orphan: the old cluster (in a session of its own) is gone with its supervisor.
    assert psutil.wait_procs(cluster, timeout=10)[1] == []
    wait_for(lambda: len(psutil.Process(second.pid).children(recursive=True)) >= 5, 60, "cluster")
    new_worker = psutil.Process(second.pid)
    new_cluster = new_worker.children(recursive=True)
    supervisor.stopping.set()
    thread.join(5)
    supervisor.stop_all()
    assert status == [0]
    assert psutil.wait_procs([new_worker, *new_cluster], timeout=10)[1] == []


@pytest.mark.django_db(databases=["default", "audit"], transaction=True)
def test_ctrl_c_of_make_run_leaves_no_process_behind(kubesim, tmp_path):
    env = {
        **child_environment(kubesim),
        "OPS_PORT": str(run.free_port()),
        "OPS_API_KEY": "make-run-test-key-0123456789abcdef",
        "OPS_WEB_WORKERS": "1",
    }
    log = tmp_path / "make-run.log"
    with log.open("wb") as out:
        make_run = subprocess.Popen(
            [PY, "-m", "apiops_site.run"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # a terminal's foreground process group of its own
        )
    everything: list[psutil.Process] = []
    try:
        wait_for(lambda: "ApiOps is running at" in log.read_text(), 120, "make run ready")
        # It says how to reach it with opsctl: the server and key it serves.
        [base] = re.findall(r"ApiOps is running at (\S+)/", log.read_text())
        assert f"OPSCTL_SERVER={base} OPSCTL_KEY=" in log.read_text()
        workers = wait_for(
            lambda: re.findall(r"ready for work at (\d+)", log.read_text()), 30, "workers"
        )
        everything = psutil.Process(make_run.pid).children(recursive=True)
        assert {int(pid) for pid in workers} <= {proc.pid for proc in everything}

        os.killpg(make_run.pid, signal.SIGINT)  # Ctrl-C

        assert make_run.wait(timeout=15) == 0
        assert psutil.wait_procs(everything, timeout=5)[1] == []
    finally:
        for proc in [make_run, *everything]:  # whatever is left, if the stop failed
            with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
                proc.kill()
        make_run.wait()
