"""The approvals' admin: read-only pages with the plan; staff holding ops.decide_approval
approve or reject with a reason as admin:<username>, through the API's service."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from ops import k8s
from ops.models import ApiKey, Approval, OpsLog
from tests.admin.conftest import DB

pytestmark = DB


@pytest.fixture
def held(kubesim_demo, settings):
    settings.APIOPS = {
        **settings.APIOPS,
        "KUBECONFIG": kubesim_demo.kubeconfig_path,
        "ALLOWED_NAMESPACES": ("prod", "staging"),
        "APPROVAL_REQUIRED": ("prod:scale",),
        "K8S_RETRIES": 0,
    }
    k8s.reset_client()
    api = APIClient(REMOTE_ADDR="203.0.113.9")
    api.credentials(HTTP_X_API_KEY=ApiKey.objects.issue(name="alice").raw)
    answer = api.post("/ops/namespaces/prod/deployments/web/scale", {"replicas": 4}, format="json")
    assert answer.status_code == 202
    yield kubesim_demo, Approval.objects.get(approval_id=answer.json()["approval_id"])
    k8s.reset_client()


def staff(username: str, *perms: str) -> Client:
    user = User.objects.create_user(username, password="pw", is_staff=True)
    for codename in ("view_approval", *perms):
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client()
    client.force_login(user)
    return client


def decide_url(approval: Approval) -> str:
    return reverse("admin:ops_approval_decide", args=[approval.pk])


def test_the_page_shows_the_plan_and_the_decision_form_only_to_deciders(held):
    _sim, approval = held
    viewer, decider = staff("viewer"), staff("carol", "decide_approval")
    page = reverse("admin:ops_approval_change", args=[approval.pk])

    seen = viewer.get(page).content.decode()
    decidable = decider.get(page).content.decode()

    assert approval.plan_digest in seen
    assert approval.plan[0]["object"]["uid"] in seen
    assert "decision-form" not in seen
    assert "decision-form" in decidable
    assert viewer.post(decide_url(approval), {"reason": "x", "approve": "1"}).status_code == 403
    assert Approval.objects.get(pk=approval.pk).status == "pending"


def test_a_decider_approves_as_admin_user_and_the_scale_runs(held):
    sim, approval = held
    decider = staff("carol", "decide_approval")

    decider.post(decide_url(approval), {"reason": "CHG-9", "approve": "1"})

    approval.refresh_from_db()
    assert (approval.status, approval.decided_by) == ("approved", "admin:carol")
    assert sim.get("deployments", "prod", "web")["spec"]["replicas"] == 4
    row = OpsLog.objects.using("audit").get(action="approve")
    assert (row.actor, row.origin, row.status) == ("admin:carol", "admin", "success")


def test_a_reason_is_required_and_rejecting_runs_nothing(held):
    sim, approval = held
    decider = staff("carol", "decide_approval")
    replicas = sim.get("deployments", "prod", "web")["spec"]["replicas"]

    decider.post(decide_url(approval), {"reason": "", "reject": "1"})
    assert Approval.objects.get(pk=approval.pk).status == "pending"
    decider.post(decide_url(approval), {"reason": "not in the freeze", "reject": "1"})

    assert Approval.objects.get(pk=approval.pk).status == "rejected"
    assert sim.get("deployments", "prod", "web")["spec"]["replicas"] == replicas
