"""Change control (SPEC "Change control"): dry runs, key permissions and approvals bound to
the state of the objects they change — each proven from kubesim's request log and the
audit rows, not only from the answers."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone
from rest_framework.test import APIClient

from jobs.dispatch import pump
from jobs.models import Job
from ops import approvals
from ops.models import ApiKey, Approval, ApprovalStatus, OpsLog
from tests.ops.conftest import CLIENT_IP, DB, TRANSACTIONAL_DB, audit_log, mutations

SCALE_WEB = "/ops/namespaces/prod/deployments/web/scale"
POD = "/ops/namespaces/prod/pods/postgres-1"
CLAIM = "/ops/namespaces/prod/persistentvolumeclaims/data-postgres-1"
REBUILD = {
    "namespace": "prod",
    "statefulset": "postgres",
    "ordinal": 1,
    "target_replicas": 3,
    "strategy": "in-place",
}


def client_for(raw: str) -> APIClient:
    client = APIClient(REMOTE_ADDR=CLIENT_IP)
    client.credentials(HTTP_X_API_KEY=raw)
    return client


def new_key(name: str, operations: list[str] | None = None) -> APIClient:
    return client_for(ApiKey.objects.issue(name=name, operations=operations).raw)


def real_mutations(sim) -> list:
    """Mutating requests that were not server-side dry runs."""
    return [r for r in mutations(sim) if r.query.get("dryRun") != "All"]


def uid_of(sim, resource: str, name: str, namespace: str = "prod") -> str:
    return sim.get(resource, namespace, name)["metadata"]["uid"]


# --- dry run ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "resource", "name", "kind", "action"),
    [
        ("post", SCALE_WEB, {"replicas": 7}, "deployments", "web", "Deployment", "scale"),
        ("delete", POD, None, "pods", "postgres-1", "Pod", "delete"),
        (
            "delete",
            CLAIM,
            None,
            "persistentvolumeclaims",
            "data-postgres-1",
            "PersistentVolumeClaim",
            "delete",
        ),
    ],
)
@DB
def test_a_dry_run_plans_with_the_uid_sends_only_dry_run_mutations_and_is_audited(
    api, cluster, method, path, body, resource, name, kind, action
):
    before = cluster.get(resource, "prod", name)

    response = getattr(api, method)(path + "?dry_run=true", body, format="json")

    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["dry_run"] is True
    assert answer["plan_digest"].startswith("sha256:")
    assert len(answer["plan_digest"]) == 71
    [entry] = answer["plan"]
    assert entry["order"] == 1
    assert entry["action"] == action
    assert entry["object"] == {
        "kind": kind,
        "namespace": "prod",
        "name": name,
        "uid": before["metadata"]["uid"],
        **(
            {"generation": before["metadata"]["generation"]}
            if kind == "Deployment"
            else {"resourceVersion": before["metadata"]["resourceVersion"]}
        ),
    }
    if action == "scale":
        assert entry["change"] == {"replicas": {"from": before["spec"]["replicas"], "to": 7}}
    sent = mutations(cluster)
    assert sent
    assert all(r.query.get("dryRun") == "All" for r in sent)
    after = cluster.get(resource, "prod", name)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert after["metadata"].get("deletionTimestamp") is None
    [row] = audit_log()
    assert (row.dry_run, row.status, row.resource_name) == (True, "success", name)
    listed = api.get("/ops/audit").json()["results"][0]
    assert listed["dry_run"] is True


@DB
def test_the_same_state_plans_the_same_digest_and_a_change_moves_it(api, cluster):
    first = api.post(SCALE_WEB + "?dry_run=true", {"replicas": 7}, format="json").json()
    again = api.post(SCALE_WEB + "?dry_run=true", {"replicas": 7}, format="json").json()
    other = api.post(SCALE_WEB + "?dry_run=true", {"replicas": 8}, format="json").json()

    assert first["plan_digest"] == again["plan_digest"] != other["plan_digest"]


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/ops/namespaces/kube-system/deployments/coredns/scale", {"replicas": 0}, 403, None),
        ("/ops/namespaces/prod/statefulsets/no-such/scale", {"replicas": 0}, 404, None),
        (SCALE_WEB, {"replicas": -1}, 400, None),
        (SCALE_WEB, {"replicas": 1, "extra": 1}, 400, None),
    ],
)
@DB
def test_a_dry_run_is_refused_exactly_like_the_real_request(api, cluster, path, body, status, code):
    dry = api.post(path + "?dry_run=true", body, format="json")
    dry_rows = audit_log()
    real = api.post(path, body, format="json")

    assert dry.status_code == real.status_code == status
    assert dry.json()["code"] == real.json()["code"]
    assert real_mutations(cluster) == []
    [dry_row] = dry_rows
    assert dry_row.dry_run is True
    assert dry_row.status in ("error", "denied")
    assert audit_log()[-1].dry_run is False


@DB
def test_a_dry_run_value_that_is_not_a_boolean_is_400_and_changes_nothing(api, cluster):
    response = api.post(SCALE_WEB + "?dry_run=maybe", {"replicas": 7}, format="json")

    assert response.status_code == 400
    assert "dry_run" in response.json()["errors"]
    assert mutations(cluster) == []
    [row] = audit_log()
    assert row.status == "error"
    assert row.dry_run is True


@TRANSACTIONAL_DB  # the hold is read through the audit connection: committed jobs only
def test_a_dry_run_of_a_pod_delete_under_an_active_job_is_409_like_the_real_one(api, cluster):
    assert api.post("/ops/jobs/pg-rebuild", REBUILD, format="json").status_code == 202
    cluster.requests.clear()

    response = api.delete(POD + "?dry_run=true")

    assert response.status_code == 409
    assert response.json()["code"] == "job_target_busy"
    assert mutations(cluster) == []


@DB
def test_a_dry_run_rebuild_plans_every_step_with_the_uids_and_creates_no_job(api, cluster):
    pod_uid = uid_of(cluster, "pods", "postgres-1")
    claim_uid = uid_of(cluster, "persistentvolumeclaims", "data-postgres-1")

    response = api.post("/ops/jobs/pg-rebuild?dry_run=true", REBUILD, format="json")

    assert response.status_code == 200, response.content
    plan = response.json()["plan"]
    changes = [(e["step"], e["action"], e["object"]["name"], e["object"]["uid"]) for e in plan]
    assert ("delete_pvc", "delete", "data-postgres-1", claim_uid) in changes
    assert ("delete_pod", "delete", "postgres-1", pod_uid) in changes
    assert [e["step"] for e in plan] == [
        "check_target",
        "delete_pvc",
        "delete_pod",
        "wait_pvc_gone",
        "wait_pod_ready",
    ]
    assert mutations(cluster) == []
    assert not Job.objects.exists()
    [row] = audit_log()
    assert row.dry_run
    assert row.action == "pg-rebuild"
    assert row.status == "success"


@DB
def test_a_dry_run_scale_to_zero_rebuild_says_what_is_scaled_from_what_to_what(api, cluster):
    body = {**REBUILD, "strategy": "scale-to-zero", "allow_outage": True}
    plan = api.post("/ops/jobs/pg-rebuild?dry_run=true", body, format="json").json()["plan"]

    scales = [e["change"]["replicas"] for e in plan if e["action"] == "scale"]
    assert scales == [{"from": 3, "to": 0}, {"from": 0, "to": 3}]
    assert any(e["action"] == "delete" and e["object"]["name"] == "data-postgres-1" for e in plan)
    assert mutations(cluster) == []


@pytest.mark.parametrize(
    ("path", "body", "first_action"),
    [
        (
            "/ops/jobs/rollout-restart",
            {"namespace": "prod", "kind": "deployment", "name": "web"},
            "restart",
        ),
        ("/ops/jobs/pg-backup", {"namespace": "prod", "statefulset": "postgres"}, "check"),
    ],
)
@DB
def test_every_job_type_has_a_dry_run_that_changes_nothing(api, cluster, path, body, first_action):
    response = api.post(path + "?dry_run=true", body, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["plan"][0]["action"] == first_action
    assert mutations(cluster) == []
    assert not Job.objects.exists()


@DB
def test_a_dry_run_rebuild_of_the_primary_is_refused_like_the_real_request(api, cluster):
    body = {**REBUILD, "ordinal": 0}
    dry = api.post("/ops/jobs/pg-rebuild?dry_run=true", body, format="json")
    real = api.post("/ops/jobs/pg-rebuild", body, format="json")

    assert dry.status_code == real.status_code == 409
    assert dry.json()["code"] == real.json()["code"] == "primary_guard"
    assert mutations(cluster) == []


# --- key permissions ----------------------------------------------------------------------------


@DB
def test_a_key_may_request_only_its_operations(cluster):
    scaler = new_key("scaler", ["scale"])

    refused = scaler.delete(POD)
    allowed = scaler.post(SCALE_WEB, {"replicas": 2}, format="json")

    assert refused.status_code == 403
    assert refused.json()["code"] == "operation_not_allowed"
    assert allowed.status_code == 200
    assert [r.verb for r in real_mutations(cluster)] == ["patch"]
    denied = [row for row in audit_log() if row.status == "denied"]
    assert [(r.actor, r.code) for r in denied] == [("scaler", "operation_not_allowed")]


@DB
def test_a_key_without_operations_may_do_every_operation_but_not_approve(apiops, cluster):
    default = new_key("default-key")

    assert default.post(SCALE_WEB, {"replicas": 2}, format="json").status_code == 200
    whoami = default.get("/ops/whoami").json()
    assert "approve" not in whoami["operations"]
    assert "pg-rebuild" in whoami["operations"]


@DB
def test_a_job_type_is_an_operation_a_key_needs(cluster):
    scaler = new_key("scaler", ["scale"])

    response = scaler.post("/ops/jobs/pg-rebuild", REBUILD, format="json")

    assert response.status_code == 403
    assert response.json()["code"] == "operation_not_allowed"
    assert not Job.objects.exists()


# --- approvals ----------------------------------------------------------------------------------


@pytest.fixture
def gated(apiops):
    apiops(APPROVAL_REQUIRED=("prod:delete-pvc", "prod:delete-pod", "prod:scale", "*:pg-rebuild"))


@pytest.fixture
def requester():
    return new_key("alice", ["all", "approve"])


@pytest.fixture
def approver():
    return new_key("bob", ["all", "approve"])


def approval_rows(action: str) -> list[OpsLog]:
    return [r for r in audit_log() if r.action == action and r.resource_kind == "approval"]


@DB
def test_a_request_the_policy_names_is_held_with_its_plan_and_changes_nothing(
    gated, cluster, requester
):
    claim_uid = uid_of(cluster, "persistentvolumeclaims", "data-postgres-1")

    response = requester.delete(CLAIM)

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "pending"
    assert body["approval_id"].startswith("apr_")
    assert body["plan"][0]["object"]["uid"] == claim_uid
    assert body["expires_at"]
    assert real_mutations(cluster) == []
    [row] = approval_rows("request-approval")
    assert (row.actor, row.status, row.resource_name) == ("alice", "success", body["approval_id"])
    listed = requester.get("/ops/approvals?status=pending").json()["results"]
    assert [a["approval_id"] for a in listed] == [body["approval_id"]]


@DB
def test_approving_runs_the_delete_pinned_to_the_planned_uid(gated, cluster, requester, approver):
    claim_uid = uid_of(cluster, "persistentvolumeclaims", "data-postgres-1")
    approval_id = requester.delete(CLAIM).json()["approval_id"]
    cluster.requests.clear()

    response = approver.post(
        f"/ops/approvals/{approval_id}/approve", {"reason": "CHG-1"}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["name"] == "data-postgres-1"
    assert response.json()["status"] == "ok"
    [delete] = real_mutations(cluster)
    assert delete.verb == "delete"
    assert delete.name == "data-postgres-1"
    pvc = cluster.get("persistentvolumeclaims", "prod", "data-postgres-1")
    assert pvc is None or pvc["metadata"].get("deletionTimestamp")
    approval = Approval.objects.get(approval_id=approval_id)
    assert (approval.status, approval.decided_by, approval.reason) == ("approved", "bob", "CHG-1")
    op_row = next(r for r in audit_log() if r.action == "delete" and r.resource_kind != "approval")
    assert op_row.actor == "alice"
    assert op_row.status == "success"
    assert op_row.request_body["preconditions"] == {"uid": claim_uid}
    assert op_row.request_body["approval_id"] == approval_id
    [approve_row] = approval_rows("approve")
    assert approve_row.actor == "bob"
    assert approve_row.status == "success"

    again = approver.post(f"/ops/approvals/{approval_id}/approve", {"reason": "x"}, format="json")
    assert again.status_code == 409
    assert again.json()["code"] == "approval_closed"


@DB
def test_the_requester_cannot_approve_and_a_key_without_approve_cannot_either(
    gated, cluster, requester
):
    approval_id = requester.delete(CLAIM).json()["approval_id"]
    plain = new_key("carol")  # every operation, not approve
    scoped = client_for(
        ApiKey.objects.issue(name="dave", namespaces=["staging"], operations=["approve"]).raw
    )

    own = requester.post(f"/ops/approvals/{approval_id}/approve", {"reason": "me"}, format="json")
    lacking = plain.post(f"/ops/approvals/{approval_id}/approve", {"reason": "x"}, format="json")
    elsewhere = scoped.post(f"/ops/approvals/{approval_id}/approve", {"reason": "x"}, format="json")

    assert own.status_code == 403
    assert own.json()["code"] == "self_approval"
    assert lacking.status_code == 403
    assert lacking.json()["code"] == "approve_not_allowed"
    assert elsewhere.status_code == 404  # a key never sees approvals outside its namespaces
    assert Approval.objects.get(approval_id=approval_id).status == "pending"
    assert real_mutations(cluster) == []
    refusals = approval_rows("approve")
    assert [(r.actor, r.status, r.code) for r in refusals] == [
        ("alice", "denied", "self_approval"),
        ("carol", "denied", "approve_not_allowed"),
        ("dave", "error", "not_found"),
    ]


@DB
def test_reject_needs_a_reason_then_closes_the_approval(gated, cluster, requester, approver):
    approval_id = requester.post("/ops/jobs/pg-rebuild", REBUILD, format="json").json()[
        "approval_id"
    ]

    missing = approver.post(f"/ops/approvals/{approval_id}/reject", {}, format="json")
    empty = approver.post(f"/ops/approvals/{approval_id}/reject", {"reason": " "}, format="json")
    rejected = approver.post(
        f"/ops/approvals/{approval_id}/reject", {"reason": "month-end close"}, format="json"
    )
    late = approver.post(f"/ops/approvals/{approval_id}/approve", {"reason": "x"}, format="json")

    assert missing.status_code == empty.status_code == 400
    assert rejected.status_code == 200
    assert rejected.json()["status"] == "rejected"
    assert late.status_code == 409
    assert late.json()["code"] == "approval_closed"
    assert not Job.objects.exists()
    assert real_mutations(cluster) == []
    assert [r.status for r in approval_rows("reject")] == ["error", "error", "success"]


@DB
def test_an_approval_for_a_replaced_pod_is_stale_and_sends_nothing(
    gated, cluster, requester, approver
):
    approval_id = requester.delete(POD).json()["approval_id"]
    old_uid = uid_of(cluster, "pods", "postgres-1")
    cluster.delete("pods", "prod", "postgres-1", grace_period_seconds=0)
    cluster.wait_for(
        lambda: (
            (cluster.get("pods", "prod", "postgres-1") or {}).get("metadata", {}).get("uid")
            not in (None, old_uid)
        ),
        timeout=10,
    )
    cluster.requests.clear()

    response = approver.post(
        f"/ops/approvals/{approval_id}/approve", {"reason": "CHG"}, format="json"
    )

    assert response.status_code == 409
    assert response.json()["code"] == "stale_approval"
    assert "replaced" in response.json()["detail"]
    assert mutations(cluster) == []
    assert Approval.objects.get(approval_id=approval_id).status == "stale"
    [row] = approval_rows("approve")
    assert (row.status, row.code, row.http_status) == ("error", "stale_approval", 409)


@DB
def test_an_approval_for_a_statefulset_whose_spec_changed_is_stale(
    gated, cluster, requester, approver
):
    path = "/ops/namespaces/prod/statefulsets/postgres/scale"
    approval_id = requester.post(path, {"replicas": 4}, format="json").json()["approval_id"]
    cluster.patch("statefulsets", "prod", "postgres", {"spec": {"replicas": 2}})
    cluster.requests.clear()

    response = approver.post(
        f"/ops/approvals/{approval_id}/approve", {"reason": "CHG"}, format="json"
    )

    assert response.status_code == 409
    assert response.json()["code"] == "stale_approval"
    assert "generation" in response.json()["detail"]
    assert mutations(cluster) == []
    assert cluster.get("statefulsets", "prod", "postgres")["spec"]["replicas"] == 2


@DB
def test_a_change_between_the_check_and_the_scale_is_refused_by_the_api_server(
    gated, cluster, requester, approver, monkeypatch
):
    """The scale carries the resourceVersion the approval check read: a change made after
    that read (a label: the generation stays) makes the API server refuse the PATCH."""
    approval_id = requester.post(SCALE_WEB, {"replicas": 5}, format="json").json()["approval_id"]
    read = approvals._reader[0]

    def read_then_someone_acts(kind, namespace, name):
        obj = read(kind, namespace, name)
        cluster.patch("deployments", namespace, name, {"metadata": {"labels": {"x": "y"}}})
        return obj

    monkeypatch.setattr(approvals, "_reader", [read_then_someone_acts])
    replicas = cluster.get("deployments", "prod", "web")["spec"]["replicas"]
    cluster.requests.clear()

    response = approver.post(
        f"/ops/approvals/{approval_id}/approve", {"reason": "CHG"}, format="json"
    )

    assert response.status_code == 409
    assert response.json()["code"] == "stale_approval"
    [patch] = [r for r in mutations(cluster) if r.subresource == "scale"]
    assert patch.status == 409  # refused by the API server's precondition, not by us
    assert cluster.get("deployments", "prod", "web")["spec"]["replicas"] == replicas
    op_row = next(r for r in audit_log() if r.action == "scale")
    assert (op_row.status, op_row.http_status) == ("error", 409)
    assert Approval.objects.get(approval_id=approval_id).status == "stale"


@DB
def test_an_approval_past_its_expiry_is_refused_and_the_pump_marks_it_expired(
    gated, cluster, requester, approver
):
    approval_id = requester.delete(CLAIM).json()["approval_id"]
    Approval.objects.filter(approval_id=approval_id).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    shown = approver.get(f"/ops/approvals/{approval_id}").json()["status"]
    refused = approver.post(f"/ops/approvals/{approval_id}/approve", {"reason": "x"}, format="json")
    assert Approval.objects.get(approval_id=approval_id).status == "pending"  # not marked yet
    pump()

    assert shown == "expired"
    assert refused.status_code == 409
    assert refused.json()["code"] == "approval_expired"
    assert Approval.objects.get(approval_id=approval_id).status == "expired"
    [row] = approval_rows("expire")
    assert row.actor == approvals.EXPIRY_ACTOR.name
    assert row.origin == "system"
    assert real_mutations(cluster) == []


@DB
def test_an_approved_rebuild_starts_the_job_for_the_requester_bound_to_the_planned_uids(
    gated, cluster, requester, approver
):
    claim_uid = uid_of(cluster, "persistentvolumeclaims", "data-postgres-1")
    held = requester.post("/ops/jobs/pg-rebuild", REBUILD, format="json")
    assert held.status_code == 202
    assert "job_id" not in held.json()
    assert not Job.objects.exists()

    response = approver.post(
        f"/ops/approvals/{held.json()['approval_id']}/approve", {"reason": "CHG"}, format="json"
    )

    assert response.status_code == 202, response.content
    job = Job.objects.get(job_id=response.json()["job_id"])
    assert job.actor == "alice"
    assert job.result["approval_id"] == held.json()["approval_id"]
    assert job.result["approved_uids"]["PersistentVolumeClaim/data-postgres-1"] == claim_uid
    assert Approval.objects.get(approval_id=held.json()["approval_id"]).job_id == job.job_id


@DB
def test_a_dry_run_is_never_held_for_approval(gated, cluster, requester):
    response = requester.delete(CLAIM + "?dry_run=true")

    assert response.status_code == 200
    assert response.json()["dry_run"] is True
    assert not Approval.objects.exists()


@TRANSACTIONAL_DB
def test_two_concurrent_approvals_run_the_operation_once(gated, cluster, requester):
    approval_id = requester.delete(CLAIM).json()["approval_id"]
    approvers = [new_key(f"approver-{i}", ["approve"]) for i in range(2)]
    cluster.requests.clear()
    barrier = threading.Barrier(2)
    answers = []

    def approve(client):
        barrier.wait()
        try:
            answers.append(
                client.post(
                    f"/ops/approvals/{approval_id}/approve", {"reason": "CHG"}, format="json"
                ).status_code
            )
        finally:
            connections.close_all()

    threads = [threading.Thread(target=approve, args=(c,)) for c in approvers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(answers) == [200, 409]
    assert [r.verb for r in real_mutations(cluster)] == ["delete"]
    assert Approval.objects.get(approval_id=approval_id).status == ApprovalStatus.APPROVED


@DB
def test_a_held_rebuild_the_guards_refuse_now_is_held_with_the_warning_and_refused_at_approval(
    gated, cluster, requester, approver
):
    """The guards decide when the job would run: at approval, on the cluster as it is then.
    At the request the approver is shown what they say now."""
    body = {**REBUILD, "strategy": "scale-to-zero", "ordinal": 2}

    held = requester.post("/ops/jobs/pg-rebuild", body, format="json")

    assert held.status_code == 202, held.content
    assert [w["code"] for w in held.json()["warnings"]] == ["primary_in_set"]
    assert [e["action"] for e in held.json()["plan"]][:2] == ["scale", "wait"]
    approved = approver.post(
        f"/ops/approvals/{held.json()['approval_id']}/approve", {"reason": "CHG"}, format="json"
    )
    assert approved.status_code == 409
    assert approved.json()["code"] == "primary_in_set"
    assert not Job.objects.exists()
    assert mutations(cluster) == []
    approval = Approval.objects.get(approval_id=held.json()["approval_id"])
    assert approval.status == "approved"
    assert approval.outcome["body"]["code"] == "primary_in_set"


@DB
def test_cancel_and_retry_take_a_dry_run_that_changes_nothing(api, cluster):
    job_id = api.post("/ops/jobs/pg-rebuild", REBUILD, format="json").json()["job_id"]

    cancel = api.post(f"/ops/jobs/{job_id}/cancel?dry_run=true")
    retry = api.post(f"/ops/jobs/{job_id}/retry?dry_run=true")

    assert cancel.status_code == 200
    assert cancel.json()["plan"][0]["change"]["status"] == {"from": "pending", "to": "cancelled"}
    assert retry.status_code == 409  # like the real retry: the job has not failed
    job = Job.objects.get(job_id=job_id)
    assert (job.status, job.cancel_requested) == ("pending", False)
    rows = [r for r in audit_log() if r.action in ("cancel", "retry")]
    assert [(r.action, r.dry_run, r.status) for r in rows] == [
        ("cancel", True, "success"),
        ("retry", True, "error"),
    ]


@DB
def test_a_dry_run_approval_checks_everything_and_decides_nothing(
    gated, cluster, requester, approver
):
    approval_id = requester.delete(POD).json()["approval_id"]

    fine = approver.post(
        f"/ops/approvals/{approval_id}/approve?dry_run=true", {"reason": "x"}, format="json"
    )
    own = requester.post(
        f"/ops/approvals/{approval_id}/approve?dry_run=true", {"reason": "x"}, format="json"
    )
    cluster.patch("pods", "prod", "postgres-1", {"metadata": {"labels": {"touched": "yes"}}})
    changed = approver.post(
        f"/ops/approvals/{approval_id}/approve?dry_run=true", {"reason": "x"}, format="json"
    )

    assert fine.status_code == 200
    assert fine.json()["dry_run"] is True
    assert own.json()["code"] == "self_approval"
    assert changed.status_code == 409
    assert changed.json()["code"] == "stale_approval"
    assert Approval.objects.get(approval_id=approval_id).status == "pending"
    assert real_mutations(cluster) == []


@DB
def test_approval_events_are_written_in_the_transactions_that_make_them(
    apiops, gated, cluster, requester, approver
):
    from ops.notification_models import NotificationEvent

    apiops(
        NOTIFY_TARGETS=(
            {
                "name": "chat",
                "kind": "webhook",
                "url": "http://127.0.0.1:9/hook",
                "secret": "s3cret",
                "events": ("approval.*",),
                "namespaces": ("prod",),
            },
        )
    )
    first = requester.delete(CLAIM).json()["approval_id"]
    second = requester.delete(POD).json()["approval_id"]
    approver.post(f"/ops/approvals/{first}/approve", {"reason": "CHG"}, format="json")
    approver.post(f"/ops/approvals/{second}/reject", {"reason": "no"}, format="json")
    third = requester.post(SCALE_WEB, {"replicas": 3}, format="json").json()["approval_id"]
    Approval.objects.filter(approval_id=third).update(expires_at=timezone.now())
    approvals.expire_due()

    events = [
        (e.event, e.data["approval_id"]) for e in NotificationEvent.objects.order_by("occurred_at")
    ]
    assert events == [
        ("approval.requested", first),
        ("approval.requested", second),
        ("approval.approved", first),
        ("approval.rejected", second),
        ("approval.requested", third),
        ("approval.expired", third),
    ]
    assert approvals.pending_count() == 0


@DB
def test_a_dry_run_scale_is_not_a_conflict_when_the_object_moves_between_its_reads(
    api, cluster, monkeypatch
):
    """A controller's status update between the plan's reads (common right after a change)
    must not make a dry run fail: it carries no resourceVersion precondition."""
    from ops import k8s

    read = k8s.object_meta

    def read_then_the_controller_writes(**kwargs):
        meta = read(**kwargs)
        cluster.patch("deployments", "prod", "web", {"metadata": {"labels": {"moved": "yes"}}})
        return meta

    monkeypatch.setattr(k8s, "object_meta", read_then_the_controller_writes)

    response = api.post(SCALE_WEB + "?dry_run=true", {"replicas": 5}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["plan"][0]["change"]["replicas"]["to"] == 5
