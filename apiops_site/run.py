"""``make run``: everything ApiOps needs on one machine, supervised, stopped together.

1. the embedded PostgreSQL (unless ``OPS_DB_URL`` is set), then ``migrate``;
2. kubesim with ``kubesim/demo.yaml``, its kubeconfig in ``var/kubesim.kubeconfig`` and its
   API-server audit log in ``var/kubesim-audit.log`` (unless ``OPS_KUBECONFIG`` names another
   cluster; a developer's ``KUBECONFIG`` is never used);
3. the web server (gunicorn) on ``127.0.0.1:${OPS_PORT:-8000}``, plus the entries of
   :data:`EXTRA_PROCESSES` (a worker is one line there);
4. the development audit signing key in ``var/audit-signing-key`` when it is missing;
5. prints the URL and the API key (``OPS_API_KEY``, or a development key kept in
   ``var/dev-api-key``).

Each child runs in its own process group; Ctrl-C or SIGTERM stops every group (TERM, then KILL
after a grace period), and then every process seen below a child that is still running (an
orphan, such as the django-q2 cluster of a worker wrapper that was killed, leaves its group's
reach). A child marked ``restart`` (the worker) is started again when it exits, unless it keeps
dying soon after its start; any other child's exit stops everything. ``make run`` is a child
subreaper, so nothing it started can be re-parented out of its sight.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from jobs import proctree

REPO = Path(__file__).resolve().parent.parent
VAR = REPO / "var"
PY = sys.executable
SIM_KUBECONFIG = VAR / "kubesim.kubeconfig"
#: kubesim's API-server audit log (audit.k8s.io/v1 Event lines), for manage.py audit_reconcile.
SIM_AUDIT_LOG = VAR / "kubesim-audit.log"
DEV_KEY_FILE = VAR / "dev-api-key"
#: The audit checkpoints' signing key when no audit-signing-key secret is configured.
DEV_SIGNING_KEY_FILE = VAR / "audit-signing-key"
# The longest grace a child gets (gunicorn's graceful timeout): a stop ends well within 10 s.
STOP_GRACE = 5.0
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


# Further long-running processes started beside the web server: the django-q2 cluster that
# runs the jobs' ticks and pump (its size: OPS_Q_WORKERS), through its supervisor, which
# replaces a cluster that lost a process or whose pump stopped for 2 minutes (the minute
# schedule revives a merely broken pump chain within about 90 s), and lets a SIGTERM
# to its process group stop it (see jobs/worker.py). If the supervisor itself dies, make run
# starts it again.
EXTRA_PROCESSES: list[Spec] = [
    Spec(
        "worker",
        [PY, "-m", "jobs.worker", "--liveness-max-age", "120"],
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
        self.stopping = threading.Event()
        #: Set when this process is a child subreaper: adopted orphans must be reaped here.
        self.adopts = False

    def start(
        self, spec: Spec, env: dict[str, str], ready_timeout: float = 120.0
    ) -> subprocess.Popen:
        """Start ``spec``; when it has a ready line, wait for it (or for its death, or a stop)."""
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
        self.children.append(Child(spec, proc, env))
        ready = threading.Event()
        threading.Thread(
            target=self._pump, args=(spec, proc, ready), daemon=True, name=f"log-{spec.name}"
        ).start()
        if spec.ready_text is None:
            return proc
        deadline = time.monotonic() + ready_timeout
        while not ready.wait(0.1):
            if proc.poll() is not None:
                raise SystemExit(f"{spec.name} exited with {proc.returncode} before it was ready")
            if time.monotonic() > deadline:
                raise SystemExit(f"{spec.name} was not ready within {ready_timeout:.0f} s")
            if self.stopping.is_set():
                break
        self.track()
        return proc

    def _pump(self, spec: Spec, proc: subprocess.Popen, ready: threading.Event) -> None:
        for line in proc.stdout:
            sys.stdout.write(f"[{spec.name}] {line}")
            sys.stdout.flush()
            if spec.ready_text and spec.ready_text in line:
                ready.set()

    def track(self) -> None:
        """Note the processes now below each child, so that orphans can be found later."""
        table = proctree.processes()
        for child in self.children:
            for proc in proctree.descendants(child.proc.pid, table):
                child.family.setdefault((proc.pid, proc.start), proc)

    def wait(self) -> int:
        """Block until a stop signal (0) or the exit of a child that is not restarted (1)."""
        failures: dict[str, int] = {}
        next_scan = 0.0
        while not self.stopping.is_set():
            if time.monotonic() >= next_scan:  # a scan of every process: not at every look
                self.track()
                if self.adopts:
                    proctree.reap_adopted(own=[child.proc.pid for child in self.children])
                next_scan = time.monotonic() + TRACK_INTERVAL
            for child in list(self.children):
                if child.proc.poll() is None:
                    continue
                name, code = child.spec.name, child.proc.returncode
                quick = time.monotonic() - child.started < RESTART_WINDOW
                failures[name] = failures.get(name, 0) + 1 if quick else 1
                if not child.spec.restart or failures[name] > RESTART_LIMIT:
                    print(f"apiops: {name} exited with {code}; stopping", flush=True)
                    return 1
                print(f"apiops: {name} exited with {code}; starting it again", flush=True)
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
                child.proc.wait(max(0.1, deadline - time.monotonic()))
        for child in self.children:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.proc.wait(2)
        for child in self.children:
            self._end_leftovers(child)
        if self.adopts:
            proctree.reap_adopted(own=[child.proc.pid for child in self.children])


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


def wait_http(url: str, timeout: float, proc: subprocess.Popen) -> bool:
    """Poll ``url`` until it answers 200, the process dies, or the timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - our own URL
                if resp.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    return False


def web_spec(env: dict[str, str], port: str) -> Spec:
    """gunicorn serving the app on 127.0.0.1:``port``.

    Without gunicorn's access log: Django's RequestLogMiddleware already writes one line per
    request, with the actor, the real client address and the request id, which gunicorn's
    line lacks; both together would print every request twice.
    """
    return Spec(
        "web",
        [
            PY,
            "-m",
            "gunicorn",
            "apiops_site.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            env.get("OPS_WEB_WORKERS", "2"),
            "--threads",
            env.get("OPS_WEB_THREADS", "4"),
            "--worker-class",
            "gthread",
            "--graceful-timeout",
            "5",
        ],
    )


def main() -> int:
    """Start everything, print where it is, and supervise until told to stop."""
    os.chdir(REPO)
    VAR.mkdir(exist_ok=True)
    env = dict(os.environ)
    env.pop("KUBECONFIG", None)  # never a developer's cluster by accident
    env.setdefault("DJANGO_SETTINGS_MODULE", "apiops_site.settings")
    port = env.get("OPS_PORT", "8000")
    sup = Supervisor()

    def on_signal(signum, frame):
        sup.stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    started_db = False
    try:
        dev_signing_key()
        if not env.get("OPS_DB_URL"):
            from apiops_site import db

            server = db.ensure_running()
            started_db = server.started_here
            print(f"apiops: embedded PostgreSQL on {server.socket_dir}", flush=True)
        subprocess.run([PY, "manage.py", "migrate", "--noinput"], cwd=REPO, env=env, check=True)  # noqa: S603
        # From here on, a process orphaned below a child is re-parented to us, not to init
        # (after the database: its server daemonizes and must outlive a stop of its starter).
        sup.adopts = proctree.become_subreaper()

        if not env.get("OPS_KUBECONFIG"):
            sim_port = free_port()
            with contextlib.suppress(FileNotFoundError):
                SIM_KUBECONFIG.unlink()
            sup.start(
                Spec(
                    "kubesim",
                    [
                        PY,
                        "-m",
                        "kubesim",
                        "--port",
                        str(sim_port),
                        "--kubeconfig",
                        str(SIM_KUBECONFIG),
                        "--load",
                        str(REPO / "kubesim" / "demo.yaml"),
                        "--audit-log",
                        str(SIM_AUDIT_LOG),
                    ],
                    ready_text="listening",
                ),
                env,
            )
            env["OPS_KUBECONFIG"] = str(SIM_KUBECONFIG)

        if not env.get("OPS_API_KEY"):
            env["OPS_API_KEY"] = dev_api_key()

        web_proc = sup.start(web_spec(env, port), env)
        for spec in EXTRA_PROCESSES:
            sup.start(spec, env)
        base = f"http://127.0.0.1:{port}"
        if wait_http(f"{base}/health/live", 120, web_proc):
            print(f"\nApiOps is running at {base}/", flush=True)
            print(f"  API key:   {env['OPS_API_KEY']}", flush=True)
            print(
                f"  docs:      {base}/api/docs/ (as a staff user of /admin/, or send X-API-Key)",
                flush=True,
            )
            print(f"  cluster:   OPS_KUBECONFIG={env['OPS_KUBECONFIG']}", flush=True)
            print(
                f"  opsctl:    OPSCTL_SERVER={base} OPSCTL_KEY={env['OPS_API_KEY']} "
                "python -m opsctl whoami",
                flush=True,
            )
            print("  Ctrl-C stops everything.\n", flush=True)
        status = sup.wait()
    except subprocess.CalledProcessError as e:
        print(f"apiops: {e}", file=sys.stderr, flush=True)
        status = 1
    except SystemExit as e:
        print(f"apiops: {e}", file=sys.stderr, flush=True)
        status = 1
    finally:
        sup.stop_all()
        if started_db:
            from apiops_site import db

            db.stop()
    return status


if __name__ == "__main__":
    sys.exit(main())
