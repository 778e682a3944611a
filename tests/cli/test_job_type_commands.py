"""The commands of the newer job types, built from their input serializers: each starts its
job as ``cli:<user>``, refuses what the API refuses (exit 2/4/5), and ``--wait`` follows it to
its end; progress lines off a terminal fit 80 columns; the listing commands speak JSON."""

from __future__ import annotations

import json

from jobs.models import Job, JobStatus
from tests.cli.conftest import CLI_ACTOR, DB, TRANSACTIONAL_DB, fails, run, worker


def progress_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("[")]


@TRANSACTIONAL_DB
def test_ops_rollout_restart_waits_until_every_pod_is_replaced(demo):
    before = {p["metadata"]["uid"] for p in demo.list("pods", "staging", "app=web")}

    with worker():
        out = run(
            "ops_rollout_restart", "staging", "deployment", "web", "--wait", "--interval", "0.05"
        )

    job = Job.objects.get(job_id=out.splitlines()[0])
    assert (job.type, job.status, job.actor) == ("rollout-restart", JobStatus.SUCCESS, CLI_ACTOR)
    assert out.splitlines()[-1].startswith(f"job {job.job_id} succeeded in ")
    after = {p["metadata"]["uid"] for p in demo.list("pods", "staging", "app=web")}
    assert after
    assert not after & before
    assert all(len(line) <= 80 for line in progress_lines(out)), progress_lines(out)


@TRANSACTIONAL_DB
def test_ops_pg_backup_then_a_restore_from_its_snapshot(demo):
    with worker():
        out = run("ops_pg_backup", "staging", "postgres", "--wait", "--interval", "0.05")
        backup = Job.objects.get(job_id=out.splitlines()[0])
        assert backup.status == JobStatus.SUCCESS
        snapshot = backup.result["snapshot"]
        assert demo.get("volumesnapshots", "staging", snapshot)["status"]["readyToUse"]
        out = run(
            "ops_pg_rebuild",
            "staging",
            "postgres",
            "2",
            "3",
            "--strategy",
            "in-place",
            "--from-snapshot",
            snapshot,
            "--wait",
            "--interval",
            "0.05",
        )

    restore = Job.objects.get(job_id=out.splitlines()[0])
    assert restore.status == JobStatus.SUCCESS
    assert restore.params["from_snapshot"] == snapshot
    claim = demo.get("persistentvolumeclaims", "staging", "data-postgres-2")
    assert claim["spec"]["dataSource"]["name"] == snapshot


@DB
def test_the_commands_refuse_what_the_api_refuses(demo):
    assert fails("ops_rollout_restart", "staging", "daemonset", "web").returncode == 2
    assert fails("ops_rollout_restart", "staging", "deployment", "nope").returncode == 4
    assert fails("ops_pg_backup", "staging", "postgres", "--ordinal", "two").returncode == 2
    error = fails("ops_pg_backup", "prod", "postgres", "--ordinal", "0")  # prod's primary
    assert (error.returncode, "[primary_guard]" in str(error)) == (5, True)
    assert not Job.objects.exists()
    assert list(demo.requests.mutations()) == []


@DB
def test_ops_jobs_and_ops_audit_speak_the_apis_json(demo):
    job_id = run("ops_rollout_restart", "staging", "deployment", "web").strip()

    jobs = json.loads(run("ops_jobs", "-o", "json"))
    rows = json.loads(run("ops_audit", "--output", "json"))

    [job] = jobs
    assert (job["job_id"], job["type"], job["status"]) == (job_id, "rollout-restart", "pending")
    assert [s["name"] for s in job["steps"]] == ["restart", "wait_rollout"]
    assert job["created_at"].endswith("Z")
    assert rows[0]["job_id"] == job_id
    assert rows[0]["action"] == "rollout-restart"
