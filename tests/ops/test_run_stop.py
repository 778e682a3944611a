"""``make run`` never lies: a busy port is refused before anything starts (exit 2, the port
named, nothing announced); a child that dies stops everything with its reason (exit status or
signal, its last lines), and so does the embedded PostgreSQL stopping under it; a SIGTERM, once
or twice, to the supervisor or to its whole process group (make forwarding it), stops every
process within 5 s — 20 runs over fake children, a child that ignores SIGTERM, and real runs;
``make stop`` and ``manage.py embedded_db stop`` stop an embedded PostgreSQL that a
``manage.py`` call started (in a copy of the checkout, so the suite's own server is left be);
a web worker that dies is replaced while the server keeps answering, and no process variable
passes for a request header.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from apiops_site import run
from tests.jobs.test_worker import child_db_url
from tests.ops.test_run import wait_for

PY = sys.executable
REPO = Path(run.__file__).resolve().parent.parent
FAKES = REPO / "tests" / "ops" / "supervised_fakes.py"
# What SPEC allows a stop to take, from the signal to the last process gone.
STOP_LIMIT = 5.0


def wait_for_line(log: Path, text: str, timeout: float, proc: subprocess.Popen) -> str:
    def seen() -> str | None:
        content = log.read_text(errors="replace")
        if text in content:
            return content
        assert proc.poll() is None, f"exited with {proc.returncode} before {text!r}: {content}"
        return None

    return wait_for(seen, timeout, repr(text))


def session_processes(sid: int) -> list[psutil.Process]:
    """Every live process of session ``sid`` (make, the supervisor, steps) and below them."""
    found = {}
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if os.getsid(proc.pid) == sid:
                found[proc.pid] = proc
                for below in proc.children(recursive=True):
                    found[below.pid] = below
    return [p for p in found.values() if _alive(p)]


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def time_to_stop(procs: list[psutil.Process], limit: float = 30.0) -> float:
    """Seconds until none of ``procs`` runs (a zombie has stopped); ``limit`` if some still
    run then."""
    start = time.monotonic()
    while any(_alive(p) for p in procs):
        if time.monotonic() - start > limit:
            return limit
        time.sleep(0.02)
    return time.monotonic() - start


def send_stop(leader: int, supervisor: int, how: str) -> None:
    """SIGTERM as a supervisor or a cleanup sends it."""
    if how in ("group", "group twice"):
        os.killpg(leader, signal.SIGTERM)  # make and the supervisor; make forwards it too
        if how == "group twice":
            time.sleep(random.uniform(0, 0.05))
            os.killpg(leader, signal.SIGTERM)
    else:
        os.kill(supervisor, signal.SIGTERM)
        if how == "process twice":
            time.sleep(random.uniform(0, 0.05))
            os.kill(supervisor, signal.SIGTERM)


def kill_all(procs) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            proc.kill()


def start_make(tmp_path: Path, recipe: str, env: dict[str, str] | None = None, cwd=None):
    """``make run`` with ``recipe`` as its recipe, in a session of its own; (make, log)."""
    makefile = tmp_path / "Makefile"
    makefile.write_text(f"run:\n\t{recipe}\n")
    log = tmp_path / f"make-{time.monotonic_ns()}.log"
    with log.open("wb") as out:
        make = subprocess.Popen(
            ["make", "-s", "-f", str(makefile), "run"],
            cwd=cwd or REPO,
            env=env or dict(os.environ),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return make, log


def supervisor_below(make: subprocess.Popen, marker: str) -> psutil.Process:
    def find():
        for proc in psutil.Process(make.pid).children():
            with contextlib.suppress(psutil.Error):
                if any(marker in part for part in proc.cmdline()):
                    return proc
        return None

    return wait_for(find, 30, "the supervisor below make")


# --- a busy port ------------------------------------------------------------------------------


def test_a_busy_port_is_refused_before_anything_starts():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = {
            **os.environ,
            "OPS_PORT": str(port),
            "OPS_API_KEY": "busy-port-test-key-0123456789",
            # Were anything started, it would be a migrate against this (failing) database.
            "OPS_DB_URL": "postgresql://nobody@127.0.0.1:1/nothing",
        }
        proc = subprocess.Popen(
            [PY, "-m", "apiops_site.run"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        out, _ = proc.communicate(timeout=60)

    assert proc.returncode == run.EXIT_PORT_BUSY, out
    assert f"port {port} on 127.0.0.1 is already in use; nothing was started" in out
    assert "running at" not in out
    assert "API key" not in out
    assert "[migrate]" not in out
    assert "[web]" not in out
    assert session_processes(proc.pid) == []


def test_a_port_that_is_not_a_number_is_refused():
    assert run.port_refusal("80a") == "OPS_PORT='80a' is not a TCP port (1-65535)"
    assert run.port_refusal("70000") is not None
    assert run.port_refusal(str(run.free_port())) is None


# --- a child dies -----------------------------------------------------------------------------


def test_a_web_server_that_is_killed_stops_everything_with_its_reason(supervisor, capsys):
    sleeper = "import time; time.sleep(60)"
    web = supervisor.start(
        run.Spec("web", [PY, "-c", f"print('bound', flush=True); {sleeper}"], ready_text="bound"),
        {},
    )
    worker = supervisor.start(run.Spec("worker", [PY, "-c", sleeper], restart=True), {})

    web.kill()
    status = supervisor.wait()
    supervisor.stop_all()

    assert status == 1
    out = capsys.readouterr().out
    assert "apiops: web was killed by SIGKILL; stopping; its last output:\n  bound" in out
    assert worker.poll() is not None


def test_a_child_that_fails_says_how_in_its_last_lines(supervisor, capsys):
    failing = "import sys; print('cannot bind: Address already in use', flush=True); sys.exit(1)"
    supervisor.start(run.Spec("web", [PY, "-c", failing]), {})

    assert supervisor.wait() == 1
    assert "web exited with 1; stopping; its last output:\n  cannot bind" in capsys.readouterr().out


def test_a_watched_process_that_stops_ends_everything(supervisor, capsys):
    outside = subprocess.Popen([PY, "-c", "import time; time.sleep(60)"])
    supervisor.watched["the database"] = lambda: None if outside.poll() is None else "stopped"
    child = supervisor.start(run.Spec("web", [PY, "-c", "import time; time.sleep(60)"]), {})

    outside.kill()
    outside.wait()
    status = supervisor.wait()
    supervisor.stop_all()

    assert status == 1
    assert "apiops: the database stopped; stopping" in capsys.readouterr().out
    assert child.poll() is not None


def test_a_stop_during_a_start_up_step_ends_the_step_at_once(supervisor):
    """A SIGTERM while migrate (say) runs: the step is ended, nothing waits for it."""
    marker = f"step-{time.monotonic_ns()}"
    threading.Timer(0.5, supervisor.stopping.set).start()
    started = time.monotonic()

    finished = supervisor.run_once(
        "migrate", [PY, "-c", f"import time; print('{marker}', flush=True); time.sleep(60)"], {}
    )

    assert finished is False
    assert time.monotonic() - started < STOP_LIMIT
    assert not [
        p for p in psutil.process_iter(["cmdline"]) if marker in " ".join(p.info["cmdline"] or [])
    ]


def test_a_failed_start_up_step_says_why(supervisor):
    with pytest.raises(SystemExit, match="migrate exited with 3; its last output:\n  no database"):
        supervisor.run_once(
            "migrate", [PY, "-c", "print('no database', flush=True); raise SystemExit(3)"], {}
        )


# --- SIGTERM, over fake children ----------------------------------------------------------------

WAYS = ["group", "process", "process twice", "group twice"]


def test_sigterm_stops_everything_within_5_s_in_20_runs(tmp_path):
    """Each way of sending it, five times, at a random moment of the supervisor's wait."""
    took = []
    for attempt in range(20):
        how = WAYS[attempt % len(WAYS)]
        make, log = start_make(tmp_path, f"{PY} {FAKES}")
        everything: list[psutil.Process] = []
        try:
            supervisor = supervisor_below(make, str(FAKES))
            wait_for_line(log, "supervising", 30, make)
            everything = [psutil.Process(make.pid), *psutil.Process(make.pid).children(True)]
            assert len(everything) == 8  # make, the supervisor, 3 children, 3 grandchildren
            time.sleep(random.uniform(0, 0.6))

            send_stop(make.pid, supervisor.pid, how)
            seconds = time_to_stop(everything)
            took.append(seconds)
            if how.startswith("process"):  # make itself ends when its recipe ends
                assert make.wait(5) == 0, log.read_text()
        finally:
            kill_all(everything)
            make.wait()
        assert seconds < STOP_LIMIT, f"run {attempt} ({how}): {seconds:.2f} s; {log.read_text()}"
    print(f"stops over 20 runs: max {max(took):.2f} s, mean {sum(took) / len(took):.2f} s")


def test_a_child_that_ignores_sigterm_is_killed_within_5_s(tmp_path):
    make, log = start_make(tmp_path, f"{PY} {FAKES} --stubborn")
    everything: list[psutil.Process] = []
    try:
        wait_for_line(log, "supervising", 30, make)
        everything = [psutil.Process(make.pid), *psutil.Process(make.pid).children(True)]

        os.killpg(make.pid, signal.SIGTERM)
        seconds = time_to_stop(everything)
    finally:
        kill_all(everything)
        make.wait()

    assert seconds < STOP_LIMIT, log.read_text()
    assert "web-like did not stop within 3 s: killing it" in log.read_text()


# --- real runs (the test database and the test's kubesim) --------------------------------------


def real_env(kubesim) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "apiops_site.settings",
        "OPS_DB_URL": child_db_url(),
        "OPS_KUBECONFIG": kubesim.kubeconfig_path,
        "OPS_PORT": str(run.free_port()),
        "OPS_API_KEY": "make-run-stop-test-key-0123456789",
        "OPS_WEB_WORKERS": "1",
        "OPS_Q_WORKERS": "1",
    }


# The repository's own Makefile, without installing into .venv (the suite already runs in it).
MAKE_RUN = [
    "make",
    "-s",
    "-o",
    ".venv/.installed-runtime",
    f"PY={PY}",
    "run",
]


def start_real(tmp_path: Path, env: dict[str, str], cwd: Path = REPO):
    log = tmp_path / f"make-run-{time.monotonic_ns()}.log"
    with log.open("wb") as out:
        make = subprocess.Popen(
            MAKE_RUN,
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return make, log


@pytest.mark.django_db(databases=["default", "audit"], transaction=True)
@pytest.mark.parametrize("how", ["group twice", "process"])
def test_sigterm_stops_a_real_make_run_within_5_s(kubesim, tmp_path, how):
    make, log = start_real(tmp_path, real_env(kubesim))
    everything: list[psutil.Process] = []
    try:
        wait_for_line(log, "ApiOps is running at", 180, make)
        supervisor = supervisor_below(make, "apiops_site.run")
        everything = [psutil.Process(make.pid), *psutil.Process(make.pid).children(True)]
        assert len(everything) >= 7  # make, run, granian and its workers, the worker's tree

        send_stop(make.pid, supervisor.pid, how)
        seconds = time_to_stop(everything)
    finally:
        kill_all(everything)
        make.wait()

    assert seconds < STOP_LIMIT, log.read_text()[-3000:]
    assert "apiops: SIGTERM received; stopping everything" in log.read_text()


@pytest.mark.django_db(databases=["default", "audit"], transaction=True)
def test_a_real_make_run_stops_everything_when_its_web_server_is_killed(kubesim, tmp_path):
    make, log = start_real(tmp_path, real_env(kubesim))
    everything: list[psutil.Process] = []
    try:
        text = wait_for_line(log, "ApiOps is running at", 180, make)
        [web_pid] = re.findall(r"\[web\] .*Starting granian \(main PID: (\d+)\)", text)
        everything = [psutil.Process(make.pid), *psutil.Process(make.pid).children(True)]

        os.kill(int(web_pid), signal.SIGKILL)
        make.wait(30)
        seconds = time_to_stop(everything, limit=10)
    finally:
        kill_all(everything)
        make.wait()

    assert make.returncode != 0
    assert "apiops: web was killed by SIGKILL; stopping" in log.read_text()
    assert seconds < 10


# --- the embedded PostgreSQL, in a copy of the checkout ---------------------------------------


@pytest.fixture(scope="module")
def checkout_copy():
    """The checkout's files in a directory of their own: its var/ holds a server of its own.

    Not under pytest's tmp_path: the server runs as another user when the tests run as root,
    and must be able to reach its data directory.
    """
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    root = Path(tempfile.mkdtemp(prefix="apiops-checkout-"))
    root.chmod(0o755)
    for name in filter(None, files):
        source = REPO / name.decode()
        if source.is_file():
            target = root / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    yield root
    subprocess.run([PY, "-m", "apiops_site.db", "stop"], cwd=root, check=False, timeout=60)
    shutil.rmtree(root, ignore_errors=True)


def copy_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPS_DB_URL", "DATABASE_URL")}
    return {**env, "DJANGO_SETTINGS_MODULE": "apiops_site.settings"}


def manage(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PY, "manage.py", *args],
        cwd=root,
        env=copy_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def postmaster(root: Path) -> psutil.Process | None:
    try:
        pid = int((root / "var" / "pgdata" / "postmaster.pid").read_text().split()[0])
        proc = psutil.Process(pid)
    except (OSError, ValueError, IndexError, psutil.Error):
        return None
    return proc if _alive(proc) else None


def test_make_stop_stops_the_postgresql_a_manage_py_call_started(checkout_copy):
    assert manage(checkout_copy, "embedded_db", "status").returncode == 3

    shown = manage(checkout_copy, "showmigrations", "ops")  # any call that reaches the database
    assert shown.returncode == 0, shown.stderr
    server = postmaster(checkout_copy)
    assert server is not None
    assert manage(checkout_copy, "embedded_db", "status").returncode == 0

    stop = subprocess.run(
        ["make", "-s", f"PY={PY}", "stop"],
        cwd=checkout_copy,
        env=copy_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert stop.returncode == 0, stop.stderr
    assert "embedded PostgreSQL" in stop.stdout
    assert "stopped" in stop.stdout
    assert time_to_stop([server], limit=10) < 10
    assert manage(checkout_copy, "embedded_db", "status").returncode == 3


def test_manage_py_embedded_db_stop_stops_it_too(checkout_copy):
    assert manage(checkout_copy, "embedded_db", "start").returncode == 0
    server = postmaster(checkout_copy)
    assert server is not None

    stopped = manage(checkout_copy, "embedded_db", "stop")

    assert stopped.returncode == 0, stopped.stderr
    assert time_to_stop([server], limit=10) < 10
    assert postmaster(checkout_copy) is None


def test_make_run_stops_when_its_database_stops_and_stops_the_one_it_started(
    checkout_copy, kubesim, tmp_path
):
    subprocess.run([PY, "-m", "apiops_site.db", "stop"], cwd=checkout_copy, timeout=60)
    env = {
        **copy_env(),
        "OPS_KUBECONFIG": kubesim.kubeconfig_path,
        "OPS_PORT": str(run.free_port()),
        "OPS_API_KEY": "make-run-db-test-key-0123456789",
        "OPS_WEB_WORKERS": "1",
        "OPS_Q_WORKERS": "1",
    }
    # First: its database stops under it (as `manage.py embedded_db stop` does).
    make, log = start_real(tmp_path, env, cwd=checkout_copy)
    everything: list[psutil.Process] = []
    try:
        wait_for_line(log, "ApiOps is running at", 300, make)
        everything = [psutil.Process(make.pid), *psutil.Process(make.pid).children(True)]
        assert manage(checkout_copy, "embedded_db", "stop").returncode == 0

        make.wait(30)
        time_to_stop(everything, limit=10)
    finally:
        kill_all(everything)
        make.wait()
    assert make.returncode != 0
    # A child's next connection may have started a new server before make run looked: it
    # stops all the same, saying so.
    stopped = (
        r"apiops: the embedded PostgreSQL \(pid \d+\) stopped(; | and another .* runs; )stopping"
    )
    assert re.search(stopped, log.read_text())

    # Then: a SIGTERM to the group stops the server this run started, within the 5 s too.
    make, log = start_real(tmp_path, env, cwd=checkout_copy)
    try:
        wait_for_line(log, "ApiOps is running at", 300, make)
        server = postmaster(checkout_copy)
        assert server is not None
        everything = [psutil.Process(make.pid), *psutil.Process(make.pid).children(True), server]

        os.killpg(make.pid, signal.SIGTERM)
        seconds = time_to_stop(everything)
    finally:
        kill_all(everything)
        make.wait()
    assert seconds < STOP_LIMIT, log.read_text()[-3000:]
    assert "apiops: embedded PostgreSQL stopped" in log.read_text()


# --- the web server ----------------------------------------------------------------------------


def _web_env(tmp_path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "HOME": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "apiops_site.settings",
        "OPS_WEB_WORKERS": "1",
        **extra,
    }


def test_a_web_worker_that_dies_is_replaced_and_the_server_keeps_answering(supervisor, tmp_path):
    env = _web_env(tmp_path)
    port = str(run.free_port())
    proc = supervisor.start(run.web_spec(env, port), env)
    url = f"http://127.0.0.1:{port}/health/live"
    assert run.wait_http(url, 60, proc)
    (worker,) = psutil.Process(proc.pid).children()

    worker.kill()
    worker.wait(10)

    def replaced():
        return [w for w in psutil.Process(proc.pid).children() if w.pid != worker.pid]

    wait_for(replaced, 30, "a new web worker")
    assert run.wait_http(url, 30, proc)
    assert proc.poll() is None  # the server itself (what make run watches) never stopped


def test_a_process_variable_named_like_a_header_does_not_reach_the_request(supervisor, tmp_path):
    """granian starts each request's environ from the process environment: without the WSGI
    wrapper's cleanup, HTTP_X_REQUEST_ID set for the process would be every request's
    X-Request-ID, and any HTTP_* variable a header the caller never sent."""
    env = _web_env(tmp_path, HTTP_X_REQUEST_ID="from-the-process-environment")
    port = str(run.free_port())
    proc = supervisor.start(run.web_spec(env, port), env)
    url = f"http://127.0.0.1:{port}/health/live"
    assert run.wait_http(url, 60, proc)

    with urllib.request.urlopen(url, timeout=5) as answer:
        generated = answer.headers["X-Request-ID"]
    sent = urllib.request.Request(url, headers={"X-Request-ID": "sent-by-the-caller"})
    with urllib.request.urlopen(sent, timeout=5) as answer:  # noqa: S310 - http, ours
        echoed = answer.headers["X-Request-ID"]

    assert generated
    assert generated != "from-the-process-environment"
    assert echoed == "sent-by-the-caller"
