"""Is the dashboard's hourly operations chart fast on a big audit log? Side by side.

Seeds ``--rows`` ``ops_log`` rows (default 10,000,000, one every 2.5 s: about ten months) into
a database of its own with primitive_overhead's ``INSERT ... SELECT generate_series``, then
times:

- the chart's query (``ops.charts.hourly_counts``: one aggregate over the last 24 hours, a
  range on ``ts``), ``--repeats`` times, and the whole chart as the dashboard builds it;
- the baseline: the same aggregate over the whole table (what a chart without the window on
  an index would cost), three times;

and prints the chart query's plan. Target: the chart in well under 100 ms, whatever the size.

Run: ``.venv/bin/python bench/dashboard_chart.py [--rows 10000000] [--repeats 20]``
(uses the embedded PostgreSQL unless OPS_DB_URL is set; the bench database is dropped after).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apiops_site.settings")
os.environ.setdefault("OPS_LOG_LEVEL", "WARNING")

from bench import jobs_throughput as shared  # noqa: E402 - after the path and settings
from bench.primitive_overhead import SEED_SQL  # noqa: E402

shared.BENCH_DB = "apiops_chart_bench"

WHOLE_TABLE_SQL = "SELECT date_trunc('hour', ts), status, count(*) FROM ops_log GROUP BY 1, 2"


def timed(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


def ms(values: list[float]) -> str:
    return (
        f"{statistics.median(values) * 1000:9.1f} ms median, "
        f"{shared.percentile(values, 0.95) * 1000:9.1f} ms p95"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    shared.use_bench_database()
    from django.core.management import call_command
    from django.db import connections
    from django.utils import timezone

    from ops import charts

    try:
        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        with connections["default"].cursor() as cursor:
            cursor.execute(SEED_SQL, [args.rows])
            cursor.execute("VACUUM ANALYZE ops_log")
        seeded = time.perf_counter() - started
        now = timezone.now()
        hour = now.replace(minute=0, second=0, microsecond=0)
        since, until = hour - timedelta(hours=23), hour + timedelta(hours=1)

        query = timed(lambda: charts.hourly_counts(since, until), args.repeats)
        chart = timed(lambda: charts.operations_per_hour(timezone.now()), args.repeats)
        with connections["audit"].cursor() as cursor:
            cursor.execute("EXPLAIN " + charts._HOURLY_SQL, [since, until])
            plan = [row[0] for row in cursor.fetchall()]

            def whole_table() -> None:
                cursor.execute(WHOLE_TABLE_SQL)
                cursor.fetchall()

            baseline = timed(whole_table, 3)
        in_window = sum(charts.hourly_counts(since, until).values())
    finally:
        shared.drop_bench_database()

    print(f"{args.rows:,} audit rows seeded in {seeded:.0f} s; {in_window:,} in the last 24 h")
    print(f"{'chart query (24 h window)':34}{ms(query)}")
    print(f"{'whole chart, as the dashboard':34}{ms(chart)}")
    print(f"{'baseline: the whole table':34}{ms(baseline)}")
    print("plan of the chart query:")
    for line in plan:
        print(f"  {line}")


if __name__ == "__main__":
    main()
