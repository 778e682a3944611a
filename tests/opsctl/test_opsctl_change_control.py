"""opsctl and change control, against a real server that holds ``prod`` scales and pod deletes
and every rollout-restart for approval: ``--dry-run`` prints the plan and changes nothing, a
held request exits 8 with its approval id, ``opsctl approvals`` lists, shows, approves (a
second key; the operation runs, a job is followed with ``--wait``) and rejects, refusals keep
their exit codes, and a repeated ``--idempotency-key`` is answered without running again."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tests.opsctl.conftest import REPO, run_opsctl

pytestmark = pytest.mark.django_db(databases=["default", "audit"])


@pytest.fixture(scope="module")
def stack_settings() -> dict[str, str]:
    return {"OPS_APPROVAL_REQUIRED": "prod:scale,prod:delete-pod,*:rollout-restart"}


@pytest.fixture(scope="module")
def approver_key(stack) -> str:
    """A second person's key, allowed to approve (made with manage.py on the stack's database)."""
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "create_api_key",
            "opsctl-approver",
            "--operations",
            "approve",
        ],
        cwd=REPO,
        env=stack.env,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture
def approver(user, approver_key) -> dict[str, str]:
    return {**user, "OPSCTL_KEY": approver_key}


def opsctl(want: int, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    result = run_opsctl(*args, env=env)
    assert result.returncode == want, (args, result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result


def real_writes(stack) -> list[tuple[str, str, str]]:
    """Mutations that reached kubesim, but for server-side dry runs (``dryRun=All``)."""
    return [
        (r.method, r.resource, r.name)
        for r in stack.sim.requests.mutations()
        if r.query.get("dryRun") != "All"
    ]


def replicas(stack, namespace: str, name: str) -> int:
    return stack.sim.get("deployments", namespace, name)["spec"]["replicas"]


def a_pod(stack, namespace: str, prefix: str) -> dict:
    return next(
        p
        for p in stack.sim.list("pods", namespace)
        if p["metadata"]["name"].startswith(prefix) and not p["metadata"].get("deletionTimestamp")
    )


def held_id(result: subprocess.CompletedProcess) -> str:
    """The approval id a held request printed (``-o json``: the API's answer; else a table)."""
    assert "held for approval" in result.stderr
    if result.stdout.startswith("{"):
        return json.loads(result.stdout)["approval_id"]
    return re.search(r"^approval_id:\s+(\S+)", result.stdout, re.MULTILINE)[1]


def test_dry_runs_print_the_plan_and_change_nothing(stack, user):
    before = replicas(stack, "staging", "web")
    pod = a_pod(stack, "staging", "web-")
    name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
    stack.sim.requests.clear()

    table = opsctl(
        0, "scale", "-n", "staging", "deployment", "web", "--replicas", "7", "--dry-run", env=user
    )
    plan = json.loads(
        opsctl(
            0, "-o", "json", "delete", "-n", "staging", "pod", name, "--dry-run", env=user
        ).stdout
    )
    job = opsctl(
        0, "rollout-restart", "-n", "staging", "deployment", "web", "--dry-run", "--wait", env=user
    )

    assert table.stdout.splitlines()[0].split() == [
        "ORDER", "ACTION", "KIND", "NAMESPACE/NAME", "UID", "CHANGE"
    ]  # fmt: skip
    assert "staging/web" in table.stdout
    assert f"replicas {before} -> 7" in table.stdout
    assert "dry run: nothing changed" in table.stderr
    assert plan["dry_run"] is True
    assert plan["plan_digest"].startswith("sha256:")
    assert [(e["action"], e["object"]["uid"]) for e in plan["plan"]] == [("delete", uid)]
    assert "STEP" in job.stdout.splitlines()[0]
    assert "restart" in job.stdout
    assert "job " not in job.stdout  # no job was started, none followed
    assert real_writes(stack) == []
    assert replicas(stack, "staging", "web") == before
    assert stack.sim.get("pods", "staging", name)["metadata"]["uid"] == uid
    jobs = json.loads(opsctl(0, "-o", "json", "job", "list", "-n", "staging", env=user).stdout)
    assert jobs["results"] == []


def test_a_held_scale_exits_8_and_is_run_when_a_second_key_approves_it(stack, user, approver):
    before = replicas(stack, "prod", "web")
    stack.sim.requests.clear()

    held = opsctl(
        8, "-o", "json", "scale", "-n", "prod", "deployment", "web", "--replicas", "5", env=user
    )
    approval_id = held_id(held)
    waited = opsctl(8, "rollout-restart", "-n", "prod", "deployment", "web", "--wait", env=user)
    pending = json.loads(
        opsctl(0, "-o", "json", "approvals", "list", "--status", "pending", env=approver).stdout
    )
    shown = opsctl(0, "approvals", "get", approval_id, env=approver).stdout
    own = opsctl(3, "approvals", "approve", approval_id, "--reason", "mine", env=user)
    assert real_writes(stack) == []
    assert replicas(stack, "prod", "web") == before

    approved = opsctl(0, "approvals", "approve", approval_id, "--reason", "CHG-1", env=approver)
    again = opsctl(5, "approvals", "approve", approval_id, "--reason", "twice", env=approver)

    assert approval_id.startswith("apr_")
    assert "job " not in waited.stdout  # held, not followed: nothing to wait for
    assert {a["approval_id"] for a in pending["results"]} >= {approval_id, held_id(waited)}
    assert f"replicas {before} -> 5" in shown
    assert "[self_approval]" in own.stderr
    assert f"prod/web scaled {before} -> 5" in approved.stdout
    assert replicas(stack, "prod", "web") == 5
    assert [w for w in real_writes(stack) if w[1] == "deployments"] == [
        ("PATCH", "deployments", "web")
    ]
    assert "[approval_closed]" in again.stderr


def test_a_rejected_delete_runs_nothing_and_an_approved_job_is_followed(stack, user, approver):
    pod = a_pod(stack, "prod", "web-")
    name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]

    delete_id = held_id(opsctl(8, "-o", "json", "delete", "-n", "prod", "pod", name, env=user))
    rejected = opsctl(0, "approvals", "reject", delete_id, "--reason", "not now", env=approver)
    late = opsctl(5, "approvals", "approve", delete_id, "--reason", "after all", env=approver)
    restart_id = held_id(
        opsctl(8, "-o", "json", "rollout-restart", "-n", "staging", "deployment", "web", env=user)
    )
    followed = opsctl(
        0, "approvals", "approve", restart_id, "--reason", "go", "--wait", env=approver
    )
    unknown = opsctl(4, "approvals", "get", "apr_nosuchapproval", env=approver)
    reasonless = opsctl(2, "approvals", "reject", restart_id, "--reason", "", env=approver)

    assert "rejected" in rejected.stdout
    assert "[approval_closed]" in late.stderr
    assert stack.sim.get("pods", "prod", name)["metadata"]["uid"] == uid
    assert not stack.sim.get("pods", "prod", name)["metadata"].get("deletionTimestamp")
    lines = followed.stdout.splitlines()
    assert lines[0].startswith("job ")
    assert "_rollout-restart_" in lines[0]
    assert lines[-1].endswith(" success")
    assert unknown.stderr.startswith("error: ")
    assert reasonless.stderr.startswith("error: ")


def test_a_repeated_idempotency_key_is_answered_without_running_again(stack, user):
    key = ("--idempotency-key", "opsctl-test-scale-once")
    scale = ("scale", "-n", "staging", "deployment", "web")
    stack.sim.requests.clear()

    first = opsctl(0, *key, *scale, "--replicas", "2", env=user)
    second = opsctl(0, *key, *scale, "--replicas", "2", env=user)
    reused = opsctl(2, *key, *scale, "--replicas", "3", env=user)

    assert first.stdout == second.stdout
    assert "nothing ran now" in second.stderr
    assert "[idempotency_key_reused]" in reused.stderr
    assert real_writes(stack) == [("PATCH", "deployments", "web")]
    assert replicas(stack, "staging", "web") == 2
