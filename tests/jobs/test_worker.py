"""End to end with a real django-q2 cluster (``python -m jobs.worker``, as ``make run`` starts
it) on the test database and the test's kubesim: a rebuild runs to success with each mutation
reaching the cluster once; a worker SIGKILLed while a wait step reads, or right after a step's
mutation was carried out by the cluster but before anything recorded it, is replaced, its job
taken over once the lease lapses, and finished without any mutation sent twice; and a SIGTERM
to the whole process group stops the cluster cleanly."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection, transaction

from jobs.models import Job, JobStatus, JobStep
from ops.models import OpsLog

pytestmark = pytest.mark.django_db(databases=["default", "audit"], transaction=True)

URL = "/ops/jobs/pg-rebuild"
BODY = {"namespace": "prod", "statefulset": "postgres", "ordinal": 0, "target_replicas": 3}
STS_SCALE = r"/namespaces/prod/statefulsets/postgres/scale$"
EXPECTED_MUTATIONS = [
    ("PATCH", "statefulsets", "postgres"),
    ("DELETE", "persistentvolumeclaims", "data-postgres-0"),
    ("DELETE", "persistentvolumeclaims", "wal-postgres-0"),
    ("PATCH", "statefulsets", "postgres"),
]
#: Slow reads that keep a tick inside each wait step long enough to kill its worker there.
WAIT_KILL_POINTS = {
    "wait_pods_down": {"method": "GET", "path": r"/namespaces/prod/pods$"},
    "wait_pods_ready": {"method": "GET", "path": r"/statefulsets/postgres$"},
}
#: Each mutating step's mutation: the request kubesim delays (its ``times``-th match is the
#: step's own) and the audit row of the attempt, ``(action, resource name)``.
MUTATION_KILL_POINTS = {
    "scale_sts_to_zero": (
        {"method": "PATCH", "path": STS_SCALE, "times": 1},
        ("PATCH", "statefulsets", "postgres"),
        ("scale", "postgres"),
    ),
    "delete_pvc": (
        {"method": "DELETE", "path": r"/persistentvolumeclaims/data-postgres-0$", "times": 1},
        ("DELETE", "persistentvolumeclaims", "data-postgres-0"),
        ("delete", "data-postgres-0"),
    ),
    "scale_sts_to_target": (
        {"method": "PATCH", "path": STS_SCALE, "times": 2},
        ("PATCH", "statefulsets", "postgres"),
        ("scale", "postgres"),
    ),
}


def child_db_url() -> str:
    """A URL for the test database exactly as this process is connected to it."""
    connection.ensure_connection()
    info = connection.connection.info  # psycopg2's view of the live connection
    auth = quote(info.user or "")
    if info.password:
        auth += ":" + quote(info.password)
    if info.host.startswith("/"):
        return f"postgresql://{auth}@/{info.dbname}?host={quote(info.host)}&port={info.port}"
    return f"postgresql://{auth}@{info.host}:{info.port}/{info.dbname}"


def descendants(pid: int) -> set[int]:
    """Process ids below ``pid`` (from /proc), so we only ever kill our own workers."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


class Cluster:
    """A running qcluster and its log."""

    def __init__(self, proc: subprocess.Popen, log: Path) -> None:
        self.proc = proc
        self.log = log

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            assert self.proc.poll() is None, f"qcluster exited:\n{self.output()[-3000:]}"
            assert time.monotonic() < deadline, f"no {text!r} from qcluster:\n{self.output()}"
            time.sleep(0.05)


#: The worker's environment for these tests: short leases, polls and pump interval.
FAST = {
    "OPS_JOB_LEASE_SECONDS": "2",
    "OPS_JOB_POLL_INTERVAL": "0.5",
    "OPS_JOB_PUMP_INTERVAL": "1",
    "OPS_JOB_WAIT_TIMEOUT": "60",
    "OPS_Q_WORKERS": "2",
    "OPS_Q_POLL": "0.05",
    "OPS_K8S_BACKOFF": "0.01",
    "OPS_K8S_RETRY_MAX_WAIT": "0.1",
}
SUPERVISED = ("-m", "jobs.worker")  # as make run and the k8s worker start it
BARE = ("manage.py", "qcluster")  # django-q2 alone


@contextlib.contextmanager
def running_cluster(
    kubeconfig: str,
    log: Path,
    *,
    argv: tuple[str, ...] = SUPERVISED,
    env: dict[str, str] | None = None,
    stop_timeout: float = 20.0,
) -> Iterator[Cluster]:
    """A qcluster on the test database, stopped as a supervisor stops a service: SIGTERM to its
    process group, which must end it within ``stop_timeout`` (whatever is left is killed)."""
    full_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "apiops_site.settings",
        "OPS_DB_URL": child_db_url(),
        "OPS_KUBECONFIG": kubeconfig,
        "OPS_ALLOWED_NAMESPACES": "prod,staging",
        **(FAST if env is None else env),
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, *argv],
            cwd=settings.BASE_DIR,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    cluster = Cluster(proc, log)
    everything: set[int] = set()
    try:
        cluster.wait_for_output("running.")
        everything = descendants(proc.pid)
        yield cluster
    finally:
        everything |= descendants(proc.pid) | {proc.pid}
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # as a supervisor stops a service
        try:
            proc.wait(timeout=stop_timeout)
        finally:
            for pid in everything | descendants(proc.pid):  # whatever is left
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def qcluster(pg_cluster, tmp_path) -> Iterator[Cluster]:
    """``python -m jobs.worker`` with two workers, short leases and a fast pump."""
    with running_cluster(pg_cluster.kubeconfig_path, tmp_path / "qcluster.log") as cluster:
        yield cluster


def wait_until(predicate, timeout: float, what: str, cluster: Cluster):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert cluster.proc.poll() is None, f"qcluster exited:\n{cluster.output()[-3000:]}"
        assert time.monotonic() < deadline, f"{what} not reached:\n{cluster.output()[-4000:]}"
        time.sleep(0.02)


def finished(job_id: str) -> Job | None:
    job = Job.objects.get(job_id=job_id)
    return None if job.is_active else job


def mutations(sim) -> list[tuple[str, str, str]]:
    return [(r.method, r.resource, r.name) for r in sim.requests.mutations()]


def pvc_uid(sim, name: str) -> str | None:
    pvc = sim.get("persistentvolumeclaims", "prod", name)
    return pvc["metadata"]["uid"] if pvc else None


def test_terminating_the_worker_process_group_stops_the_cluster_cleanly(qcluster):
    qcluster.wait_for_output("Processed 'jobs.tasks.pump'")  # the workers are past their start
    cluster_pids = descendants(qcluster.proc.pid)
    assert len(cluster_pids) >= 4  # main, sentinel, workers, pusher, monitor
    os.killpg(qcluster.proc.pid, signal.SIGTERM)
    assert qcluster.proc.wait(timeout=20) == 0
    assert "has stopped." in qcluster.output()
    assert not any(Path(f"/proc/{pid}").exists() for pid in cluster_pids)


def test_a_real_worker_runs_a_rebuild_to_success(api, pg_cluster, qcluster):
    old_uid = pvc_uid(pg_cluster, "data-postgres-0")
    response = api.post(URL, BODY, format="json")
    assert response.status_code == 202
    job_id = response.json()["job_id"]
    job = wait_until(lambda: finished(job_id), 60, "job end", qcluster)
    assert job.status == JobStatus.SUCCESS, list(job.steps.values_list("name", "detail"))
    assert list(job.steps.values_list("status", flat=True)) == ["success"] * 5
    assert mutations(pg_cluster) == EXPECTED_MUTATIONS
    assert pvc_uid(pg_cluster, "data-postgres-0") not in (None, old_uid)
    assert pg_cluster.get("statefulsets", "prod", "postgres")["status"]["readyReplicas"] == 3
    rows = OpsLog.objects.using("audit").filter(job_id=job_id, origin="job")
    assert sorted(rows.values_list("action", "status")) == [
        ("delete", "success"),
        ("delete", "success"),
        ("scale", "success"),
        ("scale", "success"),
    ]


def tick_inside(job_id: str, step: str) -> str | None:
    """The lease owner of the tick inside ``step`` right now, if any."""
    row = JobStep.objects.filter(job_id=job_id, name=step).values("active_tick").first()
    return row and row["active_tick"]


def kill_worker_of(owner: str, cluster: Cluster) -> None:
    """SIGKILL the worker process named in a lease owner (``host:pid:token``)."""
    pid = int(owner.split(":")[1])
    assert pid in descendants(cluster.proc.pid), f"{owner} is not one of our workers"
    os.kill(pid, signal.SIGKILL)


def waiting_on_an_audit_row_lock() -> bool:
    """Some backend is blocked updating an ops_log row (the outcome of an attempt; with
    prepared statements, ops.db.execute_prepared, the server shows it as an EXECUTE)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND (query LIKE %s OR query LIKE %s)",
            ['UPDATE "ops_log"%', "EXECUTE apiops\\_%"],
        )
        return cursor.fetchone()[0] > 0


def assert_finished_without_repeating(job_id: str, step: str, sim, cluster: Cluster) -> None:
    job = wait_until(lambda: finished(job_id), 90, "job end after the kill", cluster)
    steps = {s.name: s for s in job.steps.all()}
    assert job.status == JobStatus.SUCCESS, {n: s.detail for n, s in steps.items()}
    assert steps[step].interruptions == 1
    assert mutations(sim) == EXPECTED_MUTATIONS  # each once, in order
    assert sim.get("statefulsets", "prod", "postgres")["status"]["readyReplicas"] == 3


@pytest.mark.parametrize("step", list(WAIT_KILL_POINTS))
def test_a_worker_killed_while_a_wait_step_reads_is_replaced_and_the_job_goes_on(
    api, pg_cluster, qcluster, step
):
    slow = pg_cluster.faults.add(delay=1.0, **WAIT_KILL_POINTS[step])
    job_id = api.post(URL, BODY, format="json").json()["job_id"]

    owner = wait_until(lambda: tick_inside(job_id, step), 60, f"a tick inside {step}", qcluster)
    kill_worker_of(owner, qcluster)
    # Killed inside its tick (the reads of the step take a second each), not between two.
    assert Job.objects.get(job_id=job_id).lease_owner == owner
    pg_cluster.faults.remove(slow)

    assert_finished_without_repeating(job_id, step, pg_cluster, qcluster)


@pytest.mark.parametrize("step", list(MUTATION_KILL_POINTS))
def test_a_worker_killed_after_its_mutation_was_applied_does_not_send_it_again(
    api, pg_cluster, qcluster, step
):
    """The worst moment to die: the cluster has carried out the step's mutation, but neither
    the audit row's outcome nor the step's progress has been recorded yet. The next tick must
    find the change in the cluster, not send it a second time."""
    fault, mutation, (action, name) = MUTATION_KILL_POINTS[step]
    delayed = pg_cluster.faults.add(delay=1.5, **fault)
    job_id = api.post(URL, BODY, format="json").json()["job_id"]
    # The step's own mutation has reached kubesim, which holds it for a moment.
    wait_until(lambda: delayed.fired == fault["times"], 60, f"the {step} request", qcluster)
    attempts = OpsLog.objects.using("audit").filter(
        job_id=job_id, origin="job", action=action, resource_name=name, status="pending"
    )
    with transaction.atomic(using="audit"):
        # Hold the attempt's audit row, so its outcome cannot be recorded: the worker will
        # block right after the mutation is applied, before the step moves on.
        [_held] = wait_until(
            lambda: list(attempts.select_for_update()), 10, "the pending audit row", qcluster
        )

        def sent() -> int:
            return mutations(pg_cluster).count(mutation)

        assert sent() == fault["times"] - 1  # still in flight when the row was held
        wait_until(lambda: sent() == fault["times"], 30, "the mutation applied", qcluster)
        wait_until(waiting_on_an_audit_row_lock, 30, "the worker blocked on the row", qcluster)
        owner = tick_inside(job_id, step)
        assert owner, f"no tick inside {step} any more"
        kill_worker_of(owner, qcluster)
        applied_before_the_kill = mutations(pg_cluster)
    assert applied_before_the_kill.count(mutation) == fault["times"]

    assert_finished_without_repeating(job_id, step, pg_cluster, qcluster)
