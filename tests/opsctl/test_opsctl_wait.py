"""Jobs through opsctl with a real worker: ``--wait`` and ``job follow`` print the job id first,
then one plain line (<= 80 columns) per step change on a pipe, or a compact view redrawn in
place on a terminal; exit 0 on success, 1 when the job failed or was cancelled (with the
failed step's detail and the job's error code), 7 when ``--timeout`` passes. Also job get,
list, cancel and retry, and the rollout-restart and backup shorthands."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import time

import pytest
import yaml

from tests.opsctl.conftest import REPO, run_opsctl

pytestmark = pytest.mark.django_db(databases=["default", "audit"])

RESTART_PROD_WEB = ("rollout-restart", "-n", "prod", "deployment", "web")
JOB_ID = re.compile(r"\d{4}-\d\d-\d\dT[0-9:.+-]+_[a-z-]+_[0-9a-f]{8}")


def job_id_in(text: str) -> str:
    match = JOB_ID.search(text)
    assert match, text
    return match[0]


def job(job_id: str, env: dict[str, str]) -> dict:
    result = run_opsctl("-o", "json", "job", "get", job_id, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_rebuild_wait_on_a_pipe_prints_the_id_then_one_line_per_step_change(user):
    result = run_opsctl(
        "rebuild",
        "-n",
        "staging",
        "postgres",
        "--ordinal",
        "2",
        "--target-replicas",
        "3",
        "--strategy",
        "in-place",
        "--wait",
        env=user,
    )

    assert result.returncode == 0, (result.stdout, result.stderr)
    lines = result.stdout.splitlines()
    job_id = job_id_in(lines[0])
    assert lines[0] == f"job {job_id}"
    assert lines[-1] == f"job {job_id} success"
    assert all(len(line) <= 80 for line in lines)
    assert "\x1b" not in result.stdout
    finished = job(job_id, user)
    assert finished["status"] == "success"
    for step in finished["steps"]:
        assert f"{step['order']}. {step['name']} success" in result.stdout
    assert len(set(lines)) == len(lines)  # a step's state printed once, not on every poll


def test_a_rebuild_the_guards_refuse_exits_5_with_their_code(user):
    result = run_opsctl(
        "rebuild", "-n", "prod", "postgres", "--ordinal", "2", "--target-replicas", "3", env=user
    )

    assert result.returncode == 5
    assert "[primary_in_set]" in result.stderr


def test_wait_with_json_output_prints_the_final_job_and_progress_on_stderr(user):
    result = run_opsctl(
        "-o", "json", "rollout-restart", "-n", "staging", "deployment", "web", "--wait", env=user
    )

    assert result.returncode == 0, result.stderr
    final = json.loads(result.stdout)
    assert final["type"] == "rollout-restart"
    assert final["status"] == "success"
    assert result.stderr.splitlines()[0] == f"job {final['job_id']}"


def test_wait_on_a_terminal_redraws_a_compact_view_within_its_width(user):
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 60, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "opsctl", *RESTART_PROD_WEB, "--wait"],
        cwd=REPO,
        env=user,
        stdin=child,
        stdout=child,
        stderr=child,
    )
    os.close(child)
    chunks = []
    while True:
        try:
            data = os.read(main, 4096)
        except OSError:  # EIO: the child side is closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(main)
    assert proc.wait(timeout=60) == 0
    screen = b"".join(chunks).decode()

    assert screen.startswith("job ")
    assert "\x1b[" in screen  # redrawn in place, not appended
    plain = re.sub(r"\x1b\[\d*[A-Za-z]", "", screen)
    assert all(len(line) < 60 for line in plain.splitlines())
    assert "wait_rollout" in plain
    assert re.search(r"^success: rollout-restart ", plain, re.MULTILINE)


def test_a_failed_job_exits_1_with_the_step_detail_and_code_and_retry_runs_it_again(stack, user):
    stack.sim.pods_never_ready("prod", "app=web")
    try:
        failed = run_opsctl(
            "rollout-restart", "-n", "prod", "deployment", "web", "--wait", env=user
        )
    finally:
        stack.sim.pods_never_ready("prod", "app=web", never=False)

    assert failed.returncode == 1, (failed.stdout, failed.stderr)
    job_id = job_id_in(failed.stdout)
    record = job(job_id, user)
    assert record["status"] == "failed"
    assert failed.stderr.startswith("error: step wait_rollout failed")
    assert f"[{record['error']['code']}]" in failed.stderr

    retried = run_opsctl("job", "retry", job_id, env=user)
    followed = run_opsctl("job", "follow", job_id, env=user)

    assert retried.returncode == 0, retried.stderr
    assert followed.returncode == 0, (followed.stdout, followed.stderr)
    assert followed.stdout.splitlines()[-1] == f"job {job_id} success"


def test_timeout_exits_7_and_a_cancelled_job_exits_1_when_followed(stack, user):
    stack.sim.pods_never_ready("staging", "app=web")
    try:
        waited = run_opsctl(
            "rollout-restart",
            "-n",
            "staging",
            "deployment",
            "web",
            "--wait",
            "--timeout",
            "0.5",
            env=user,
        )
        job_id = job_id_in(waited.stdout)
        cancelled = run_opsctl("-o", "json", "job", "cancel", job_id, env=user)
        followed = run_opsctl("job", "follow", job_id, env=user)
        again = run_opsctl("job", "cancel", job_id, env=user)
    finally:
        stack.sim.pods_never_ready("staging", "app=web", never=False)

    assert waited.returncode == 7, (waited.stdout, waited.stderr)
    assert "[timeout]" in waited.stderr
    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout)["job_id"] == job_id
    assert followed.returncode == 1
    assert followed.stdout.splitlines()[-1] == f"job {job_id} cancelled"
    assert again.returncode == 5  # it has ended: a conflict


def test_backup_waits_for_the_snapshot_and_job_get_shows_it(stack, user):
    result = run_opsctl("backup", "-n", "staging", "postgres", "--wait", env=user)

    assert result.returncode == 0, (result.stdout, result.stderr)
    record = job(job_id_in(result.stdout), user)
    snapshot = record["result"]["snapshot"]
    assert stack.sim.get("volumesnapshots", "staging", snapshot)
    table = run_opsctl("job", "get", record["job_id"], env=user).stdout
    assert "wait_snapshot_ready" in table
    assert table.splitlines()[0].split() == ["job_id:", record["job_id"]]


def test_job_start_without_wait_prints_the_id_and_job_list_finds_it(user):
    started = run_opsctl(
        "job",
        "start",
        "rollout-restart",
        "--param",
        "namespace=staging",
        "--param",
        "kind=statefulset",
        "--param",
        "name=postgres",
        env=user,
    )
    assert started.returncode == 0, started.stderr
    job_id = job_id_in(started.stdout)
    deadline = time.monotonic() + 60
    while job(job_id, user)["status"] not in ("success", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.2)

    listed = yaml.safe_load(
        run_opsctl(
            "-o", "yaml", "job", "list", "--type", "rollout-restart", "-n", "staging", env=user
        ).stdout
    )
    table = run_opsctl("job", "list", "--status", "success", "--limit", "50", env=user).stdout

    assert started.stdout.strip() == f"job {job_id}"
    assert job_id in [j["job_id"] for j in listed["results"]]
    assert {j["type"] for j in listed["results"]} == {"rollout-restart"}
    assert job_id in table
    assert table.splitlines()[0].split()[:3] == ["JOB", "ID", "TYPE"]


def test_a_bad_job_status_filter_exits_2(user):
    assert run_opsctl("job", "list", "--status", "finished", env=user).returncode == 2


def test_rebuild_flags_reach_the_job_and_allow_outage_lets_scale_to_zero_run(user):
    result = run_opsctl(
        *("rebuild", "-n", "staging", "postgres", "--ordinal", "1", "--target-replicas", "3"),
        *("--allow-outage", "--allow-scale-down", "--wait"),
        env=user,
    )

    assert result.returncode == 0, (result.stdout, result.stderr)
    params = job(job_id_in(result.stdout), user)["params"]
    assert params["allow_outage"] is True
    assert params["allow_scale_down"] is True
    assert params["ordinal"] == 1
    assert "scale_sts_to_zero success" in result.stdout
