"""How long a job waits after its worker cluster is SIGKILLed in the middle of a step.

A real worker (``python -m jobs.worker``, as ``make run`` and the k8s Deployment run it; or a
bare ``manage.py qcluster`` with ``--bare``) with the default lease and pump interval runs
pg-rebuild jobs against kubesim. Each round starts a job whose ``delete_pvc`` step waits on a
claim held Terminating (each read of it delayed, so a tick stays inside the step), SIGKILLs
every worker process (``--kill workers``) or the sentinel and everything under it
(``--kill all``) while a tick is inside, and measures the time from the kill until a new
tick enters the step. The claim is then released and the job must succeed. Prints each round
and the median and maximum; a round with no new tick within ``--give-up`` seconds counts as a
stall (a bare cluster stalls: django-q2 #23).

Target (issue 9): ticked again within 30 s.

Run: ``.venv/bin/python bench/worker_recovery.py [--rounds 3] [--kill workers|all] [--bare]
[--give-up 60]`` (uses the embedded PostgreSQL unless OPS_DB_URL is set; a separate
database, dropped afterwards).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apiops_site.settings")
os.environ.setdefault("OPS_LOG_LEVEL", "WARNING")

from bench import jobs_throughput as shared  # noqa: E402 - after the path and settings

# Its own database, so that it can run beside bench/jobs_throughput.py.
shared.BENCH_DB = "apiops_recovery_bench"
KEY = "bench-recovery-key-0123456789abcdef"
STEP = "delete_pvc"


def start_cluster(argv: list[str], env: dict[str, str], log: list[str]) -> subprocess.Popen:
    proc = shared.spawn(argv, env, log)
    wait(lambda: any("running." in line for line in log), 60, "the cluster start", log)
    return proc


def wait(predicate, timeout: float, what: str, log: list[str]):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} not reached in {timeout:g} s:\n" + "".join(log[-30:]))
        time.sleep(0.02)
    return value


def tree(pid: int) -> dict[int, list[int]]:
    from jobs import proctree

    children: dict[int, list[int]] = {}
    for proc in proctree.descendants(pid):
        children.setdefault(proc.ppid, []).append(proc.pid)
    return children


def victims(root: int, log: list[str], kill: str) -> list[int]:
    """The workers running now, or the sentinel (the workers' parent) and its children."""
    children = tree(root)
    below = {pid for pids in children.values() for pid in pids}
    logged = {int(pid) for pid in re.findall(r"ready for work at (\d+)", "".join(log))}
    workers = sorted(logged & below)
    if kill == "workers":
        return workers
    sentinel = next(parent for parent, pids in children.items() if workers[0] in pids)
    return [sentinel, *children[sentinel]]


def one_round(client, sim, index: int, proc, log, args) -> float | None:
    from jobs.models import Job, JobStep

    name = f"pg-{index:02d}"
    claim = f"data-{name}-1"
    sim.stuck_finalizer("prod", claim)
    slow = sim.faults.add(delay=3.0, method="GET", path=rf"/persistentvolumeclaims/{claim}$")
    body = {"namespace": "prod", "statefulset": name, "ordinal": 1, "target_replicas": 2}
    job_id = client.post("/ops/jobs/pg-rebuild", body, format="json").json()["job_id"]

    def inside():
        row = JobStep.objects.filter(job_id=job_id, name=STEP).values("active_tick").first()
        return row and row["active_tick"]

    owner = wait(inside, 60, f"a tick in {STEP}", log)
    targets = victims(proc.pid, log, args.kill)
    killed_at = time.monotonic()
    for pid in targets:
        os.kill(pid, signal.SIGKILL)
    deadline = killed_at + args.give_up
    recovered = None
    while time.monotonic() < deadline:
        tick = inside()
        if tick and tick != owner:
            recovered = time.monotonic() - killed_at
            break
        time.sleep(0.05)
    sim.stuck_finalizer("prod", claim, stuck=False)
    sim.faults.remove(slow)
    if recovered is not None:
        wait(lambda: not Job.objects.get(job_id=job_id).is_active, 120, "the job's end", log)
        status = Job.objects.get(job_id=job_id).status
        if status != "success":
            raise SystemExit(f"round {index}: job {job_id} ended {status}")
    return recovered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kill", choices=("workers", "all"), default="workers")
    parser.add_argument("--bare", action="store_true", help="manage.py qcluster, unsupervised")
    parser.add_argument("--give-up", type=float, default=60.0, metavar="SECONDS")
    args = parser.parse_args()

    worker_db_url = shared.use_bench_database()
    from django.conf import settings
    from django.core.management import call_command
    from rest_framework.test import APIClient

    from kubesim import KubeSim
    from ops import k8s

    call_command("migrate", verbosity=0)
    sim = KubeSim(ready_delay=0.2, termination_delay=0.2, tick=0.1).start()
    proc = None
    log: list[str] = []
    try:
        sim.apply(shared.statefulsets_yaml(args.rounds, 2))  # pg-00, pg-01, ...: one a round
        sim.wait_for(
            lambda: all(
                (sim.get("statefulsets", "prod", f"pg-{i:02d}") or {})
                .get("status", {})
                .get("readyReplicas")
                == 2
                for i in range(args.rounds)
            ),
            timeout=120,
        )
        settings.APIOPS = {**settings.APIOPS, "KUBECONFIG": sim.kubeconfig_path, "API_KEY": KEY}
        k8s.reset_client()
        env = {
            **os.environ,
            "OPS_DB_URL": worker_db_url,
            "OPS_KUBECONFIG": sim.kubeconfig_path,
            "OPS_Q_WORKERS": str(args.workers),
            "OPS_LOG_LEVEL": "INFO",  # the workers' pids are read from django-q2's lines
        }
        env.pop("KUBECONFIG", None)
        argv = ["manage.py", "qcluster"] if args.bare else ["-m", "jobs.worker"]
        proc = start_cluster(argv, env, log)
        client = APIClient(SERVER_NAME="127.0.0.1")
        client.credentials(HTTP_X_API_KEY=KEY)
        print(
            f"SIGKILL of {'every worker' if args.kill == 'workers' else 'the sentinel and all'}"
            f" mid-step, {args.workers} workers, "
            f"{'bare manage.py qcluster' if args.bare else 'python -m jobs.worker'}, lease "
            f"{settings.APIOPS['JOB_LEASE_SECONDS']:g} s, pump every "
            f"{settings.APIOPS['JOB_PUMP_INTERVAL']:g} s"
        )
        figures = []
        for index in range(args.rounds):
            recovered = one_round(client, sim, index, proc, log, args)
            if recovered is None:
                print(f"  round {index + 1}: no tick within {args.give_up:g} s (stalled)")
                break
            figures.append(recovered)
            print(f"  round {index + 1}: ticked again after {recovered:.1f} s, job succeeded")
        if figures:
            print(
                f"  recovery: median {statistics.median(figures):.1f} s, "
                f"max {max(figures):.1f} s over {len(figures)} round(s)"
            )
    finally:
        if proc is not None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:  # a stalled bare cluster never stops by itself
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        sim.stop()
        shared.drop_bench_database()


if __name__ == "__main__":
    main()
