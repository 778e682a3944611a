"""The audit log at 10 million rows: ``GET /ops/audit`` and the admin's audit list.

Seeds ``--rows`` (default 10,000,000) ``ops_log`` rows into a database of its own with one
``INSERT ... SELECT generate_series`` (indexes dropped first and rebuilt after: minutes, not
hours), shaped like a busy year: a dozen namespaces, bots doing most of the work, a bot that
only ran months ago, an actor with a few hundred rows, a status mix with correlations (401s
have no actor, kube-system is mostly refusals). The database is kept for the next run (the
seed is reused while it has the same row count); ``--drop`` removes it.

Then, in this process (Django's test client: the view, the ORM and PostgreSQL; no HTTP):

* ``GET /ops/audit`` for every kind of filter combination — none, one, two, three and four
  filters, with common and with rare or absent values, with time bounds (ISO and relative), a
  deep cursor page — ``--repeats`` times each, printing p50 and p95. Target: p95 <= 50 ms.
* the admin's audit changelist (a superuser's session): unfiltered, filtered, each level of
  the date drill-down, a search. Target: <= 300 ms.

Run: ``.venv/bin/python bench/audit_scale.py [--rows 10000000] [--repeats 20] [--drop]``
(the embedded PostgreSQL unless OPS_DB_URL is set).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apiops_site.settings")
os.environ["OPS_API_KEY"] = KEY = "bench-key-0123456789abcdef0123456789"
os.environ.setdefault("OPS_LOG_LEVEL", "WARNING")

BENCH_DB = "apiops_bench_audit"
API_TARGET_MS = 50.0
ADMIN_TARGET_MS = 300.0

# Rows are numbered g = 1..N from the newest (g = 1, now) to the oldest (a year ago).
SEED_SQL = """
SELECT setseed(0.14);
INSERT INTO ops_log (ts, actor, source_ip, action, resource_kind, namespace, resource_name,
                     request_body, status, error_message, origin, code, http_status,
                     finished_at)
SELECT ts, actor, source_ip, action, kind, namespace, name, body, status,
       CASE WHEN status = 'error' THEN 'The cluster has no such object.' END,
       origin,
       CASE status WHEN 'error' THEN 'not_found' WHEN 'denied' THEN 'namespace_denied' END,
       CASE status WHEN 'success' THEN 200 WHEN 'error' THEN 404 WHEN 'denied' THEN 403 END,
       CASE WHEN status <> 'pending' THEN ts END
FROM (
  SELECT g, ts, r1, r2, r3, r4,
         CASE WHEN r1 < 0.02 THEN NULL                              -- 401s: no actor
              WHEN g > %(n)s * 0.85 AND r2 < 0.15 THEN 'old-bot'      -- only months ago
              WHEN r2 < 0.00003 THEN 'rare-bot'                     -- a few hundred rows
              WHEN r2 < 0.32 THEN 'deploy-bot'
              WHEN r2 < 0.52 THEN 'ci'
              WHEN r2 < 0.60 THEN 'bootstrap'
              ELSE (ARRAY['alice','bob','carol','dave','erin','frank','grace','heidi',
                          'ivan','judy','mallory','niaj','olivia','peggy','rupert',
                          'sybil','trent','victor','walter','zoe'])[1 + floor(r3 * 20)::int]
         END AS actor,
         CASE WHEN r1 < 0.02 THEN 'denied'
              WHEN r4 < 0.05 THEN 'error'
              WHEN r4 < 0.06 THEN 'denied'
              WHEN r4 < 0.0605 THEN 'pending'
              ELSE 'success' END AS status,
         CASE WHEN r3 < 0.40 THEN 'prod' WHEN r3 < 0.65 THEN 'staging' WHEN r3 < 0.80 THEN 'dev'
              WHEN r3 < 0.88 THEN 'qa' WHEN r3 < 0.90 THEN 'kube-system'
              ELSE (ARRAY['team-a','team-b','team-c','team-d','team-e','team-f',
                          'team-g'])[1 + floor((r3 - 0.90) * 70)::int] END AS namespace,
         CASE WHEN r2 < 0.60 THEN 'scale' WHEN r2 < 0.85 THEN 'delete'
              WHEN r2 < 0.90 THEN 'pg-rebuild' WHEN r2 < 0.95 THEN 'rollout-restart'
              ELSE 'pg-backup' END AS action,
         (ARRAY['statefulset','deployment','pod','persistentvolumeclaim'])[1 + floor(r4 * 4)::int]
           AS kind,
         'obj-' || floor(r4 * 5000)::int AS name,
         '10.0.' || floor(r3 * 250)::int || '.' || floor(r2 * 250)::int AS source_ip,
         jsonb_build_object('replicas', floor(r3 * 10)::int) AS body,
         CASE WHEN r4 < 0.1 THEN 'job' WHEN r4 < 0.12 THEN 'cli' ELSE 'api' END AS origin
  FROM (
    SELECT g, now() - make_interval(secs => g * (31536000.0 / %(n)s)) AS ts,
           random() AS r1, random() AS r2, random() AS r3, random() AS r4
    FROM generate_series(1, %(n)s) AS g
  ) raw
) shaped;
"""

QUERIES = [
    "",
    "namespace=prod",
    "namespace=team-g",
    "actor=deploy-bot",
    "actor=rare-bot",
    "actor=old-bot",
    "actor=nobody",
    "action=pg-backup",
    "status=error",
    "status=pending",
    "namespace=prod&status=error",
    "actor=alice&action=delete",
    "namespace=kube-system&status=success",
    "actor=deploy-bot&status=pending",
    "namespace=staging&action=pg-rebuild&status=error",
    "actor=carol&namespace=kube-system&status=denied",
    "actor=rare-bot&namespace=prod&action=scale",
    "namespace=prod&actor=alice&action=delete&status=error",
    "namespace=team-a&actor=old-bot&action=pg-backup&status=pending",
    "since=24h",
    "since=7d&namespace=prod",
    "since=24h&status=error&actor=ci",
    "since=30d&namespace=team-g&status=denied",
    "until=300d&actor=old-bot&status=error",
    "since=2020-01-01T00:00:00Z&until=90d&namespace=qa",
    "since=400d&actor=rare-bot",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --- database ---------------------------------------------------------------------------------


def _maintenance(statement: str) -> None:
    """Run ``statement`` on the server's maintenance database (CREATE / DROP DATABASE)."""
    import psycopg2
    from django.db import connections

    connections.close_all()
    params = connections["default"].get_connection_params()
    params.pop("database", None)
    admin = psycopg2.connect(**{**params, "dbname": "postgres"})
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DB])
        exists = cur.fetchone() is not None
        if exists == statement.startswith("DROP"):
            cur.execute(statement)
    admin.close()


def use_bench_database() -> None:
    """Set Django up on the bench database (created when missing), migrated."""
    import django
    from django.conf import settings

    django.setup()
    _maintenance(f"CREATE DATABASE {BENCH_DB}")
    for alias in ("default", "audit"):
        settings.DATABASES[alias]["NAME"] = BENCH_DB
    settings.ALLOWED_HOSTS = ["*"]
    settings.APIOPS = {**settings.APIOPS, "AUTH_FAILURE_LIMIT": 10**9}
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def drop_bench_database() -> None:
    _maintenance(f"DROP DATABASE {BENCH_DB} WITH (FORCE)")


def seed(rows: int) -> None:
    """Fill ops_log with ``rows`` rows, unless it has that many already."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = 'ops_log'")
        estimate = cur.fetchone()[0]
        if abs(estimate - rows) <= rows * 0.01:
            cur.execute("SELECT count(*) FROM ops_log")
            if cur.fetchone()[0] == rows:
                print(f"ops_log already holds {rows:,} rows: kept")
                return
        print(f"seeding {rows:,} ops_log rows ...", flush=True)
        started = time.perf_counter()
        cur.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'ops_log'"
            " AND indexname <> 'ops_log_pkey'"
        )
        indexes = cur.fetchall()
        # Seeded rows are not finished operations: the audit chain's triggers (which refuse
        # a truncate and an unchained finished row) are off for this session.
        cur.execute("SET session_replication_role = replica")
        cur.execute("TRUNCATE ops_log")
        for name, _ in indexes:
            cur.execute(f'DROP INDEX "{name}"')
        cur.execute(SEED_SQL, {"n": rows})
        inserted = time.perf_counter()
        cur.execute("SET maintenance_work_mem = '512MB'")
        for _, definition in indexes:
            cur.execute(definition)
        indexed = time.perf_counter()
    # VACUUM cannot run inside a transaction block: the connection is in autocommit.
    with connection.cursor() as cur:
        cur.execute("VACUUM ANALYZE ops_log")
    print(
        f"  inserted in {inserted - started:.0f} s, {len(indexes)} indexes built in "
        f"{indexed - inserted:.0f} s, vacuumed in {time.perf_counter() - indexed:.0f} s"
    )


# --- measurements -----------------------------------------------------------------------------


def timed(client, path: str, repeats: int, **headers) -> tuple[list[float], object]:
    samples, response = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        response = client.get(path, **headers)
        samples.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{path} answered {response.status_code}: {response.content[:300]}")
    return samples, response


def line(label: str, samples: list[float], target: float, note: str = "") -> bool:
    p50, p95 = statistics.median(samples), percentile(samples, 0.95)
    ok = p95 <= target
    print(f"  {label:<66} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  {'ok ' if ok else 'SLOW'} {note}")
    return ok


def deep_cursor(query: str, days_back: int) -> str:
    """The cursor a client holds after paging back to rows ``days_back`` days old."""
    from base64 import b64encode
    from urllib.parse import urlencode

    position = datetime.now(UTC) - timedelta(days=days_back)
    token = urlencode({"p": str(position)})
    return f"{query}&cursor={b64encode(token.encode()).decode()}".lstrip("&")


def bench_api(repeats: int) -> bool:
    from django.test import Client

    client = Client()
    headers = {"HTTP_X_API_KEY": KEY}
    all_ok = True
    queries = [*QUERIES, deep_cursor("", 200), deep_cursor("namespace=prod", 300)]
    print(f"\nGET /ops/audit, {repeats} requests each (target p95 <= {API_TARGET_MS:.0f} ms)")
    for query in queries:
        timed(client, f"/ops/audit?{query}", 2, **headers)  # warm the cache
        samples, response = timed(client, f"/ops/audit?{query}", repeats, **headers)
        body = response.json()
        count = f"count={body['count']:,}{'' if body['count_exact'] else ' (estimate)'}"
        label = query if "cursor=" not in query else query.split("cursor=")[0] + "cursor=<deep>"
        all_ok &= line(label or "(no filter)", samples, API_TARGET_MS, count)
    return all_ok


def bench_admin(repeats: int) -> bool:
    from django.contrib.auth import get_user_model
    from django.test import Client

    user, _ = get_user_model().objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    now = datetime.now(UTC)
    base = "/admin/ops/opslog/"
    pages = [
        ("unfiltered", ""),
        ("status=error", "?status__exact=error"),
        ("namespace=prod, actor=alice", "?namespace=prod&actor=alice"),
        ("actor is empty (401s)", "?actor__isnull=True"),
        ("drill-down: a year", f"?ts__year={now.year}"),
        ("drill-down: a month", f"?ts__year={now.year}&ts__month={now.month}"),
        ("drill-down: a day", f"?ts__year={now.year}&ts__month={now.month}&ts__day={now.day}"),
        (
            "drill-down month + status=error",
            f"?ts__year={now.year}&ts__month={now.month}&status__exact=error",
        ),
        ("search: alice", "?q=alice"),
        ("search: obj-42", "?q=obj-42"),
        ("search: an address", "?q=10.0.17.3"),
        ("search: nothing matches", "?q=no-such-thing"),
        ("page 50", "?p=50"),
    ]
    all_ok = True
    print(f"\nadmin audit changelist, {repeats} requests each (target <= {ADMIN_TARGET_MS:.0f} ms)")
    for label, query in pages:
        timed(client, base + query, 1)
        samples, _ = timed(client, base + query, repeats)
        all_ok &= line(label, samples, ADMIN_TARGET_MS)
    return all_ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--drop", action="store_true", help="drop the bench database after")
    parser.add_argument("--only", choices=["api", "admin"], help="measure one list only")
    args = parser.parse_args()

    use_bench_database()
    try:
        seed(args.rows)
        ok = True
        if args.only in (None, "api"):
            ok &= bench_api(args.repeats)
        if args.only in (None, "admin"):
            ok &= bench_admin(max(3, args.repeats // 4))
        print("\nall within target" if ok else "\nSOME ABOVE TARGET")
    finally:
        if args.drop:
            drop_bench_database()


if __name__ == "__main__":
    main()
