"""Does a notification receiver that hangs slow down operations or jobs? Side by side.

Two runs against kubesim, each with a real worker (``python -m jobs.worker``) on a database of
its own: without notification targets (the baseline), then with three webhook targets whose
receiver accepts connections and never answers (``OPS_NOTIFY_TIMEOUT`` 30 s, so each
delivery attempt holds a sending thread for 30 s). In each run:

- ``--jobs`` rollout-restart jobs one after another (each writes job.started and
  job.succeeded: six deliveries that hang), after one unmeasured job that warms the workers
  up: the POST's latency and the time from the POST to the job's success;
- ``--scales`` scales through the API: their latency.

Prints both runs side by side, and how many deliveries were still hanging at the end of the
second (proof that the receiver held them). A hanging receiver must not show in the numbers.

Run: ``.venv/bin/python bench/notify_hanging_receiver.py [--jobs 6] [--scales 60]``
(uses the embedded PostgreSQL unless OPS_DB_URL is set; a separate database, dropped after).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apiops_site.settings")
os.environ.setdefault("OPS_LOG_LEVEL", "WARNING")

from bench import jobs_throughput as shared  # noqa: E402 - after the path and settings

shared.BENCH_DB = "apiops_notify_bench"
KEY = "bench-notify-key-0123456789abcdef0"


class HangingReceiver:
    """Accepts TCP connections and never answers; counts them."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"


def ms(values: list[float]) -> str:
    p95 = shared.percentile(values, 0.95)
    return f"{statistics.median(values) * 1000:7.1f} / {p95 * 1000:7.1f} ms"


def run(args, env: dict[str, str], client, label: str) -> dict[str, list[float]]:
    from jobs.models import Job

    log: list[str] = []
    worker = shared.start_worker(env, log)
    try:
        posts, jobs, scales = [], [], []
        # The first job after a start waits for the workers to load the Kubernetes client
        # (seconds): one unmeasured job, then the measured ones.
        time.sleep(2)
        for i in range(-1, args.jobs):
            started = time.perf_counter()
            response = client.post(
                "/ops/jobs/rollout-restart",
                # Two deployments in turn: a restart stamps the time to the second.
                {"namespace": ("prod", "staging")[i % 2], "kind": "deployment", "name": "web"},
                format="json",
            )
            assert response.status_code == 202, response.content
            posted = time.perf_counter() - started
            job_id = response.json()["job_id"]
            while Job.objects.filter(job_id=job_id, status__in=("pending", "running")).exists():
                time.sleep(0.02)
            if i >= 0:
                posts.append(posted)
                jobs.append(time.perf_counter() - started)
            job = Job.objects.get(job_id=job_id)
            assert job.status == "success", f"{label}: job {i} ended {job.status}: {job.error}"
        for i in range(args.scales):
            started = time.perf_counter()
            response = client.post(
                "/ops/namespaces/staging/deployments/web/scale",
                {"replicas": i % 3 + 1},
                format="json",
            )
            scales.append(time.perf_counter() - started)
            assert response.status_code == 200, response.content
        return {"post": posts, "job": jobs, "scale": scales}
    finally:
        shared.stop_worker(worker)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=6)
    parser.add_argument("--scales", type=int, default=60)
    args = parser.parse_args()
    worker_db_url = shared.use_bench_database()
    from django.conf import settings
    from django.core.management import call_command
    from rest_framework.test import APIClient

    from kubesim import KubeSim
    from kubesim.pytest_plugin import DEMO_YAML
    from ops import k8s
    from ops.models import NotificationDelivery

    call_command("migrate", verbosity=0)
    sim = KubeSim(ready_delay=0.05, termination_delay=0.05, tick=0.05).start()
    receiver = HangingReceiver()
    try:
        sim.load_file(DEMO_YAML)
        settings.APIOPS = {
            **settings.APIOPS,
            "KUBECONFIG": sim.kubeconfig_path,
            "API_KEY": KEY,
            "AUTH_FAILURE_LIMIT": 1_000_000,
        }
        k8s.reset_client()
        client = APIClient(SERVER_NAME="127.0.0.1")
        client.credentials(HTTP_X_API_KEY=KEY)
        base = {
            **os.environ,
            "OPS_DB_URL": worker_db_url,
            "OPS_KUBECONFIG": sim.kubeconfig_path,
            "OPS_LOG_LEVEL": "WARNING",
            "OPS_JOB_POLL_INTERVAL": "0.5",
            "OPS_NOTIFY_TIMEOUT": "30",
        }
        base.pop("KUBECONFIG", None)
        targets = [
            {"name": f"hang-{i}", "kind": "webhook", "url": receiver.url, "events": ["*"]}
            for i in range(3)
        ]
        baseline = run(args, {**base, "OPS_NOTIFY_TARGETS": ""}, client, "baseline")
        # The job events are written by the worker; this process (the web side) would write
        # others (a cancel, a lockout): it knows the same targets.
        settings.APIOPS = {
            **settings.APIOPS,
            "NOTIFY_TARGETS": tuple(
                {**t, "secret": "", "events": tuple(t["events"]), "namespaces": ()} for t in targets
            ),
        }
        hanging = run(args, {**base, "OPS_NOTIFY_TARGETS": json.dumps(targets)}, client, "hanging")
        held = len(receiver.held)
        outstanding = NotificationDelivery.objects.exclude(status="delivered").count()
    finally:
        sim.stop()
        shared.drop_bench_database()

    print(f"{'':28}{'no targets':>22}   {'3 hanging receivers':>22}")
    rows = (
        ("POST /ops/jobs (median/p95)", "post"),
        ("job: POST to success", "job"),
        ("scale (median/p95)", "scale"),
    )
    for title, key in rows:
        print(f"{title:28}{ms(baseline[key]):>22}   {ms(hanging[key]):>22}")
    for label, run_ in (("no targets", baseline), ("hanging", hanging)):
        print(f"jobs, {label}: " + " ".join(f"{t:.2f}" for t in run_["job"]) + " s")
    print(
        f"receiver: {held} connections held open, {outstanding} deliveries not delivered "
        f"at the end ({(args.jobs + 1) * 2 * 3} written)"
    )


if __name__ == "__main__":
    main()
