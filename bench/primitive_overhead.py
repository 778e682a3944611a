"""What ApiOps adds to a primitive operation: latency and throughput against the same calls
made directly with the kubernetes client, on the same kubesim, in one run.

1. Latency, interleaved: N rounds of a StatefulSet scale made directly (GET scale + PATCH
   scale, what the service itself sends) and through ApiOps (the web server as ``make run``
   starts it, X-API-Key, the audit row written first, its outcome once the answer is sent),
   alternating which goes first. Printed:
   median, p95, and what ApiOps adds at each. Measured twice: with the database's
   ``synchronous_commit`` as the embedded server runs it (off) and ``on`` (what a production
   PostgreSQL does). Targets: added <= 2 ms at the median, <= 4 ms at p95.
2. Throughput at 8 and 32 concurrent clients (processes), direct and through ApiOps, for
   ``--seconds`` each: requests/s, p50, p99, and ApiOps as a share of direct (target >= 70 %).
   With each, the CPU time a scale costs in every process involved (the clients, the web
   server, kubesim, PostgreSQL) and the rate the machine's cores allow at that cost: when the
   clients saturate the cores, the share is the ratio of the two totals.
   ``--web`` lists worker x thread settings to compare at 32 clients (the first is used for
   everything else).
3. Where ApiOps spends its time, measured in-process on one worker (Django's test client, no
   HTTP): SQL statements and their time, the Kubernetes calls, JSON parsing of their answers,
   logging, and the rest (middleware, DRF, validation, rendering).

The audit list at 10 M rows is bench/audit_scale.py.

Run: ``.venv/bin/python bench/primitive_overhead.py [--calls 300] [--seconds 8]``
(uses the embedded PostgreSQL unless OPS_DB_URL is set; the bench database is dropped after).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apiops_site.settings")

BENCH_DB = "apiops_bench"
KEY = "bench-key-0123456789abcdef0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.2f} ms"


# --- database ---------------------------------------------------------------------------------


def admin_connection():
    """A psycopg2 connection to the server's maintenance database, autocommit."""
    import django

    django.setup()
    from django.db import connections

    params = connections["default"].get_connection_params()
    params.pop("database", None)
    params["dbname"] = "postgres"
    import psycopg2

    conn = psycopg2.connect(**params)
    conn.autocommit = True
    return conn


def recreate_bench_db() -> None:
    conn = admin_connection()
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        cur.execute(f"CREATE DATABASE {BENCH_DB}")
    conn.close()


def drop_bench_db() -> None:
    conn = admin_connection()
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
    conn.close()


def bench_env(kubeconfig: str) -> dict[str, str]:
    """Environment for children: the bench database, the sim, the bench key."""
    env = dict(os.environ)
    env.pop("KUBECONFIG", None)
    env.update(
        OPS_API_KEY=KEY,
        OPS_KUBECONFIG=kubeconfig,
        OPS_BENCH_DB=BENCH_DB,
        OPS_AUTH_FAILURE_LIMIT="1000000",
        OPS_LOG_LEVEL="WARNING",
        PYTHONPATH=str(REPO),
    )
    if os.environ.get("OPS_DB_URL"):
        base = os.environ["OPS_DB_URL"].rsplit("/", 1)[0]
        env["OPS_DB_URL"] = f"{base}/{BENCH_DB}"
    return env


def run_manage(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, str(REPO / "bench" / "primitive_overhead.py"), "--manage", *args],
        env=env,
        check=True,
        cwd=REPO,
    )


def manage_main(argv: list[str]) -> None:
    """Subprocess entry: Django pointed at the bench database (migrate / seed)."""
    import django

    if not os.environ.get("OPS_DB_URL"):
        # Embedded server: same socket, other database name.
        from django.conf import settings

        django.setup()
        for alias in ("default", "audit"):
            settings.DATABASES[alias]["NAME"] = os.environ["OPS_BENCH_DB"]
    else:
        django.setup()
    from django.core.management import call_command
    from django.db import connection

    if argv[0] == "migrate":
        call_command("migrate", verbosity=0)
    elif argv[0] == "commit":  # synchronous_commit for the bench database's new sessions
        with connection.cursor() as cur:
            cur.execute(
                f"ALTER DATABASE {os.environ['OPS_BENCH_DB']} SET synchronous_commit = {argv[1]}"
            )
    elif argv[0] == "breakdown":
        breakdown(int(argv[1]))


# --- servers ----------------------------------------------------------------------------------


def start_kubesim(tmp: Path) -> tuple[subprocess.Popen, str]:
    kubeconfig = str(tmp / "kubesim.kubeconfig")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kubesim",
            "--port",
            str(free_port()),
            "--kubeconfig",
            kubeconfig,
            "--load",
            str(REPO / "kubesim" / "demo.yaml"),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    for line in proc.stdout:
        if "listening" in line:
            return proc, kubeconfig
        if time.monotonic() > deadline:
            break
    raise SystemExit("kubesim did not start")


def bench_application():
    """granian's target (``--factory``): the WSGI application on the bench database (with the
    embedded server: same socket, other database name)."""
    if not os.environ.get("OPS_DB_URL"):
        from django.conf import settings

        for alias in ("default", "audit"):
            settings.DATABASES[alias]["NAME"] = os.environ["OPS_BENCH_DB"]
    from apiops_site.wsgi import application

    return application


def start_apiops(
    env: dict[str, str], workers: int = 2, threads: int = 4
) -> tuple[subprocess.Popen, int]:
    """The web server as ``make run`` starts it (apiops_site.run.web_spec), on the bench
    database."""
    from apiops_site import run

    port = free_port()
    argv = run.web_spec(
        {"OPS_WEB_WORKERS": str(workers), "OPS_WEB_THREADS": str(threads)}, str(port)
    ).argv
    argv[argv.index("apiops_site.wsgi:application")] = "bench.primitive_overhead:bench_application"
    proc = subprocess.Popen(
        [*argv, "--factory"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health/live")
            if conn.getresponse().status == 200:
                return proc, port
        time.sleep(0.2)
    raise SystemExit("the web server did not start")


def stop(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, 15)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)


# --- measurements -----------------------------------------------------------------------------

SCALE_PATH = "/ops/namespaces/prod/statefulsets/postgres/scale"


class Direct:
    """The service's two Kubernetes calls, straight from the client."""

    def __init__(self, kubeconfig: str) -> None:
        from kubernetes import client, config

        cfg = client.Configuration()
        config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
        self.apps = client.AppsV1Api(client.ApiClient(cfg))

    def __call__(self, i: int) -> None:
        self.apps.read_namespaced_stateful_set_scale("postgres", "prod", _request_timeout=10)
        self.apps.patch_namespaced_stateful_set_scale(
            "postgres", "prod", {"spec": {"replicas": 2 + i % 2}}, _request_timeout=10
        )


class Through:
    """The same scale through ApiOps, on one kept-alive HTTP connection."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"X-API-Key": KEY, "Content-Type": "application/json"}

    def __call__(self, i: int) -> None:
        body = json.dumps({"replicas": 2 + i % 2})
        self.conn.request("POST", SCALE_PATH, body, self.headers)
        response = self.conn.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"ApiOps answered {response.status}")


def interleaved(direct: Direct, through: Through, calls: int) -> tuple[list[float], list[float]]:
    """``calls`` rounds of one direct and one ApiOps scale, alternating which goes first."""
    d, a = [], []
    for i in range(calls):
        order = ((direct, d), (through, a)) if i % 2 == 0 else ((through, a), (direct, d))
        for fn, samples in order:
            started = time.perf_counter()
            fn(i)
            samples.append(time.perf_counter() - started)
    return d, a


def print_latency(title: str, d: list[float], a: list[float]) -> tuple[float, float]:
    d50, a50 = statistics.median(d), statistics.median(a)
    d95, a95 = percentile(d, 0.95), percentile(a, 0.95)
    print(f"\n{title}, {len(d)} interleaved rounds")
    print(f"  direct to kubesim (GET+PATCH):    median {ms(d50)}  p95 {ms(d95)}")
    print(f"  through ApiOps (HTTP+auth+audit): median {ms(a50)}  p95 {ms(a95)}")
    print(
        f"  added_ms median {(a50 - d50) * 1000:.2f} (target <= 2.0), "
        f"p95 {(a95 - d95) * 1000:.2f} (target <= 4.0)"
    )
    return a50 - d50, a95 - d95


def _load_worker(kind: str, target, seconds: float, seed: int, start, results) -> None:
    """One client process: connected, it waits for every other client (``start``, a barrier),
    then calls for ``seconds``; it puts its latencies and the CPU time the calls took in this
    process on ``results``. All clients run in the same window: none is still starting (a
    direct client imports the kubernetes client) while the others are measured."""
    fn = Direct(target) if kind == "direct" else Through(target)
    fn(seed)  # connect before the clock starts
    start.wait()
    samples, deadline, i = [], time.perf_counter() + seconds, seed
    cpu = time.process_time()
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        fn(i)
        samples.append(time.perf_counter() - started)
        i += 1
    results.put((samples, time.process_time() - cpu))


def _cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User and system CPU time of each of these processes so far (those still there)."""
    import psutil

    spent = {}
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            spent[pid] = times.user + times.system
    return spent


@dataclass
class Servers:
    """The processes a scale costs CPU in, besides the clients: by name, their pids."""

    kubesim: int
    web: int | None = None

    def pids(self) -> dict[str, list[int]]:
        import psutil

        web = []
        if self.web is not None:
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(self.web)
                web = [self.web, *(p.pid for p in root.children(recursive=True))]
        postgres = [
            p.pid
            for p in psutil.process_iter(["name"])
            if (p.info["name"] or "").startswith("postgres")
        ]
        return {"web server": web, "kubesim": [self.kubesim], "PostgreSQL": postgres}


def throughput(
    kind: str, target, clients: int, seconds: float, servers: Servers | None = None
) -> tuple[float, float, float, dict[str, float]]:
    """(requests/s, p50, p99, CPU ms per request by process) of ``clients`` processes calling
    for ``seconds``."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Barrier(clients + 1), ctx.Queue()
    processes = [
        ctx.Process(target=_load_worker, args=(kind, target, seconds, i, start, results))
        for i in range(clients)
    ]
    for process in processes:
        process.start()
    start.wait(timeout=300)  # every client connected
    pids = servers.pids() if servers else {}
    before = {name: _cpu_seconds(each) for name, each in pids.items()}
    runs = [results.get(timeout=seconds + 300) for _ in processes]
    # Listed again: a database session started meanwhile (a process of its own, for a web
    # worker's new thread) counts from its start.
    after = {name: _cpu_seconds(each) for name, each in servers.pids().items()} if pids else {}
    for process in processes:
        process.join()
    samples = [x for run, _ in runs for x in run]
    per = 1000 / len(samples)
    cpu = {"clients": sum(spent for _, spent in runs) * per}
    for name, now in after.items():
        cpu[name] = sum(t - before[name].get(pid, 0.0) for pid, t in now.items()) * per
    return len(samples) / seconds, statistics.median(samples), percentile(samples, 0.99), cpu


def _cpu_line(cpu: dict[str, float]) -> str:
    total = sum(cpu.values())
    parts = ", ".join(f"{name} {value:.2f}" for name, value in cpu.items())
    cores = os.cpu_count() or 1
    return (
        f"              CPU ms a scale: {parts} = {total:.2f}"
        f" ({cores} cores: at most {cores * 1000 / total:.0f}/s)"
    )


def print_throughput(
    kubeconfig: str, port: int, clients: int, seconds: float, servers: Servers
) -> float:
    d_rate, d50, d99, d_cpu = throughput("direct", kubeconfig, clients, seconds, servers)
    a_rate, a50, a99, a_cpu = throughput("apiops", port, clients, seconds, servers)
    share = a_rate / d_rate
    print(f"  {clients:>2} clients  direct {d_rate:6.1f}/s (p50 {ms(d50)}, p99 {ms(d99)})")
    print(_cpu_line(d_cpu))
    print(
        f"              ApiOps {a_rate:6.1f}/s (p50 {ms(a50)}, p99 {ms(a99)})"
        f"  = {share:.0%} of direct (target >= 70 %)"
    )
    print(_cpu_line(a_cpu))
    return share


# --- where the time goes (in-process, one worker) ---------------------------------------------


def breakdown(calls: int) -> None:
    """Run in the --manage child (Django on the bench database): time the parts of a scale."""
    import logging
    from contextlib import ExitStack

    from django.conf import settings
    from django.db import connections
    from django.test import Client

    from ops import k8s

    settings.ALLOWED_HOSTS = ["*"]
    client = Client()
    sql: list[float] = []
    spent = {"k8s": 0.0, "json": 0.0, "logging": 0.0}

    def timed_sql(execute, sql_text, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql_text, params, many, context)
        finally:
            sql.append(time.perf_counter() - started)

    def timing(key, fn):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[key] += time.perf_counter() - started

        return wrapper

    def call(i: int) -> None:
        response = client.post(
            SCALE_PATH,
            data=json.dumps({"replicas": 2 + i % 2}),
            content_type="application/json",
            HTTP_X_API_KEY=KEY,
        )
        if response.status_code != 200:
            raise SystemExit(f"in-process scale answered {response.status_code}")

    for i in range(30):
        call(i)  # warm: imports, connections, the client
    k8s.scale_read = timing("k8s", k8s.scale_read)
    k8s.scale_patch = timing("k8s", k8s.scale_patch)
    k8s.json.loads = timing("json", json.loads)
    handler = logging.Handler.handle
    logging.Handler.handle = timing("logging", handler)
    # The access line at INFO, as a server writes it (the bench's environment says WARNING),
    # formatted and written as usual, into the void rather than over the figures.
    logging.getLogger("apiops.request").setLevel(logging.INFO)
    void = open(os.devnull, "w")  # noqa: SIM115 - open for the rest of this child process
    for each in logging.getLogger().handlers + logging.getLogger("apiops.request").handlers:
        if isinstance(each, logging.StreamHandler):
            each.setStream(void)
    with ExitStack() as stack:
        for alias in ("default", "audit"):
            stack.enter_context(connections[alias].execute_wrapper(timed_sql))
        started = time.perf_counter()
        for i in range(calls):
            call(i)
        total = time.perf_counter() - started
    logging.Handler.handle = handler
    per = 1000 / calls
    rest = total - sum(sql) - spent["k8s"] - spent["logging"]
    print(f"\nwhere a scale's time goes, in-process, {calls} calls (ms per request)")
    print(f"  total in Django              {total * per:6.2f}")
    print(f"  SQL, {len(sql) / calls:.1f} statements       {sum(sql) * per:6.2f}")
    print(f"  Kubernetes calls (2)         {spent['k8s'] * per:6.2f}"
          f"   of which JSON parsing {spent['json'] * per:.2f}")  # fmt: skip
    print(f"  logging (the access line)    {spent['logging'] * per:6.2f}")
    print(f"  middleware, DRF, the rest    {rest * per:6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument(
        "--web",
        default="2x4,2x2,1x4,4x1",
        help="worker x thread settings compared at 32 clients; the first is used throughout",
    )
    args = parser.parse_args()
    settings_list = [tuple(int(n) for n in s.split("x")) for s in args.web.split(",")]

    recreate_bench_db()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        sim, kubeconfig = start_kubesim(tmp)
        env = bench_env(kubeconfig)
        web = None
        try:
            run_manage(env, "migrate")
            direct = Direct(kubeconfig)
            workers, threads = settings_list[0]
            added = {}
            for mode in ("off", "on"):
                run_manage(env, "commit", mode)
                web, port = start_apiops(env, workers, threads)
                through = Through(port)
                interleaved(direct, through, 20)  # warm up both paths
                d, a = interleaved(direct, through, args.calls)
                title = f"scale statefulset, synchronous_commit={mode}"
                added[mode] = print_latency(title, d, a)
                if mode == "off":
                    print(f"\nthroughput, granian {workers} workers x {threads} threads")
                    for clients in (8, 32):
                        print_throughput(
                            kubeconfig, port, clients, args.seconds, Servers(sim.pid, web.pid)
                        )
                stop(web)
                web = None
            run_manage(env, "commit", "off")
            if len(settings_list) > 1:
                print("\nweb server settings at 32 clients (synchronous_commit=off)")
                for workers, threads in settings_list:
                    web, port = start_apiops(env, workers, threads)
                    Through(port)(0)
                    rate, p50, p99, _ = throughput("apiops", port, 32, args.seconds)
                    print(f"  {workers} x {threads}: {rate:6.1f}/s  p50 {ms(p50)}  p99 {ms(p99)}")
                    stop(web)
                    web = None
            run_manage(env, "breakdown", str(args.calls))
            print(
                "\nsummary: added_ms at the median "
                + ", ".join(
                    f"{(m * 1000):.2f} (synchronous_commit={k})" for k, (m, _) in added.items()
                )
            )
        finally:
            if web is not None:
                stop(web)
            stop(sim)
            drop_bench_db()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--manage":
        manage_main(sys.argv[2:])
    else:
        main()
