"""What the audit hash chain costs, and how fast ``audit_verify`` walks it.

Part 1 — cost per audited operation: the audit writes of one operation (the ``pending`` row,
then its outcome: :func:`ops.audit.attempt` around no cluster call) timed N times with the
chain on (row hash in Python, the trigger linking it under the head row's lock) and N times
with it off (no row hash, the trigger bypassed with ``session_replication_role = replica``),
in alternating rounds of one run. Prints both medians (and p90) and the difference. Target:
<= 0.5 ms added at the median.

Part 2 — verification: 1,000,000 chained rows written with COPY (hashes computed here, as
the trigger would link them), then ``ops.proof.verify`` (what ``manage.py audit_verify``
runs) timed over them. Target: >= 100,000 rows/s.

Run: ``.venv/bin/python bench/audit_chain.py [--ops 2000] [--rows 1000000]`` (uses the
embedded PostgreSQL unless OPS_DB_URL is set; its own database, dropped after).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apiops_site.settings")

from primitive_overhead import admin_connection, percentile  # noqa: E402

BENCH_DB = "apiops_bench_audit"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.3f} ms"


def use_bench_db() -> None:
    """Create the bench database and point both aliases at it (migrated)."""
    conn = admin_connection()
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        cur.execute(f"CREATE DATABASE {BENCH_DB}")
    conn.close()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connections

    for alias in ("default", "audit"):
        settings.DATABASES[alias]["NAME"] = BENCH_DB
        connections[alias].close()
        connections[alias].settings_dict["NAME"] = BENCH_DB
    call_command("migrate", verbosity=0)


def drop_bench_db() -> None:
    from django.db import connections

    connections.close_all()
    conn = admin_connection()
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
    conn.close()


@contextmanager
def chain_off():
    """No row hash and no trigger: the audit writes as they were before the chain."""
    from django.db import connections

    from ops import audit, models

    def no_seal(row) -> None:
        row.row_hash = None

    saved = audit.seal, models.seal
    audit.seal = models.seal = no_seal
    with connections["audit"].cursor() as cur:
        cur.execute("SET session_replication_role = replica")
    try:
        yield
    finally:
        audit.seal, models.seal = saved
        with connections["audit"].cursor() as cur:
            cur.execute("SET session_replication_role = origin")


def one_operation(i: int) -> float:
    from ops.actors import Actor
    from ops.audit import Target, attempt

    actor = Actor(name="bench", source_ip="10.0.0.1", origin="api")
    target = Target("scale", "deployment", "prod", f"web-{i % 50}", {"replicas": i % 10})
    started = time.perf_counter()
    with attempt(actor=actor, target=target):
        pass
    return time.perf_counter() - started


def part1(ops: int) -> None:
    on: list[float] = []
    off: list[float] = []
    for i in range(20):  # warm the connection and the caches
        one_operation(i)
    # Paired: each operation with the chain on, then one with it off, so a busy machine
    # slows both sides alike.
    for i in range(ops):
        on.append(one_operation(i))
        with chain_off():
            off.append(one_operation(i))
    med_on, med_off = statistics.median(on), statistics.median(off)
    added = statistics.median(a - b for a, b in zip(on, off, strict=True))
    print(f"\n== Part 1: audit writes of one operation (pending row + outcome), {len(on)} pairs")
    print(f"{'':22}{'median':>12}{'p90':>12}")
    print(f"{'chain off':22}{ms(med_off):>12}{ms(percentile(off, 0.9)):>12}")
    print(f"{'chain on':22}{ms(med_on):>12}{ms(percentile(on, 0.9)):>12}")
    verdict = "ok" if med_on - med_off <= 0.0005 else "OVER TARGET"
    print(f"added by the chain: {ms(med_on - med_off)} at the median (target <= 0.5 ms): {verdict}")
    print(f"median of the paired differences: {ms(added)}")


def copy_chain(rows: int) -> float:
    """Replace the log with ``rows`` chained rows, written with COPY as a superuser with the
    triggers off (hashes computed here, linked as the trigger links them)."""
    from django.db import connections

    from ops import chain
    from ops.models import OpsLog

    layout = chain.Layout.of(OpsLog)
    fields = chain.content_fields(OpsLog)
    started = time.perf_counter()
    conn = connections["audit"]
    conn.ensure_connection()
    raw = conn.connection
    with raw.cursor() as cur:
        # Part 1's rows go (those written with the chain off are outside it).
        cur.execute("SET session_replication_role = replica")
        cur.execute("TRUNCATE ops_log, ops_log_chain")
    last_id = last_seq = 0
    prev = chain.GENESIS
    t0 = datetime.now(UTC) - timedelta(days=30)
    columns = ["id", *[f.column for f in fields], "row_hash", "chain_seq", "chain_hash"]
    batch = 50_000
    for start in range(0, rows, batch):
        buf = io.StringIO()
        for n in range(start, min(rows, start + batch)):
            row_id, seq = last_id + n + 1, last_seq + n + 1
            ts = t0 + timedelta(milliseconds=n * 2)
            values = {
                "action": "scale" if n % 2 else "delete",
                "actor": ("alice", "bob", "ci", "deploy-bot")[n % 4],
                "audit_id": uuid.uuid4(),
                "code": None,
                "dry_run": False,
                "error_message": None,
                "finished_at": ts + timedelta(milliseconds=1),
                "http_status": 200,
                "job_id": None,
                "key_prefix": None,
                "namespace": ("prod", "staging")[n % 2],
                "origin": "api",
                "request_body": '{"replicas": ' + str(n % 10) + "}",
                "resource_kind": "deployment",
                "resource_name": f"web-{n % 500}",
                "source_ip": f"10.0.{n % 250}.{n % 200}",
                "status": "success",
                "ts": ts,
            }
            ordered = [values.get(f.column) for f in fields]
            row_hash = chain.digest(layout.canonical(ordered))
            prev = chain.link(prev, row_id, row_hash)
            cells = [row_id, *ordered, row_hash, seq, prev]
            buf.write("\t".join(r"\N" if v is None else str(v) for v in cells) + "\n")
        buf.seek(0)
        with raw.cursor() as cur:
            cur.copy_expert(f"COPY ops_log ({', '.join(columns)}) FROM STDIN", buf)
    with raw.cursor() as cur:
        cur.execute(
            "INSERT INTO ops_log_chain (id, size, head) VALUES (1, %s, %s)",
            [last_seq + rows, prev],
        )
        cur.execute("SELECT setval(pg_get_serial_sequence('ops_log', 'id'), %s)", [last_id + rows])
        cur.execute("SET session_replication_role = origin")
        cur.execute("VACUUM ANALYZE ops_log")
    return time.perf_counter() - started


def part2(rows: int) -> None:
    from ops import proof

    written = copy_chain(rows)
    started, cpu = time.perf_counter(), time.process_time()
    report = proof.verify()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert report.holds, report.problems
    rate = report.size / seconds
    print(f"\n== Part 2: audit_verify over {report.size:,} chained rows")
    print(f"written with COPY in {written:.1f} s")
    print(
        f"verified in {seconds:.2f} s: {rate:,.0f} rows/s (target >= 100,000 rows/s): "
        f"{'ok' if rate >= 100_000 else 'UNDER TARGET'}"
    )
    print(
        f"the verifier's own CPU: {cpu:.2f} s, {report.size / cpu:,.0f} rows per CPU-second; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=2000, help="operations per side (part 1)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="chained rows (part 2)")
    args = parser.parse_args()
    import django

    django.setup()
    use_bench_db()
    try:
        part1(args.ops)
        part2(args.rows)
    finally:
        drop_bench_db()
    return 0


if __name__ == "__main__":
    sys.exit(main())
