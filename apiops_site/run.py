"""``make run``: everything ApiOps needs on one machine, supervised, stopped together.

0. the web port (``OPS_PORT``) is checked first: when it is taken, nothing is started and
   ``make run`` exits 2 naming the port;
1. the embedded PostgreSQL (unless ``OPS_DB_URL`` is set), then ``migrate``;
2. kubesim with ``kubesim/demo.yaml``, its kubeconfig in ``var/kubesim.kubeconfig`` and its
   API-server audit log in ``var/kubesim-audit.log`` (unless ``OPS_KUBECONFIG`` names another
   cluster; a developer's ``KUBECONFIG`` is never used);
3. the web server (granian) on ``127.0.0.1:${OPS_PORT:-8000}``, plus the entries of
   :data:`EXTRA_PROCESSES` (a worker is one line there), all writing their metrics to a fresh
   ``var/metrics`` (``PROMETHEUS_MULTIPROC_DIR``), which ``/metrics`` sums;
4. the development audit signing key in ``var/audit-signing-key`` when it is missing;
5. prints the URL and the API key (``OPS_API_KEY``, or a development key kept in
   ``var/dev-api-key``), once granian listens on the port and ``/health/live`` answered.

Each child runs in its own process group; Ctrl-C, SIGTERM or SIGHUP (once or several times, to
this process or to its whole group, as make forwards it) stops every group (TERM, then KILL
after :data:`STOP_GRACE`), then every process seen below a child that is still running (an
orphan, such as the django-q2 cluster of a worker wrapper that was killed, leaves its group's
reach), then the embedded PostgreSQL if this run started it: all within 5 s. The signal
handler does no work (:mod:`jobs.stop_signal`), so no signal can hang the stop. A child marked
``restart`` (the worker) is started again when it exits, unless it keeps dying soon after its
start; the exit of any other child, or of the embedded PostgreSQL, stops everything, with the
reason (exit status or signal, its last output lines). ``make run`` is a child subreaper, so
nothing it started can be re-parented out of its sight.

``python -m apiops_site.run stop`` (``make stop``) stops a running ``make run`` of this
checkout (its pid is in ``var/run.pid``) and then the embedded PostgreSQL, whoever started it.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import errno
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from apiops_site import db
from jobs import proctree
from jobs.stop_signal import StopSignal

REPO = Path(__file__).resolve().parent.parent
VAR = REPO / "var"
PY = sys.executable
SIM_KUBECONFIG = VAR / "kubesim.kubeconfig"
#: kubesim's API-server audit log (audit.k8s.io/v1 Event lines), for manage.py audit_reconcile.
SIM_AUDIT_LOG = VAR / "kubesim-audit.log"
DEV_KEY_FILE = VAR / "dev-api-key"
PID_FILE = VAR / "run.pid"
# Seconds a child gets between TERM and KILL. Children are told to finish sooner (granian's
# --workers-kill-timeout, the worker's --stop-grace: 2 s); with the KILL, the orphans and a fast
# stop of the embedded PostgreSQL, a stop ends within 5 s of the signal.
STOP_GRACE = 3.0
# Exit status when the web port is taken (nothing was started).
EXIT_PORT_BUSY = 2
# Lines of each child's output kept to explain its death.
LAST_LINES = 5
METRICS_DIR = VAR / "metrics"
#: The audit checkpoints' signing key when no audit-signing-key secret is configured.
DEV_SIGNING_KEY_FILE = VAR / "audit-signing-key"
# A restartable child that exits sooner than this after its start failed to start...
RESTART_WINDOW = 60.0
# ... and after this many such exits in a row, make run gives up and stops everything.
RESTART_LIMIT = 3
# Seconds between two notes of the processes below each child (a scan of every process).
TRACK_INTERVAL = 2.0


@dataclass
class Spec:
    """A child process: a name for the log, its argv, and an optional line that means ready."""

    name: str
    argv: list[str]
    ready_text: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    #: Start it again when it exits (instead of stopping everything).
    restart: bool = False


@dataclass
class Child:
    """A started Spec: its process, the environment it got, and what was seen below it."""

    spec: Spec
    proc: subprocess.Popen
    env: dict[str, str]
    started: float = field(default_factory=time.monotonic)
    #: Every process seen below it (by pid and start time), to end those it leaves behind.
    family: dict[tuple[int, int], proctree.Proc] = field(default_factory=dict)
    #: Its last output lines, to say why it died.
    last: collections.deque = field(default_factory=lambda: collections.deque(maxlen=LAST_LINES))
    #: The thread copying its output (read to the end once it exited).
    pump: threading.Thread | None = None

    def exit_reason(self) -> str:
        """How it ended: its exit status or the signal that killed it."""
        code = self.proc.returncode
        if code is not None and code < 0:
            with contextlib.suppress(ValueError):
                return f"was killed by {signal.Signals(-code).name}"
        return f"exited with {code}"


# Further long-running processes started beside the web server: the django-q2 cluster that
# runs the jobs' ticks and pump (its size: OPS_Q_WORKERS), through its supervisor, which
# replaces a cluster that lost a process or whose pump stopped for 2 minutes (the minute
# schedule revives a merely broken pump chain within about 90 s), and lets a SIGTERM
# to its process group stop it (see jobs/worker.py). If the supervisor itself dies, make run
# starts it again.
EXTRA_PROCESSES: list[Spec] = [
    Spec(
        "worker",
        [PY, "-m", "jobs.worker", "--liveness-max-age", "120", "--stop-grace", "2"],
        ready_text="running.",
        restart=True,
    ),
]


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the supervisor dies (Linux), and lead a process group."""
    os.setpgrp()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Supervisor:
    """Starts children in their own process groups, restarts those marked so, and stops them
    all together, with whatever they left running."""

    def __init__(self) -> None:
        self.children: list[Child] = []
        #: Set by a stop signal once ``stopping.install()`` ran (main), or by ``set()``.
        self.stopping = StopSignal()
        #: Set when this process is a child subreaper: adopted orphans must be reaped here.
        self.adopts = False
        #: Things that are not children but must keep running (the embedded PostgreSQL):
        #: name -> a check returning why it stopped, or None while it runs.
        self.watched: dict[str, Callable[[], str | None]] = {}

    def start(
        self, spec: Spec, env: dict[str, str], ready_timeout: float = 120.0
    ) -> subprocess.Popen:
        """Start ``spec``; when it has a ready line, wait for it (or for its death, or a stop)."""
        child, ready = self._spawn(spec, env)
        self.children.append(child)
        proc = child.proc
        if spec.ready_text is None:
            return proc
        deadline = time.monotonic() + ready_timeout
        while not ready.is_set():
            if proc.poll() is not None:
                raise SystemExit(
                    f"{spec.name} {child.exit_reason()} before it was ready{_tail(child)}"
                )
            if time.monotonic() > deadline:
                raise SystemExit(f"{spec.name} was not ready within {ready_timeout:.0f} s")
            if self.stopping.wait(0.1):
                break
        self.track()
        return proc

    def _spawn(self, spec: Spec, env: dict[str, str]) -> tuple[Child, threading.Event]:
        """Start ``spec`` in a process group of its own, its output copied with its name; the
        event is set when its ready line shows."""
        proc = subprocess.Popen(  # noqa: S603 - argv built here, no shell
            spec.argv,
            cwd=REPO,
            env={**env, **spec.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
            text=True,
            bufsize=1,
        )
        child = Child(spec, proc, env)
        ready = threading.Event()
        child.pump = threading.Thread(
            target=self._pump, args=(child, ready), daemon=True, name=f"log-{spec.name}"
        )
        child.pump.start()
        return child, ready

    def _pump(self, child: Child, ready: threading.Event) -> None:
        spec = child.spec
        for line in child.proc.stdout:
            sys.stdout.write(f"[{spec.name}] {line}")
            sys.stdout.flush()
            child.last.append(line.rstrip())
            if spec.ready_text and spec.ready_text in line:
                ready.set()

    def track(self) -> None:
        """Note the processes now below each child, so that orphans can be found later."""
        table = proctree.processes()
        for child in self.children:
            for proc in proctree.descendants(child.proc.pid, table):
                child.family.setdefault((proc.pid, proc.start), proc)

    def wait(self) -> int:
        """Block until a stop signal (0) or the exit of a child that is not restarted, or of
        a watched process (1)."""
        failures: dict[str, int] = {}
        next_scan = 0.0
        while not self.stopping.is_set():
            if time.monotonic() >= next_scan:  # a scan of every process: not at every look
                self.track()
                if self.adopts:
                    proctree.reap_adopted(own=[child.proc.pid for child in self.children])
                for name, check in self.watched.items():
                    reason = check()
                    if reason is not None:
                        print(f"apiops: {name} {reason}; stopping", flush=True)
                        return 1
                next_scan = time.monotonic() + TRACK_INTERVAL
            for child in list(self.children):
                if child.proc.poll() is None:
                    continue
                name, how = child.spec.name, child.exit_reason()
                quick = time.monotonic() - child.started < RESTART_WINDOW
                failures[name] = failures.get(name, 0) + 1 if quick else 1
                if not child.spec.restart or failures[name] > RESTART_LIMIT:
                    print(f"apiops: {name} {how}; stopping{_tail(child)}", flush=True)
                    return 1
                print(f"apiops: {name} {how}; starting it again{_tail(child)}", flush=True)
                self._end_leftovers(child)
                self.children.remove(child)
                try:
                    self.start(child.spec, child.env)
                except SystemExit as e:  # it failed again: the next round counts it
                    print(f"apiops: {e}", flush=True)
            self.stopping.wait(0.5)
        return 0

    def _end_leftovers(self, child: Child) -> None:
        left = proctree.still_running(child.family.values())
        if left:
            print(
                f"apiops: killing {len(left)} process(es) {child.spec.name} left behind",
                flush=True,
            )
            proctree.kill(left)

    def stop_all(self) -> None:
        """TERM every child's process group, KILL what is left after the grace period, then
        every process seen below a child that still runs (orphans in groups of their own)."""
        self.track()
        for child in reversed(self.children):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for child in self.children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(max(0.01, deadline - time.monotonic()))
        for child in self.children:
            if child.proc.poll() is None:
                print(
                    f"apiops: {child.spec.name} did not stop within {STOP_GRACE:g} s: killing it",
                    flush=True,
                )
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(1)
        for child in self.children:
            self._end_leftovers(child)
        if self.adopts:
            proctree.reap_adopted(own=[child.proc.pid for child in self.children])

    def run_once(self, name: str, argv: list[str], env: dict[str, str]) -> bool:
        """Run a step to its end (output prefixed with ``name``); False when a stop came first
        (the step is then ended). A failed step raises SystemExit with its reason."""
        step, _ = self._spawn(Spec(name, argv), env)
        proc = step.proc
        while proc.poll() is None:
            if self.stopping.wait(0.1):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(STOP_GRACE)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                return False
        if proc.returncode != 0:
            raise SystemExit(f"{name} {step.exit_reason()}{_tail(step)}")
        return True


def _tail(child: Child) -> str:
    """The child's last output lines, for a message about its end ("" when it said nothing)."""
    if child.pump is not None:
        child.pump.join(1)  # the output of a process that exited is read to its end
    if not child.last:
        return ""
    return "; its last output:\n" + "\n".join(f"  {line}" for line in child.last)


def port_refusal(port_text: str) -> str | None:
    """Why the web server cannot listen on 127.0.0.1:``port_text``, or None when it can.

    Bound as the web server binds (``SO_REUSEADDR``), so a port left in TIME_WAIT by a stopped
    run counts as free, and one that anything listens on (any address) counts as taken.
    """
    try:
        port = int(port_text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        return f"OPS_PORT={port_text!r} is not a TCP port (1-65535)"
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as e:
            why = "already in use" if e.errno == errno.EADDRINUSE else e.strerror
            return (
                f"port {port} on 127.0.0.1 is {why}; nothing was started. Stop what holds it "
                f"(is another ApiOps running? `make stop` stops one of this checkout) or choose "
                f"another port: OPS_PORT={port + 1 if port < 65535 else 8000} make run"
            )
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dev_api_key() -> str:
    """The development key: kept in var/dev-api-key (0600) so it survives restarts."""
    if DEV_KEY_FILE.exists():
        key = DEV_KEY_FILE.read_text().strip()
        if len(key) >= 16:
            return key
    key = f"dev_{secrets.token_urlsafe(32)}"
    VAR.mkdir(exist_ok=True)
    fd = os.open(DEV_KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key


def dev_signing_key() -> None:
    """Generate the development audit signing key (Ed25519, PEM, 0600) in var/ if absent.

    Settings read it under ENV=local when no audit-signing-key secret is configured, so
    ``manage.py audit_checkpoint`` signs with it, from make run or a shell alike.
    """
    if DEV_SIGNING_KEY_FILE.exists():
        return
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    VAR.mkdir(exist_ok=True)
    fd = os.open(DEV_SIGNING_KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)


def fresh_metrics_dir() -> Path:
    """An empty var/metrics: where the web and worker processes write their metrics, summed
    by /metrics (prometheus-client's multiprocess mode). Emptied at each start: files of a
    previous run's processes would be added to this run's counts."""
    shutil.rmtree(METRICS_DIR, ignore_errors=True)
    METRICS_DIR.mkdir(parents=True)
    return METRICS_DIR


def wait_http(
    url: str, timeout: float, proc: subprocess.Popen, stop: StopSignal | None = None
) -> bool:
    """Poll ``url`` until it answers 200 (True), or the process dies, the timeout passes or
    ``stop`` is set (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - our own URL
                if resp.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        if stop is not None and stop.wait(0.2):
            return False
        if stop is None:
            time.sleep(0.2)
    return False


def web_spec(env: dict[str, str], port: str) -> Spec:
    """granian serving the app on 127.0.0.1:``port``; ready once it listens there.

    ``OPS_WEB_WORKERS`` worker processes (2), each running the application in
    ``OPS_WEB_THREADS`` threads (4): bench/primitive_overhead.py measures 2 x 4 and 2 x 2 alike,
    and 4 threads keep more requests going while the Kubernetes API or the database is slow.
    A worker that dies is replaced by granian; a stop gives a request 2 s to finish. Without
    granian's access log (its default): Django's RequestLogMiddleware already writes one line
    per request, with the actor, the real client address and the request id.
    """
    return Spec(
        "web",
        [
            PY,
            "-m",
            "granian",
            "apiops_site.wsgi:application",
            "--interface",
            "wsgi",
            "--host",
            "127.0.0.1",
            "--port",
            port,
            "--workers",
            env.get("OPS_WEB_WORKERS", "2"),
            "--blocking-threads",
            env.get("OPS_WEB_THREADS", "4"),
            "--no-ws",
            "--respawn-failed-workers",
            "--respawn-interval",
            "0.5",
            "--workers-kill-timeout",
            "2",
        ],
        # granian's own line once the port is bound: from then on what answers there is us.
        ready_text="Listening at: ",
    )


def kubesim_spec() -> Spec:
    """kubesim with the demo objects, its kubeconfig written to var/kubesim.kubeconfig."""
    return Spec(
        "kubesim",
        [
            PY,
            "-m",
            "kubesim",
            "--port",
            str(free_port()),
            "--kubeconfig",
            str(SIM_KUBECONFIG),
            "--load",
            str(REPO / "kubesim" / "demo.yaml"),
            "--audit-log",
            str(SIM_AUDIT_LOG),
        ],
        ready_text="listening",
    )


def _announce(base: str, env: dict[str, str]) -> None:
    print(f"\nApiOps is running at {base}/", flush=True)
    print(f"  API key:   {env['OPS_API_KEY']}", flush=True)
    print(
        f"  docs:      {base}/api/docs/ (as a staff user of /admin/, or send X-API-Key)",
        flush=True,
    )
    print(f"  cluster:   OPS_KUBECONFIG={env['OPS_KUBECONFIG']}", flush=True)
    if env.get("OPS_METRICS_TOKEN"):
        print(f"  metrics:   {base}/metrics (Authorization: Bearer $OPS_METRICS_TOKEN)", flush=True)
    print(
        f"  opsctl:    OPSCTL_SERVER={base} OPSCTL_KEY={env['OPS_API_KEY']} "
        "python -m opsctl whoami",
        flush=True,
    )
    print("  Ctrl-C stops everything (or `make stop` from another terminal).\n", flush=True)


def _watch_database(sup: Supervisor) -> None:
    """Stop everything when the embedded PostgreSQL stops under us."""
    pid = db.postmaster_pid()
    print(f"apiops: embedded PostgreSQL running (pid {pid}, data in {db.PGDATA})", flush=True)

    def check() -> str | None:
        now = db.postmaster_pid()
        if now == pid:
            return None
        return f"(pid {pid}) stopped" + (f" and another (pid {now}) runs" if now else "")

    sup.watched["the embedded PostgreSQL"] = check


def serve(sup: Supervisor, env: dict[str, str], port: str) -> int:
    """Start everything in order; supervise until a stop (0) or a death (1)."""
    if not env.get("OPS_DB_URL"):
        if not sup.run_once("database", [PY, "-m", "apiops_site.db", "start"], env):
            return 0
        _watch_database(sup)
    if not sup.run_once("migrate", [PY, "manage.py", "migrate", "--noinput"], env):
        return 0
    # From here on, a process orphaned below a child is re-parented to us, not to init
    # (after the database: its server daemonizes and must outlive a stop of its starter).
    sup.adopts = proctree.become_subreaper()

    if not env.get("OPS_KUBECONFIG"):
        with contextlib.suppress(FileNotFoundError):
            SIM_KUBECONFIG.unlink()
        sup.start(kubesim_spec(), env)
        env["OPS_KUBECONFIG"] = str(SIM_KUBECONFIG)
    if not env.get("OPS_API_KEY"):
        env["OPS_API_KEY"] = dev_api_key()
    env["PROMETHEUS_MULTIPROC_DIR"] = str(fresh_metrics_dir())

    web_proc = sup.start(web_spec(env, port), env)
    for spec in EXTRA_PROCESSES:
        if sup.stopping.is_set():
            return 0
        sup.start(spec, env)
    base = f"http://127.0.0.1:{port}"
    if not wait_http(f"{base}/health/live", 120, web_proc, sup.stopping):
        if sup.stopping.is_set():
            return 0
        [web] = [child for child in sup.children if child.proc is web_proc]
        if web_proc.poll() is not None:
            raise SystemExit(f"web {web.exit_reason()} before it answered{_tail(web)}")
        raise SystemExit(f"web did not answer {base}/health/live within 120 s{_tail(web)}")
    _announce(base, env)
    return sup.wait()


def stop_running() -> int:
    """``make stop``: stop this checkout's ``make run`` if one runs, then the embedded
    PostgreSQL (which a ``manage.py`` call may have started and left running)."""
    try:
        pid = int(PID_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        pid = None
    proc = proctree.processes().get(pid) if pid else None
    if proc is not None and b"apiops_site.run" in _cmdline(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while proctree.still_running([proc]) and time.monotonic() < deadline:
            time.sleep(0.1)
        if proctree.still_running([proc]):
            print(f"apiops: make run (pid {pid}) did not stop within 15 s", file=sys.stderr)
            return 1
        print(f"apiops: stopped make run (pid {pid})", flush=True)
    else:
        print("apiops: no make run of this checkout is running", flush=True)
    status, line = db.control("stop")
    print(f"apiops: {line}", flush=True)
    return status


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def main(argv: list[str] | None = None) -> int:
    """Start everything, print where it is, and supervise until told to stop."""
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["stop"]:
        return stop_running()
    if argv:
        print("usage: python -m apiops_site.run [stop]", file=sys.stderr)
        return 2
    os.chdir(REPO)
    env = dict(os.environ)
    env.pop("KUBECONFIG", None)  # never a developer's cluster by accident
    env.setdefault("DJANGO_SETTINGS_MODULE", "apiops_site.settings")
    port = env.get("OPS_PORT", "8000")
    refusal = port_refusal(port)
    if refusal:
        print(f"apiops: {refusal}", file=sys.stderr, flush=True)
        return EXIT_PORT_BUSY

    sup = Supervisor()
    sup.stopping.install()
    VAR.mkdir(exist_ok=True)
    PID_FILE.write_text(f"{os.getpid()}\n")
    db_was_running = env.get("OPS_DB_URL") or db.running() is not None
    status = 1
    try:
        dev_signing_key()
        status = serve(sup, env, port)
    except SystemExit as e:
        print(f"apiops: {e}", file=sys.stderr, flush=True)
        status = 1
    finally:
        if sup.stopping.signum is not None:
            name = signal.Signals(sup.stopping.signum).name
            print(f"apiops: {name} received; stopping everything", flush=True)
        sup.stop_all()
        if not db_was_running and db.stop():
            print("apiops: embedded PostgreSQL stopped", flush=True)
        with contextlib.suppress(OSError):
            if PID_FILE.read_text().split()[0] == str(os.getpid()):
                PID_FILE.unlink()
    return status


if __name__ == "__main__":
    sys.exit(main())
