"""ops_pg_rebuild (with and without --wait), ops_job and ops_jobs: the rebuild starts through
the API's service (same rules, one audit row as cli:<OS user>), --wait follows the steps the
worker runs and exits 0 on success and non-zero on failure, and the job tables show them."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django_q.models import OrmQ

from jobs.models import Job, JobStatus
from ops.models import OpsLog
from tests.cli.conftest import CLI_ACTOR, DB, TRANSACTIONAL_DB, fails, run, worker

JOB_ID = re.compile(r"^\S+_pg-rebuild_[0-9a-f]{8}$")
STEPS = [
    "scale_sts_to_zero",
    "wait_pods_down",
    "delete_pvc",
    "scale_sts_to_target",
    "wait_pods_ready",
]


def audit() -> list[OpsLog]:
    return list(OpsLog.objects.using("audit").order_by("id"))


class FakeTerminal(StringIO):
    """A standard output that says it is a terminal, so the live display redraws in place."""

    def isatty(self) -> bool:
        return True


@DB
def test_ops_pg_rebuild_prints_the_job_id_and_audits_the_start(demo):
    out = run("ops_pg_rebuild", "staging", "postgres", "1", "3", "--strategy", "in-place")

    job_id = out.strip()
    assert JOB_ID.match(job_id), out
    job = Job.objects.get(job_id=job_id)
    assert job.status == JobStatus.PENDING
    assert (job.actor, job.source_ip) == (CLI_ACTOR, "local")
    assert job.params == {
        "namespace": "staging",
        "statefulset": "postgres",
        "ordinal": 1,
        "target_replicas": 3,
        "strategy": "in-place",
        "allow_outage": False,
        "allow_scale_down": False,
    }
    assert [s.name for s in job.steps.order_by("step_order")] == [
        "check_target",
        "delete_pvc",
        "delete_pod",
        "wait_pvc_gone",
        "wait_pod_ready",
    ]
    (row,) = audit()
    assert (row.action, row.status, row.job_id, row.actor, row.source_ip) == (
        "pg-rebuild",
        "success",
        job_id,
        CLI_ACTOR,
        "local",
    )


@DB
@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["staging", "postgres", "-1", "3"], 2, "ordinal: Must be at least 0."),
        (["staging", "postgres", "3", "3"], 2, "target_replicas: Must be greater than ordinal"),
        (["staging", "postgres", "one", "3"], 2, "ordinal: Must be an integer"),
        (["kube-system", "postgres", "0", "1"], 3, "not in the allowed namespaces"),
        (["staging", "nope", "0", "1"], 4, "[not_found]"),
    ],
)
def test_ops_pg_rebuild_refusals_are_clear_audited_and_start_nothing(demo, args, code, message):
    error = fails("ops_pg_rebuild", *args)

    assert error.returncode == code
    assert message in str(error)
    assert not Job.objects.exists()
    (row,) = audit()
    assert row.status == ("denied" if code == 3 else "error")
    assert row.actor == CLI_ACTOR


@DB
def test_a_second_rebuild_of_a_busy_statefulset_is_a_conflict(demo):
    run("ops_pg_rebuild", "staging", "postgres", "1", "3", "--allow-outage")

    error = fails("ops_pg_rebuild", "staging", "postgres", "2", "3", "--allow-outage")

    assert error.returncode == 5
    assert "already being worked on" in str(error)


@TRANSACTIONAL_DB
def test_ops_pg_rebuild_without_an_audit_log_says_so_and_starts_nothing(demo, dead_audit_db):
    error = fails("ops_pg_rebuild", "staging", "postgres", "1", "3", "--allow-outage")

    assert error.returncode == 1
    assert "the operation was not performed" in str(error)
    # True to its word: no job, no queued tick, nothing sent to the cluster.
    assert not Job.objects.exists()
    assert not OrmQ.objects.exists()
    assert list(demo.requests.mutations()) == []


@TRANSACTIONAL_DB
def test_wait_follows_the_steps_until_success_and_returns_normally(demo):
    before = demo.get("persistentvolumeclaims", "staging", "data-postgres-1")["metadata"]["uid"]

    with worker():
        out = run(
            "ops_pg_rebuild",
            "staging",
            "postgres",
            "1",
            "3",
            "--allow-outage",
            "--wait",
            "--interval",
            "0.05",
        )

    lines = out.splitlines()
    job_id = lines[0]
    assert JOB_ID.match(job_id)
    for order, step in enumerate(STEPS, start=1):
        assert any(
            line.startswith(f"[{order}/5] {step}") and "success" in line for line in lines
        ), out
    assert lines[-1].startswith(f"job {job_id} succeeded in ")
    assert Job.objects.get(job_id=job_id).status == JobStatus.SUCCESS
    after = demo.get("persistentvolumeclaims", "staging", "data-postgres-1")["metadata"]["uid"]
    assert after != before


@TRANSACTIONAL_DB
def test_wait_exits_non_zero_naming_the_failed_step(demo, fast):
    # Room for the controller to have created postgres-1 before the timeout names it, also on
    # a machine busy with parallel test workers.
    fast(JOB_WAIT_TIMEOUT=4.0, JOB_POLL_INTERVAL=0.2)
    demo.pod_never_ready("staging", "postgres-1")

    with worker():
        error = fails(
            "ops_pg_rebuild",
            "staging",
            "postgres",
            "1",
            "3",
            "--allow-outage",
            "--wait",
            "--interval",
            "0.05",
        )

    assert error.returncode == 1
    assert re.search(r"job \S+ failed after .* at step wait_pods_ready: timed out", str(error))
    assert "not ready: postgres-1" in str(error)


@TRANSACTIONAL_DB
def test_wait_redraws_the_steps_in_place_on_a_terminal(demo):
    terminal = FakeTerminal()

    with worker():
        run(
            "ops_pg_rebuild",
            "staging",
            "postgres",
            "1",
            "3",
            "--allow-outage",
            "--wait",
            "--interval",
            "0.05",
            stdout=terminal,
        )

    text = terminal.getvalue()
    assert "\x1b[" in text  # cursor moved up to redraw
    final = text.rsplit("\x1b[J", 1)[-1]
    assert ": success, 5/5 steps" in final
    assert all(step in final for step in STEPS)


@DB
def test_wait_gives_up_after_its_timeout_when_no_worker_runs(demo):
    error = fails(
        "ops_pg_rebuild",
        "staging",
        "postgres",
        "1",
        "3",
        "--strategy",
        "in-place",
        "--wait",
        "--interval",
        "0.05",
        "--timeout",
        "0.3",
    )

    assert error.returncode == 7  # its own code: not a failed job (1)
    assert "still pending after 0.3 s; it goes on: manage.py ops_job" in str(error)
    assert Job.objects.get().status == JobStatus.PENDING


@TRANSACTIONAL_DB
def test_ops_job_shows_the_status_the_steps_and_the_audit_rows(demo):
    with worker():
        job_id = run(
            "ops_pg_rebuild",
            "staging",
            "postgres",
            "1",
            "3",
            "--allow-outage",
            "--wait",
            "--interval",
            "0.05",
        ).splitlines()[0]

    out = run("ops_job", job_id)

    assert f"job       {job_id}" in out
    assert "status    success" in out
    assert "target    StatefulSet staging/postgres" in out
    step_lines = [line for line in out.splitlines() if re.match(r"^\d\s", line)]
    assert [line.split()[1] for line in step_lines] == STEPS
    assert all(line.split()[2] == "success" for line in step_lines)
    assert "audit:" in out
    assert "data-postgres-1" in out  # the claim delete its third step wrote
    job = Job.objects.get(job_id=job_id)
    # The evidence: the claim uids before and after, the new pod, how long it was down.
    assert f"result    old_pod_uid={job.result['old_pod_uid']}" in out
    assert f"result    new_pod_uid={job.result['new_pod_uid']}" in out
    old_claim = job.result["old_claim_uids"]["data-postgres-1"]
    assert f"result    old_claim_uids=data-postgres-1:{old_claim}" in out
    assert "result    downtime_seconds=" in out


@DB
def test_ops_job_of_an_unknown_id_exits_4(demo):
    error = fails("ops_job", "2025-01-15T10:30:00+00:00_pg-rebuild_abc12345")

    assert error.returncode == 4
    assert "no job" in str(error)


@DB
def test_ops_jobs_lists_and_filters_by_status_type_namespace_and_limit(demo):
    first = run("ops_pg_rebuild", "staging", "postgres", "1", "3", "--allow-outage").strip()
    second = run("ops_pg_rebuild", "prod", "postgres", "1", "3", "--strategy", "in-place").strip()
    Job.objects.filter(job_id=first).update(status=JobStatus.FAILED)

    everything = run("ops_jobs")
    failed = run("ops_jobs", "--status", "failed")
    active = run("ops_jobs", "--status", "pending", "--status", "running")
    in_prod = run("ops_jobs", "--namespace", "prod")
    other_type = run("ops_jobs", "--type", "backup")
    limited = run("ops_jobs", "--limit", "1")

    assert first in everything
    assert second in everything
    assert "0/5" in everything
    assert failed.count("_pg-rebuild_") == 1
    assert first in failed
    assert second in active
    assert first not in active
    assert second in in_prod
    assert first not in in_prod
    assert other_type.strip() == "no jobs match"
    assert second in limited
    assert first not in limited
    assert "the newest 1 jobs" in limited


@DB
def test_ops_jobs_refuses_an_unknown_status(demo):
    error = fails("ops_jobs", "--status", "stuck")

    assert "invalid choice: 'stuck'" in str(error)
