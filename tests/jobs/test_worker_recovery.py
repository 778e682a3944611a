"""A cluster broken by SIGKILLs is replaced and its jobs resume: real django-q2 clusters on the
test database and the test's kubesim.

Killing every worker (or the sentinel and everything under it) while a job step is inside a
tick leaves django-q2's queues locked by the dead (django-q2 #23): the supervisor
(``python -m jobs.worker``) must replace the whole cluster, and the job must be ticked again
within 30 s with the default lease and pump interval (the time is printed). A bare
``manage.py qcluster`` stalls instead, and the worker's liveness command must say so; a stall
without a death (a stopped pusher) is caught by the supervisor's own liveness check; a cluster
that cannot start is given up; and a stop always ends every process of the cluster.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from io import StringIO
from pathlib import Path

import psutil
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from jobs import worker
from jobs.models import Job, JobStatus
from tests.jobs.test_worker import (
    BARE,
    BODY,
    EXPECTED_MUTATIONS,
    FAST,
    SUPERVISED,
    URL,
    Cluster,
    finished,
    mutations,
    running_cluster,
    tick_inside,
    wait_until,
)

pytestmark = pytest.mark.django_db(databases=["default", "audit"], transaction=True)

#: The acceptance bound: a job whose workers were all SIGKILLed is ticked again within this.
RECOVERY_BOUND = 30.0
#: FAST, but with the default lease and pump interval: they bound the recovery.
DEFAULT_TIMING = {
    key: value
    for key, value in FAST.items()
    if key not in ("OPS_JOB_LEASE_SECONDS", "OPS_JOB_PUMP_INTERVAL", "OPS_Q_POLL")
}
#: A step that waits as long as the test wants: delete_pvc waits for a claim held Terminating.
STEP = "delete_pvc"
HELD_CLAIM = "wal-postgres-0"


def alive(proc: psutil.Process) -> bool:
    """Still running: a killed process left as a zombie (nobody has reaped it yet, e.g. no
    init in a container) is dead."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def worker_processes(cluster: Cluster) -> list[psutil.Process]:
    """The cluster's worker processes running now (django-q2 logs each one's pid)."""
    pids = {int(pid) for pid in re.findall(r"ready for work at (\d+)", cluster.output())}
    below = psutil.Process(cluster.proc.pid).children(recursive=True)
    return [proc for proc in below if proc.pid in pids]


def logged_pid(cluster: Cluster, what: str) -> psutil.Process | None:
    """The last process django-q2 logged as ``what`` ("pushing tasks", "monitoring"), if it
    still runs (on a slow start the supervisor may already have replaced that cluster)."""
    found = re.findall(rf"{what} at (\d+)", cluster.output())
    try:
        proc = psutil.Process(int(found[-1])) if found else None
    except psutil.NoSuchProcess:
        return None
    return proc if proc and alive(proc) else None


def sentinel_and_below(cluster: Cluster) -> list[psutil.Process]:
    """The sentinel (the process whose children are the workers) and every process under it."""
    sentinel = worker_processes(cluster)[0].parent()
    return [sentinel, *sentinel.children(recursive=True)]


def waiting_for_a_task(proc: psutil.Process) -> bool:
    """Blocked reading the task queue's pipe, which a worker does holding the reader lock."""
    return "pipe" in Path(f"/proc/{proc.pid}/wchan").read_text()


def pump_is_recent(max_age: float) -> str | None:
    """The liveness command's verdict, as the worker's probe runs it: None when it passes."""
    try:
        call_command("jobs_health", "--max-age", str(max_age), stdout=StringIO())
    except CommandError as e:
        return str(e)
    return None


#: The supervisor's line when its liveness check restarts the cluster.
LIVENESS_RESTART = re.compile(r"liveness: .*the jobs pump last ran")


KILLS: dict[str, Callable[[Cluster], list[psutil.Process]]] = {
    "every worker": worker_processes,
    "the sentinel and everything under it": sentinel_and_below,
}


@pytest.mark.parametrize("victims", list(KILLS))
def test_killing_every_worker_mid_step_replaces_the_cluster_and_the_job_resumes_in_30_s(
    api, pg_cluster, tmp_path, victims, record_property
):
    pg_cluster.stuck_finalizer("prod", HELD_CLAIM)
    # Each read of the claim takes 3 s, so a tick stays inside the step while it is killed.
    slow = pg_cluster.faults.add(
        delay=3.0, method="GET", path=rf"/persistentvolumeclaims/{HELD_CLAIM}$"
    )
    with running_cluster(
        pg_cluster.kubeconfig_path, tmp_path / "worker.log", env=DEFAULT_TIMING
    ) as cluster:
        job_id = api.post(URL, BODY, format="json").json()["job_id"]
        owner = wait_until(lambda: tick_inside(job_id, STEP), 60, f"a tick in {STEP}", cluster)
        before = psutil.Process(cluster.proc.pid).children(recursive=True)
        targets = KILLS[victims](cluster)
        assert int(owner.split(":")[1]) in {proc.pid for proc in targets}

        killed_at = time.monotonic()
        for proc in targets:
            proc.send_signal(signal.SIGKILL)
        new_owner = wait_until(
            lambda: (tick := tick_inside(job_id, STEP)) != owner and tick,
            RECOVERY_BOUND,
            f"a new tick in {STEP} within {RECOVERY_BOUND:g} s of the SIGKILL",
            cluster,
        )
        recovery = time.monotonic() - killed_at
        record_property("recovery_seconds", round(recovery, 1))
        print(f"\nSIGKILL of {victims} in {STEP}: ticked again after {recovery:.1f} s")

        assert Job.objects.get(job_id=job_id).lease_owner == new_owner
        # Replaced whole, not patched up by django-q2's reincarnation: nothing of the broken
        # cluster is left.
        assert [proc for proc in before if alive(proc)] == []
        assert "starting a new cluster" in cluster.output()

        pg_cluster.stuck_finalizer("prod", HELD_CLAIM, stuck=False)
        pg_cluster.faults.remove(slow)
        job = wait_until(lambda: finished(job_id), 60, "job end", cluster)

    steps = {step.name: step for step in job.steps.all()}
    assert job.status == JobStatus.SUCCESS, {n: s.detail for n, s in steps.items()}
    assert steps[STEP].interruptions == 1
    assert mutations(pg_cluster) == EXPECTED_MUTATIONS  # each once, in order


def test_a_bare_cluster_stalls_after_its_idle_workers_die_and_the_liveness_command_says_so(
    kubesim, tmp_path
):
    """What the probe is for: django-q2 replaces the workers, every process runs, and yet no
    task runs again. Only the pump's age shows it."""
    with running_cluster(
        kubesim.kubeconfig_path, tmp_path / "bare.log", argv=BARE, stop_timeout=1
    ) as cluster:
        wait_until(lambda: pump_is_recent(3) is None, 30, "the probe passing", cluster)
        killed = worker_processes(cluster)
        wait_until(
            lambda: any(waiting_for_a_task(proc) for proc in killed), 30, "an idle worker", cluster
        )
        for proc in killed:
            proc.send_signal(signal.SIGKILL)

        failure = wait_until(lambda: pump_is_recent(3), 30, "the probe failing", cluster)

        assert "the jobs pump last ran" in failure
        replacements = worker_processes(cluster)
        assert len(replacements) == len(killed)  # django-q2 saw nothing left to mend
        assert not {proc.pid for proc in replacements} & {proc.pid for proc in killed}
        assert pump_is_recent(3) is not None  # and it stays stalled
        os.killpg(cluster.proc.pid, signal.SIGKILL)  # a SIGTERM would hang


def test_the_supervisor_restarts_a_cluster_whose_pump_stopped_without_any_death(kubesim, tmp_path):
    argv = (*SUPERVISED, "--liveness-max-age", "3")
    with running_cluster(kubesim.kubeconfig_path, tmp_path / "w.log", argv=argv) as cluster:
        wait_until(lambda: pump_is_recent(3) is None, 30, "the probe passing", cluster)
        pusher = wait_until(lambda: logged_pid(cluster, "pushing tasks"), 30, "pusher", cluster)
        restarts = len(LIVENESS_RESTART.findall(cluster.output()))
        pusher.send_signal(signal.SIGSTOP)  # hung, not dead: django-q2 notices nothing

        wait_until(
            lambda: len(LIVENESS_RESTART.findall(cluster.output())) > restarts,
            60,
            "the supervisor's liveness check failing",
            cluster,
        )
        wait_until(lambda: pump_is_recent(3) is None, 30, "the pump running again", cluster)

        assert not alive(pusher)
        pushers = re.findall(r"pushing tasks at (\d+)", cluster.output())
        assert int(pushers[-1]) != pusher.pid


def test_a_cluster_that_cannot_start_is_given_up_after_repeated_failures():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "apiops_site.settings", "OPS_Q_WORKERS": "0"}

    result = subprocess.run(
        [sys.executable, *SUPERVISED],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 1
    assert result.stderr.count("exited with status 1") == worker.MAX_FAILED_STARTS
    assert result.stderr.count("starting a new cluster") == worker.MAX_FAILED_STARTS - 1
    assert f"giving up: {worker.MAX_FAILED_STARTS} clusters in a row failed" in result.stderr


def test_a_stop_ends_a_hung_cluster_within_the_grace_and_leaves_no_process(kubesim, tmp_path):
    with running_cluster(kubesim.kubeconfig_path, tmp_path / "w.log") as cluster:
        everything = psutil.Process(cluster.proc.pid).children(recursive=True)
        sentinel = sentinel_and_below(cluster)[0]
        sentinel.send_signal(signal.SIGSTOP)  # a graceful stop can no longer finish
        started = time.monotonic()

        os.killpg(cluster.proc.pid, signal.SIGTERM)

        assert cluster.proc.wait(timeout=worker.DEFAULT_STOP_GRACE + 10) == 1
        took = time.monotonic() - started
        print(f"\nstop of a hung cluster took {took:.1f} s")
        assert psutil.wait_procs(everything, timeout=5)[1] == []
        assert "the cluster did not stop within" in cluster.output()
