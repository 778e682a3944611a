"""What ApiOps adds to a primitive operation, and how fast the audit list is on a big table.

Part 1 — overhead: one kubesim, N StatefulSet scale calls made directly with the kubernetes
client (GET scale + PATCH scale, what the service itself sends), then N through ApiOps: a real
gunicorn server, X-API-Key authentication, the audit row written first and completed after.
Prints both medians (and p90), the ratio and the difference. Target: <= 10 ms added at the
median.

Part 2 — the audit list: 1,000,000 ``ops_log`` rows seeded with one ``INSERT ... SELECT
generate_series`` into a separate database, then ``GET /ops/audit`` timed without a filter and
with each filter. Target: < 100 ms.

Run: ``.venv/bin/python bench/primitive_overhead.py [--calls 300] [--rows 1000000]``
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


def seed_rows(env: dict[str, str], rows: int) -> float:
    """Insert ``rows`` audit rows in one statement; returns the seconds it took."""
    started = time.perf_counter()
    run_manage(env, "seed", str(rows))
    return time.perf_counter() - started


SEED_SQL = """
INSERT INTO ops_log (ts, actor, source_ip, action, resource_kind, namespace, resource_name,
                     request_body, status, error_message, origin, http_status, finished_at)
SELECT now() - make_interval(secs => g * 2.5),
       (ARRAY['alice','bob','carol','deploy-bot','ci','bootstrap'])[1 + (g * 31) %% 6],
       '10.0.' || (g %% 250) || '.' || (g %% 200),
       (ARRAY['scale','delete'])[1 + (g / 2) %% 2],
       (ARRAY['statefulset','deployment','pod','persistentvolumeclaim'])[1 + (g / 5) %% 4],
       (ARRAY['prod','staging','dev','qa','kube-system'])[1 + (g / 3) %% 5],
       'obj-' || (g %% 5000),
       jsonb_build_object('replicas', g %% 10),
       CASE WHEN (g * 17) %% 100 < 2 THEN 'denied'
            WHEN (g * 17) %% 100 < 7 THEN 'error' ELSE 'success' END,
       CASE WHEN (g * 17) %% 100 BETWEEN 2 AND 6 THEN 'not found' END,
       'api', 200, now() - make_interval(secs => g * 2.5)
FROM generate_series(1, %s) AS g
"""


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
    elif argv[0] == "seed":
        with connection.cursor() as cur:
            # Seeded rows bypass the audit chain's trigger (they are not finished operations).
            cur.execute("SET session_replication_role = replica")
            cur.execute(SEED_SQL, [int(argv[1])])
            cur.execute("VACUUM ANALYZE ops_log")


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


GUNICORN_CONF = """
import os
def post_fork(server, worker):
    # Point this worker at the bench database (embedded server: same socket, other name).
    if not os.environ.get("OPS_DB_URL"):
        from django.conf import settings
        for alias in ("default", "audit"):
            settings.DATABASES[alias]["NAME"] = os.environ["OPS_BENCH_DB"]
"""


def start_apiops(env: dict[str, str], tmp: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    conf = tmp / "gunicorn_conf.py"
    conf.write_text(GUNICORN_CONF)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "apiops_site.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--threads",
            "2",
            "--worker-class",
            "gthread",
            "--config",
            str(conf),
        ],
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
    raise SystemExit("gunicorn did not start")


def stop(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, 15)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)


# --- measurements -----------------------------------------------------------------------------


def time_direct(kubeconfig: str, calls: int) -> list[float]:
    """The same Kubernetes calls the scale service makes, straight from the client."""
    from kubernetes import client, config

    cfg = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    apps = client.AppsV1Api(client.ApiClient(cfg))
    samples = []
    for i in range(calls):
        started = time.perf_counter()
        apps.read_namespaced_stateful_set_scale("postgres", "prod", _request_timeout=10)
        apps.patch_namespaced_stateful_set_scale(
            "postgres", "prod", {"spec": {"replicas": 2 + i % 2}}, _request_timeout=10
        )
        samples.append(time.perf_counter() - started)
    return samples


def time_apiops(port: int, calls: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"X-API-Key": KEY, "Content-Type": "application/json"}
    samples = []
    for i in range(calls):
        body = json.dumps({"replicas": 2 + i % 2})
        started = time.perf_counter()
        conn.request("POST", "/ops/namespaces/prod/statefulsets/postgres/scale", body, headers)
        response = conn.getresponse()
        response.read()
        samples.append(time.perf_counter() - started)
        if response.status != 200:
            raise SystemExit(f"ApiOps answered {response.status}")
    return samples


def time_get(port: int, path: str, repeats: int) -> tuple[list[float], dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    samples, body = [], {}
    for _ in range(repeats):
        started = time.perf_counter()
        conn.request("GET", path, headers={"X-API-Key": KEY})
        response = conn.getresponse()
        data = response.read()
        samples.append(time.perf_counter() - started)
        if response.status != 200:
            raise SystemExit(f"{path} answered {response.status}: {data[:200]!r}")
        body = json.loads(data)
    return samples, body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    recreate_bench_db()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        sim, kubeconfig = start_kubesim(tmp)
        env = bench_env(kubeconfig)
        web = None
        try:
            run_manage(env, "migrate")
            web, port = start_apiops(env, tmp)
            # Warm up both paths (connections, imports, the client cache).
            time_direct(kubeconfig, 10)
            time_apiops(port, 10)
            direct = time_direct(kubeconfig, args.calls)
            through = time_apiops(port, args.calls)
            d, a = statistics.median(direct), statistics.median(through)
            print(f"\nscale statefulset, {args.calls} calls each")
            d90, a90 = percentile(direct, 0.9), percentile(through, 0.9)
            print(f"  direct to kubesim (GET+PATCH):    median {ms(d)}  p90 {ms(d90)}")
            print(f"  through ApiOps (HTTP+auth+audit): median {ms(a)}  p90 {ms(a90)}")
            print(f"  ratio {a / d:.2f}x, added at the median {ms(a - d)} (target <= 10 ms)")

            print(f"\nseeding {args.rows:,} ops_log rows ...", flush=True)
            took = seed_rows(env, args.rows)
            print(f"  seeded in {took:.1f} s")
            queries = [
                "/ops/audit",
                "/ops/audit?namespace=prod",
                "/ops/audit?actor=bob",
                "/ops/audit?status=denied",
                "/ops/audit?action=delete&namespace=staging",
                "/ops/audit?since=2020-01-01T00:00:00Z",
                "/ops/audit?namespace=qa&status=error",
                "/ops/audit?actor=carol&namespace=kube-system&status=denied",
                "/ops/audit?actor=nobody",
            ]
            print(f"\nGET /ops/audit on {args.rows:,} rows, {args.repeats} requests each")
            for path in queries:
                samples, body = time_get(port, path, args.repeats)
                page = (
                    time_get(port, body["next"].split(f":{port}", 1)[1], 3)[0]
                    if body.get("next")
                    else []
                )
                extra = f"  next page {ms(statistics.median(page))}" if page else ""
                print(
                    f"  {path:<55} median {ms(statistics.median(samples))}  "
                    f"max {ms(max(samples))}  count={body['count']}"
                    f"{'' if body['count_exact'] else ' (estimate)'}{extra}"
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
