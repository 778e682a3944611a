"""The API with a staff user's admin session (the browsable API in a browser): CSRF enforced,
the actor ``admin:<username>`` in the audit log, what they may do given by the Django
permissions ``ops.run_<operation>`` and ``ops.namespace_<namespace>``, refusals answered and
audited as for an API key; the permissions themselves exist after ``migrate``; the API root
``GET /ops/`` lists the endpoints."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.auth.signals import user_logged_in
from rest_framework.test import APIClient

from jobs.models import Job
from ops import logins
from ops.policy import operation_allowed
from tests.ops.conftest import CLIENT_IP, DB, audit_log, mutations

pytestmark = DB

STS = "/ops/namespaces/prod/statefulsets/postgres/scale"
STAGING_STS = "/ops/namespaces/staging/statefulsets/postgres/scale"
PASSWORD = "session-test-password-0123"


def staff_user(name: str = "alice", *perms: str, staff: bool = True):
    user = get_user_model().objects.create_user(name, password=PASSWORD, is_staff=staff)
    for codename in perms:
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label="ops", codename=codename)
        )
    return user


def session(user, *, csrf: bool = False) -> APIClient:
    """A browser logged in to the admin: a session cookie and no key (CSRF checks as a
    browser's requests get them when ``csrf``)."""
    client = APIClient(REMOTE_ADDR=CLIENT_IP, enforce_csrf_checks=csrf)
    # The login itself is an audit row (ops/logins.py, tested there): left out here, so the
    # rows counted are the requests'.
    user_logged_in.disconnect(dispatch_uid=logins.LOGGED_IN_UID)
    try:
        client.force_login(user)
    finally:
        user_logged_in.connect(logins.on_logged_in, dispatch_uid=logins.LOGGED_IN_UID)
    return client


def replicas(cluster, namespace: str = "prod") -> int:
    return cluster.get("statefulsets", namespace, "postgres")["spec"]["replicas"]


def test_the_operations_and_namespaces_have_permissions_after_migrate():
    codenames = set(
        Permission.objects.filter(content_type__app_label="ops").values_list("codename", flat=True)
    )

    assert {
        "run_scale",
        "run_delete-pod",
        "run_delete-pvc",
        "run_pg-rebuild",
        "run_rollout-restart",
        "namespace_prod",
        "namespace_staging",
    } <= codenames


def test_a_permitted_staff_session_scales_as_admin_username(apiops, cluster):
    user = staff_user("alice", "run_scale", "namespace_prod")

    response = session(user).post(STS, {"replicas": 2}, format="json")

    assert response.status_code == 200, response.content
    assert replicas(cluster) == 2
    assert len(mutations(cluster)) == 1
    [row] = audit_log()
    assert (row.actor, row.status, row.action, row.namespace) == (
        "admin:alice",
        "success",
        "scale",
        "prod",
    )
    assert row.source_ip == CLIENT_IP


def test_a_staff_session_without_the_operation_is_refused_and_audited(apiops, cluster):
    user = staff_user("bob", "run_delete-pod", "namespace_prod")

    response = session(user).post(STS, {"replicas": 2}, format="json")

    assert response.status_code == 403
    assert response.json()["code"] == "operation_not_allowed"
    assert "ops.run_scale" in response.json()["detail"]
    assert mutations(cluster) == []
    assert replicas(cluster) == 3
    [row] = audit_log()
    assert (row.actor, row.status, row.http_status) == ("admin:bob", "denied", 403)
    assert (row.action, row.namespace, row.resource_name) == ("scale", "prod", "postgres")


def test_a_staff_session_outside_its_namespaces_is_refused_and_audited(apiops, cluster):
    user = staff_user("carol", "run_scale", "namespace_staging")

    refused = session(user).post(STS, {"replicas": 2}, format="json")
    allowed = session(user).post(STAGING_STS, {"replicas": 2}, format="json")

    assert refused.status_code == 403
    assert replicas(cluster) == 3
    assert allowed.status_code == 200
    assert replicas(cluster, "staging") == 2
    assert [(r.actor, r.namespace, r.status) for r in audit_log()] == [
        ("admin:carol", "prod", "denied"),
        ("admin:carol", "staging", "success"),
    ]


def test_a_staff_session_without_any_namespace_may_run_nothing(apiops, cluster):
    user = staff_user("dave", "run_scale")

    response = session(user).post(STS, {"replicas": 2}, format="json")

    assert response.status_code == 403
    assert response.json()["code"] == "operation_not_allowed"
    assert mutations(cluster) == []


def test_a_superuser_may_run_everything(apiops, cluster):
    user = get_user_model().objects.create_superuser("root", password=PASSWORD)

    response = session(user).delete("/ops/namespaces/prod/pods/postgres-2")

    assert response.status_code == 200, response.content
    assert [r.actor for r in audit_log()] == ["admin:root"]
    assert [m.verb for m in mutations(cluster)] == ["delete"]


def test_csrf_is_enforced_on_a_session(apiops, cluster):
    user = staff_user("erin", "run_scale", "namespace_prod")
    client = session(user, csrf=True)

    refused = client.post(STS, {"replicas": 2}, format="json")
    client.get("/ops/audit", HTTP_ACCEPT="text/html")  # a page sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    allowed = client.post(STS, {"replicas": 2}, format="json", HTTP_X_CSRFTOKEN=token)

    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]
    assert allowed.status_code == 200
    assert len(mutations(cluster)) == 1
    assert [r.status for r in audit_log()] == ["denied", "success"]


def test_a_logged_in_user_who_is_not_staff_is_not_authenticated(apiops, cluster):
    user = staff_user("frank", "run_scale", "namespace_prod", staff=False)

    response = session(user).post(STS, {"replicas": 2}, format="json")

    assert response.status_code == 401
    assert mutations(cluster) == []


def test_a_job_start_needs_the_permission_of_its_type(apiops, cluster):
    body = {"namespace": "prod", "kind": "deployment", "name": "web"}
    without = staff_user("gina", "run_scale", "namespace_prod")
    with_it = staff_user("hank", "run_rollout-restart", "namespace_prod")

    refused = session(without).post("/ops/jobs/rollout-restart", body, format="json")
    started = session(with_it).post("/ops/jobs/rollout-restart", body, format="json")

    assert refused.status_code == 403
    assert refused.json()["code"] == "operation_not_allowed"
    assert started.status_code == 202, started.content
    [job] = Job.objects.all()
    assert (job.job_id, job.actor) == (started.json()["job_id"], "admin:hank")
    assert next((r.actor, r.status) for r in audit_log()) == ("admin:gina", "denied")


def test_reads_take_a_staff_session(apiops, cluster):
    user = staff_user("iris")

    audit = session(user).get("/ops/audit")
    whoami = session(user).get("/ops/whoami")

    assert audit.status_code == 200
    assert whoami.status_code == 200
    assert (whoami.json()["name"], whoami.json()["operations"]) == ("admin:iris", [])


def test_whoami_names_the_operations_a_session_may_ask_for(apiops):
    user = staff_user("kim", "run_scale", "run_pg-rebuild", "namespace_staging")

    body = session(user).get("/ops/whoami").json()

    assert (body["operations"], body["namespaces"]) == (["scale", "pg-rebuild"], ["staging"])


def test_a_key_may_run_every_operation_and_the_policy_says_so():
    class Key:
        name, namespaces, operations = "deploy-bot", ("prod",), None

    class Session:
        name, namespaces, operations = "admin:x", ("prod",), frozenset({"scale"})

    assert operation_allowed(Key(), "delete-pvc")
    assert operation_allowed(Session(), "scale", "prod")
    assert not operation_allowed(Session(), "scale", "staging")
    assert not operation_allowed(Session(), "delete-pod", "prod")


def test_the_api_root_lists_the_endpoints(api, apiops):
    response = api.get("/ops/")

    assert response.status_code == 200
    body = response.json()
    assert body["audit"] == "http://testserver/ops/audit"
    assert body["deployment_scale"] == (
        "http://testserver/ops/namespaces/{namespace}/deployments/{name}/scale"
    )
    assert body["job"] == "http://testserver/ops/jobs/{job_id}"
    assert body["job_start"]["pg-rebuild"] == "http://testserver/ops/jobs/pg-rebuild"
    assert body["docs"] == "http://testserver/api/docs/"


def test_the_api_root_is_a_page_for_a_staff_session(apiops):
    response = session(staff_user("jane")).get("/ops/", HTTP_ACCEPT="text/html")

    assert response.status_code == 200
    page = response.content.decode()
    assert "Api Root" in page
    assert "/ops/audit" in page
    assert "admin:jane" in page
