"""Change control from the command line: --dry-run on every ops command, requests held for
approval (exit 8), ops_approvals / ops_approve / ops_reject, create_api_key --operations."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from jobs.models import Job
from ops.models import ApiKey, Approval, OpsLog
from tests.cli.conftest import CLI_ACTOR, DB, fails, run

pytestmark = DB


def rows() -> list[OpsLog]:
    return list(OpsLog.objects.using("audit").order_by("id"))


def real_mutations(sim) -> list:
    return [r for r in sim.requests.mutations() if r.query.get("dryRun") != "All"]


@pytest.mark.parametrize(
    "args",
    [
        ("ops_scale", "prod", "statefulset", "postgres", "2"),
        ("ops_delete_pod", "prod", "postgres-1"),
        ("ops_delete_pvc", "prod", "data-postgres-1"),
        ("ops_pg_rebuild", "prod", "postgres", "1", "3", "--strategy", "in-place"),
        ("ops_rollout_restart", "prod", "deployment", "web"),
        ("ops_pg_backup", "prod", "postgres"),
    ],
)
def test_dry_run_prints_the_plan_and_changes_nothing(demo, args):
    out = run(*args, "--dry-run")

    assert "plan_digest sha256:" in out
    assert "(uid " in out.splitlines()[0]
    assert real_mutations(demo) == []
    assert not Job.objects.exists()
    [row] = rows()
    assert row.dry_run
    assert row.actor == CLI_ACTOR
    assert row.status == "success"


def test_a_held_request_prints_its_approval_and_exits_8(demo, fast):
    fast(APPROVAL_REQUIRED=("prod:delete-pvc",))

    error = fails("ops_delete_pvc", "prod", "data-postgres-1")

    assert error.returncode == 8
    approval = Approval.objects.get()
    assert approval.requested_by == CLI_ACTOR
    assert approval.status == "pending"
    assert real_mutations(demo) == []


def test_approvals_are_listed_approved_and_rejected_from_the_command_line(demo, fast):
    fast(APPROVAL_REQUIRED=("prod:scale", "prod:delete-pod"))
    requester = ApiKey.objects.issue(name="alice", operations=["all"]).raw
    api = APIClient(REMOTE_ADDR="203.0.113.9")
    api.credentials(HTTP_X_API_KEY=requester)
    scale = api.post(
        "/ops/namespaces/prod/deployments/web/scale", {"replicas": 3}, format="json"
    ).json()["approval_id"]
    delete = api.delete("/ops/namespaces/prod/pods/postgres-2").json()["approval_id"]

    listed = run("ops_approvals", "--status", "pending")
    assert scale in listed
    assert delete in listed
    assert fails("ops_approve", scale, "--reason", " ").returncode == 2
    out = StringIO()
    call_command("ops_approve", scale, "--reason", "CHG-7", stdout=out, stderr=StringIO())
    run("ops_reject", delete, "--reason", "not now")

    assert '"replicas": 3' in out.getvalue()
    assert demo.get("deployments", "prod", "web")["spec"]["replicas"] == 3
    assert {a.approval_id: (a.status, a.decided_by) for a in Approval.objects.all()} == {
        scale: ("approved", CLI_ACTOR),
        delete: ("rejected", CLI_ACTOR),
    }
    assert [r.verb for r in real_mutations(demo)] == ["patch"]
    assert fails("ops_approve", delete, "--reason", "x").returncode == 5


def test_create_api_key_operations(demo):
    err = StringIO()
    call_command(
        "create_api_key", "approver", "--operations", "approve", stdout=StringIO(), stderr=err
    )

    assert ApiKey.objects.get(name="approver").operations == ["approve"]
    assert "approve" in err.getvalue()
    assert fails("create_api_key", "x", "--operations", "scale,fly").returncode == 2
    call_command("create_api_key", "plain", stdout=StringIO(), stderr=StringIO())
    assert ApiKey.objects.get(name="plain").operations is None
