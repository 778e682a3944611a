"""How the job runner copes with many rebuilds at once on few workers.

N pg-rebuild jobs (default 50) on N different StatefulSets, started back to back through the
real view and service, run by a real ``manage.py qcluster`` with W workers (default 2) against
kubesim with short delays. Prints:

- pickup latency: from the POST to the first step running (median, p95, max);
- total time from the first POST to the last job finished, against the sum of the waits
  kubesim imposed (each replica's termination going down and readiness coming up, in order);
- API requests per second per waiting job, from kubesim's request log: the requests about a
  job's StatefulSet made while one of its wait steps ran, over the time those steps took, and
  the most such requests one job made within any one second;
- per strategy (``--strategy both``, the default, alternates scale-to-zero and in-place jobs
  in the same run): the target's downtime as each job recorded it, and the fewest of the
  *other* replicas that were Ready at any moment of each rebuild (watched at every change of
  kubesim's store) — in-place should keep them all, scale-to-zero none.

Targets (issue 4): pickup under 1 s at the median; no more than 2 requests/s per waiting job.

Run: ``.venv/bin/python bench/jobs_throughput.py [--jobs 50] [--workers 2] [--replicas 2]
[--strategy both|scale-to-zero|in-place] [--ready-delay 0.2] [--termination-delay 0.2]
[--poll 1.0] [--interval 0]``
(uses the embedded PostgreSQL
unless OPS_DB_URL is set; a separate database, dropped afterwards).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apiops_site.settings")
os.environ.setdefault("OPS_LOG_LEVEL", "WARNING")

BENCH_DB = "apiops_jobs_bench"
KEY = "bench-jobs-key-0123456789abcdef0123"
STRATEGIES = ("scale-to-zero", "in-place")
#: The steps that wait (poll), by strategy; in-place's delete_pvc does not wait.
WAIT_STEPS = {
    "scale-to-zero": ("wait_pods_down", "delete_pvc", "wait_pods_ready"),
    "in-place": ("wait_pvc_gone", "wait_pod_ready"),
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def statefulsets_yaml(count: int, replicas: int) -> str:
    docs = ["apiVersion: v1\nkind: Namespace\nmetadata: {name: prod}\n"]
    for i in range(count):
        name = f"pg-{i:02d}"
        docs.append(
            f"""apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: {name}, namespace: prod}}
spec:
  replicas: {replicas}
  serviceName: {name}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: postgres, image: postgres:16}}]
  volumeClaimTemplates:
  - metadata: {{name: data}}
    spec: {{accessModes: [ReadWriteOnce], resources: {{requests: {{storage: 1Gi}}}}}}
"""
        )
    return "---\n".join(docs)


def use_bench_database() -> str:
    """Point Django at a fresh bench database; returns a URL for the worker to reach it."""
    import django
    from django.conf import settings

    django.setup()
    import psycopg2
    from django.db import connections

    params = connections["default"].get_connection_params()
    params.pop("database", None)
    params["dbname"] = "postgres"
    admin = psycopg2.connect(**params)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        cur.execute(f"CREATE DATABASE {BENCH_DB}")
    admin.close()
    for alias in ("default", "audit"):
        connections[alias].close()
        settings.DATABASES[alias]["NAME"] = BENCH_DB
        connections[alias].settings_dict["NAME"] = BENCH_DB
    connections["default"].ensure_connection()
    info = connections["default"].connection.info
    auth = quote(info.user or "") + (":" + quote(info.password) if info.password else "")
    if info.host.startswith("/"):
        return f"postgresql://{auth}@/{BENCH_DB}?host={quote(info.host)}&port={info.port}"
    return f"postgresql://{auth}@{info.host}:{info.port}/{BENCH_DB}"


def drop_bench_database() -> None:
    import psycopg2
    from django.db import connections

    for alias in ("default", "audit"):
        connections[alias].close()
    params = connections["default"].get_connection_params()
    params.pop("database", None)
    params["dbname"] = "postgres"
    admin = psycopg2.connect(**params)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
    admin.close()


def spawn(argv: list[str], env: dict[str, str], log: list[str]) -> subprocess.Popen:
    """``python ARGV`` in a process group of its own, its output collected into ``log``."""
    proc = subprocess.Popen(
        [sys.executable, *argv],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    threading.Thread(target=lambda: log.extend(proc.stdout), daemon=True).start()
    return proc


def start_worker(env: dict[str, str], log: list[str]) -> subprocess.Popen:
    """Start the cluster as ``make run`` does; ready once a worker has run the pump (every
    worker start queues one), which also means it has loaded the Kubernetes client."""
    from jobs.models import JobPump

    proc = spawn(["-m", "jobs.worker"], env, log)
    deadline = time.monotonic() + 60
    while not JobPump.objects.filter(last_run_at__isnull=False).exists():
        if time.monotonic() > deadline or proc.poll() is not None:
            stop_worker(proc)
            raise SystemExit("the cluster did not start:\n" + "".join(log[-30:]))
        time.sleep(0.1)
    return proc


def stop_worker(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def requests_while_waiting(sim, jobs) -> list[tuple[str, float, int, int, int]]:
    """Per job: (job id, seconds spent in wait steps, requests about its set in that time,
    the most of those requests in any one-second window, requests after each step's first)."""
    records = sim.requests.snapshot()
    out = []
    for job in jobs:
        sts = job.params["statefulset"]
        windows = [
            (s.started_at.timestamp(), s.finished_at.timestamp())
            for s in job.steps.all()
            if s.name in WAIT_STEPS[job.params.get("strategy", STRATEGIES[0])]
            and s.started_at
            and s.finished_at
        ]

        def about(record, sts=sts) -> bool:
            return (
                record.name == sts
                or record.name.startswith(f"data-{sts}-")
                or record.name.startswith(f"{sts}-")
                or record.query.get("labelSelector") == f"app={sts}"
            )

        mine = sorted(r.time for r in records if about(r))
        per_window = [[t for t in mine if start <= t <= end] for start, end in windows]
        times = sorted(t for window in per_window for t in window)
        peak = max(
            (sum(1 for u in times if t <= u < t + 1.0) for t in times),
            default=0,
        )
        # A wait of n checks spans n-1 poll intervals: its first look says nothing of the rate.
        repeats = sum(max(0, len(window) - 1) for window in per_window)
        out.append(
            (job.job_id, sum(end - start for start, end in windows), len(times), peak, repeats)
        )
    return out


class ReadyWatch:
    """The fewest Ready pods, other than the rebuilt one, each StatefulSet had at any change of
    the store while its job ran (sampled under the store's lock, at every notification)."""

    def __init__(self, sim, targets: dict[str, str]) -> None:
        self.sim = sim
        self.targets = targets  # statefulset -> name of the pod being rebuilt
        self.lowest: dict[str, int] = {}
        self.active: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _ready_others(self, sts: str) -> int:
        ready = 0
        for pod in self.sim.list("pods", "prod", f"app={sts}"):
            if pod["metadata"]["name"] == self.targets[sts]:
                continue
            conditions = (pod.get("status") or {}).get("conditions") or []
            if "deletionTimestamp" not in pod["metadata"] and any(
                c["type"] == "Ready" and c["status"] == "True" for c in conditions
            ):
                ready += 1
        return ready

    def _run(self) -> None:
        with self.sim.store.changed:
            while not self._stop.is_set():
                for sts in list(self.active):
                    seen = self._ready_others(sts)
                    self.lowest[sts] = min(self.lowest.get(sts, seen), seen)
                self.sim.store.changed.wait(0.05)

    def start(self) -> ReadyWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument(
        "--strategy",
        choices=(*STRATEGIES, "both"),
        default="both",
        help="rebuild strategy; both: alternate them in one run, side by side",
    )
    parser.add_argument("--ready-delay", type=float, default=0.2)
    parser.add_argument("--termination-delay", type=float, default=0.2)
    parser.add_argument("--poll", type=float, default=1.0, help="OPS_JOB_POLL_INTERVAL")
    parser.add_argument(
        "--interval", type=float, default=0.0, help="seconds between POSTs (0: a burst)"
    )
    args = parser.parse_args()

    worker_db_url = use_bench_database()
    from django.conf import settings
    from django.core.management import call_command
    from rest_framework.test import APIClient

    from jobs.models import Job
    from kubesim import KubeSim
    from ops import k8s

    call_command("migrate", verbosity=0)
    sim = KubeSim(
        ready_delay=args.ready_delay, termination_delay=args.termination_delay, tick=0.1
    ).start()
    proc = None
    try:
        sim.apply(statefulsets_yaml(args.jobs, args.replicas))
        sim.wait_for(
            lambda: all(
                (sim.get("statefulsets", "prod", f"pg-{i:02d}") or {})
                .get("status", {})
                .get("readyReplicas")
                == args.replicas
                for i in range(args.jobs)
            ),
            timeout=120,
        )
        settings.APIOPS = {
            **settings.APIOPS,
            "KUBECONFIG": sim.kubeconfig_path,
            "API_KEY": KEY,
            "AUTH_FAILURE_LIMIT": 1_000_000,
        }
        k8s.reset_client()
        k8s.warm_up()
        env = {
            **os.environ,
            "OPS_DB_URL": worker_db_url,
            "OPS_KUBECONFIG": sim.kubeconfig_path,
            "OPS_Q_WORKERS": str(args.workers),
            "OPS_JOB_POLL_INTERVAL": str(args.poll),
            "OPS_LOG_LEVEL": "WARNING",
        }
        env.pop("KUBECONFIG", None)
        worker_log: list[str] = []
        proc = start_worker(env, worker_log)
        time.sleep(2)  # the other workers load the Kubernetes client too
        sim.requests.clear()

        client = APIClient(SERVER_NAME="127.0.0.1")
        client.credentials(HTTP_X_API_KEY=KEY)
        posted: dict[str, float] = {}
        ordinal = args.replicas - 1
        names = [f"pg-{i:02d}" for i in range(args.jobs)]
        watch = ReadyWatch(sim, {name: f"{name}-{ordinal}" for name in names})
        watch.active.update(names)
        watch.start()
        for i in range(args.jobs):
            strategy = STRATEGIES[i % 2] if args.strategy == "both" else args.strategy
            body = {
                "namespace": "prod",
                "statefulset": names[i],
                "ordinal": ordinal,
                "target_replicas": args.replicas,
                "strategy": strategy,
            }
            if args.interval and i:
                time.sleep(args.interval)
            sent = time.time()
            response = client.post("/ops/jobs/pg-rebuild", body, format="json")
            if response.status_code != 202:
                raise SystemExit(f"POST answered {response.status_code}: {response.content!r}")
            posted[response.json()["job_id"]] = sent

        deadline = time.monotonic() + 900
        while Job.objects.filter(status__in=("pending", "running")).exists():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("jobs did not finish:\n" + "".join(worker_log[-40:]))
            for job in Job.objects.exclude(status__in=("pending", "running")).only("params"):
                watch.active.discard(job.params["statefulset"])
            time.sleep(0.2)
        watch.stop()

        jobs = list(Job.objects.prefetch_related("steps").order_by("created_at"))
        failed = [j.job_id for j in jobs if j.status != "success"]
        pickups = [
            next(s for s in j.steps.all() if s.step_order == 1).started_at.timestamp()
            - posted[j.job_id]
            for j in jobs
        ]
        first_post = min(posted.values())
        last_end = max(j.finished_at.timestamp() for j in jobs)
        durations = [j.finished_at.timestamp() - posted[j.job_id] for j in jobs]
        imposed = args.replicas * (args.termination_delay + args.ready_delay)
        rates = requests_while_waiting(sim, jobs)
        waited = sum(r[1] for r in rates)
        asked = sum(r[2] for r in rates)
        per_job = [r[2] / r[1] for r in rates if r[1] > 0]
        peaks = [r[3] for r in rates]
        repeats = sum(r[4] for r in rates)

        print(
            f"{args.jobs} rebuilds, {args.workers} workers, {args.replicas} replicas each, "
            f"kubesim ready {args.ready_delay} s / termination {args.termination_delay} s, "
            f"poll {args.poll} s, "
            + (f"one POST every {args.interval} s" if args.interval else "POSTs in a burst")
        )
        print(f"  failed jobs: {len(failed)} {failed[:3]}")
        print(
            f"  pickup (POST -> first step running): median {statistics.median(pickups):.3f} s, "
            f"p95 {percentile(pickups, 0.95):.3f} s, max {max(pickups):.3f} s"
        )
        print(
            f"  total time: {last_end - first_post:.1f} s for {args.jobs} jobs; sum of imposed "
            f"waits {imposed * args.jobs:.1f} s ({imposed:.2f} s per job)"
        )
        print(
            f"  per job, POST to finished: median {statistics.median(durations):.2f} s, "
            f"p95 {percentile(durations, 0.95):.2f} s (imposed {imposed:.2f} s)"
        )
        print(
            f"  API requests while waiting: {asked} in {waited:.1f} job-seconds = "
            f"{asked / waited:.2f} req/s per waiting job overall; per job median "
            f"{statistics.median(per_job):.2f}, max {max(per_job):.2f} req/s"
        )
        print(
            f"  polling alone (each wait step's first look left out): {repeats / waited:.2f} "
            f"req/s per waiting job; the most requests any job made in one second: {max(peaks)}"
        )
        print(f"  all API requests: {len(sim.requests)} ({len(sim.requests.mutations())} writes)")
        for strategy in STRATEGIES:
            mine = [j for j in jobs if j.params.get("strategy") == strategy]
            if not mine:
                continue
            down = [j.result.get("downtime_seconds") for j in mine]
            down = [d for d in down if d is not None]
            lowest = [watch.lowest.get(j.params["statefulset"], -1) for j in mine]
            print(
                f"  {strategy}: {len(mine)} rebuilds; target down median "
                f"{statistics.median(down) if down else float('nan'):.2f} s, max "
                f"{max(down, default=float('nan')):.2f} s; other replicas Ready (of "
                f"{args.replicas - 1}), minimum seen per rebuild: lowest {min(lowest)}, "
                f"median {statistics.median(lowest)}"
            )
        if os.environ.get("BENCH_WORKER_LOG"):
            Path(os.environ["BENCH_WORKER_LOG"]).write_text("".join(worker_log))
    finally:
        if proc is not None:
            stop_worker(proc)
        sim.stop()
        drop_bench_database()


if __name__ == "__main__":
    main()
