"""Authentication by X-API-Key: bootstrap key, named keys (scope, expiry, revocation), 401s
with WWW-Authenticate and their audit rows, and the 429 throttle on repeated failures. The
OpenAPI schema and docs also open for a staff member's admin session (what that session may
operate on: tests/ops/test_session_api.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from ops.models import ApiKey
from tests.ops.conftest import (
    CLIENT_IP,
    DB,
    TRANSACTIONAL_DB,
    audit_log,
    audit_triggers_off,
    mutations,
)

pytestmark = DB

STS = "/ops/namespaces/prod/statefulsets/postgres/scale"


def _client(key: str | None, ip: str = CLIENT_IP) -> APIClient:
    client = APIClient(REMOTE_ADDR=ip)
    if key is not None:
        client.credentials(HTTP_X_API_KEY=key)
    return client


def test_a_request_without_a_key_is_401_with_www_authenticate_and_a_denied_row(anon, cluster):
    response = anon.post(STS, {"replicas": 2}, format="json")

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert "X-API-Key" in response["WWW-Authenticate"]
    assert list(cluster.requests) == []
    [row] = audit_log()
    assert (row.status, row.actor, row.source_ip, row.http_status) == (
        "denied",
        None,
        CLIENT_IP,
        401,
    )
    assert (row.action, row.resource_kind, row.namespace, row.resource_name) == (
        "scale",
        "statefulset",
        "prod",
        "postgres",
    )
    assert row.request_body == {"replicas": 2}


def test_a_wrong_key_is_401_and_audited_without_an_actor(apiops, cluster):
    response = _client("wrong").post(STS, {"replicas": 2}, format="json")

    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid API key.", "code": "authentication_failed"}
    assert "WWW-Authenticate" in response
    assert mutations(cluster) == []
    [row] = audit_log()
    assert (row.status, row.actor) == ("denied", None)


def test_a_named_key_acts_as_its_name(apiops, cluster):
    new = ApiKey.objects.issue(name="deploy-bot")

    response = _client(new.raw).post(STS, {"replicas": 2}, format="json")

    assert response.status_code == 200
    [row] = audit_log()
    assert row.actor == "deploy-bot"


def test_the_stored_key_is_only_a_hash(apiops):
    new = ApiKey.objects.issue(name="bot")

    stored = ApiKey.objects.get(pk=new.key.pk)
    assert new.raw not in (stored.key_hash, stored.prefix, stored.name)
    assert len(stored.key_hash) == 64
    assert new.raw.startswith(f"ops_{stored.prefix}_")


def test_a_key_with_the_right_prefix_but_wrong_secret_is_refused(apiops, cluster):
    new = ApiKey.objects.issue(name="bot")
    forged = new.raw[:-4] + ("AAAA" if not new.raw.endswith("AAAA") else "BBBB")

    assert _client(forged).post(STS, {"replicas": 2}, format="json").status_code == 401


def test_a_revoked_key_is_refused(apiops, cluster):
    new = ApiKey.objects.issue(name="bot")
    ApiKey.objects.filter(pk=new.key.pk).update(active=False)

    assert _client(new.raw).post(STS, {"replicas": 2}, format="json").status_code == 401


def test_an_expired_key_is_refused(apiops, cluster):
    new = ApiKey.objects.issue(name="bot", expires_at=timezone.now() - timedelta(seconds=1))

    assert _client(new.raw).post(STS, {"replicas": 2}, format="json").status_code == 401


def test_a_key_that_expires_later_works(apiops, cluster):
    new = ApiKey.objects.issue(name="bot", expires_at=timezone.now() + timedelta(days=1))

    assert _client(new.raw).post(STS, {"replicas": 2}, format="json").status_code == 200


def test_no_bootstrap_key_configured_means_only_named_keys_work(apiops, cluster):
    apiops(API_KEY=None)

    assert _client("").post(STS, {"replicas": 2}, format="json").status_code == 401
    assert _client("None").post(STS, {"replicas": 2}, format="json").status_code == 401


def test_the_audit_list_needs_a_key_too(anon):
    response = anon.get("/ops/audit")

    assert response.status_code == 401
    [row] = audit_log()
    assert (row.action, row.resource_kind, row.status) == ("list", "ops_log", "denied")


def test_the_schema_needs_a_key_and_answers_with_one(anon, api):
    assert anon.get("/api/schema/").status_code == 401
    response = api.get("/api/schema/")
    assert response.status_code == 200
    assert b"/ops/namespaces/{namespace}/statefulsets/{name}/scale" in response.content
    assert b"X-API-Key" in response.content


DOCS = ["/api/docs/", "/api/schema/"]


def _session(*, staff: bool) -> APIClient:
    """A browser logged in to the admin: a session cookie and no key."""
    user = get_user_model().objects.create_user(
        "staff" if staff else "visitor", password="pw-0123456789", is_staff=staff
    )
    client = APIClient(REMOTE_ADDR=CLIENT_IP)
    client.force_login(user)
    return client


@pytest.mark.parametrize("path", DOCS)
def test_the_schema_and_docs_open_with_a_key_or_a_staff_session_only(anon, api, path):
    refused = anon.get(path)

    assert refused.status_code == 401
    assert "X-API-Key" in refused["WWW-Authenticate"]
    assert api.get(path).status_code == 200
    assert _session(staff=True).get(path).status_code == 200
    assert _session(staff=False).get(path).status_code == 403


def test_swagger_ui_authorizes_calls_with_the_api_key(apiops):
    staff = _session(staff=True)
    # The page's start-up script is a file of its own (no inline script under the CSP).
    page = staff.get("/api/docs/?script=").content.decode()
    schema = staff.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()

    assert schema["components"]["securitySchemes"] == {
        "ApiKeyAuth": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        "StaffSession": {"type": "apiKey", "in": "cookie", "name": "sessionid"},
    }
    scale = schema["paths"]["/ops/namespaces/{namespace}/statefulsets/{name}/scale"]["post"]
    assert scale["security"] == [{"ApiKeyAuth": []}, {"StaffSession": []}]
    # The page loads that schema with the session, and keeps a key given to "Authorize" in
    # memory only.
    assert "/api/schema/" in page
    assert '"persistAuthorization": false' in page


def test_repeated_failures_from_one_address_are_throttled_with_429(apiops, cluster):
    apiops(AUTH_FAILURE_LIMIT=3, AUTH_FAILURE_WINDOW=60)
    for _ in range(3):
        assert _client("wrong").post(STS, {"replicas": 2}, format="json").status_code == 401

    response = _client("wrong").post(STS, {"replicas": 2}, format="json")

    assert response.status_code == 429
    assert response.json()["code"] == "throttled"
    assert int(response["Retry-After"]) > 0
    assert [r.status for r in audit_log()] == ["denied"] * 4


def test_a_throttled_address_is_refused_even_with_a_valid_key(api, apiops, cluster):
    apiops(AUTH_FAILURE_LIMIT=2)
    for _ in range(2):
        _client(None).post(STS, {"replicas": 2}, format="json")

    response = api.post(STS, {"replicas": 2}, format="json")

    assert response.status_code == 429
    assert mutations(cluster) == []


def test_the_throttle_counts_per_source_address(api, apiops, cluster):
    apiops(AUTH_FAILURE_LIMIT=2)
    for _ in range(2):
        _client("wrong", ip="198.51.100.1").post(STS, {"replicas": 2}, format="json")

    assert _client("wrong", ip="198.51.100.1").get("/ops/audit").status_code == 429
    assert api.post(STS, {"replicas": 2}, format="json").status_code == 200


def test_the_throttled_answers_themselves_do_not_extend_the_lockout(api, apiops, cluster):
    from ops.models import OpsLog

    apiops(AUTH_FAILURE_LIMIT=2, AUTH_FAILURE_WINDOW=60)
    for _ in range(2):
        _client("wrong").get("/ops/audit")
    for _ in range(3):
        assert api.get("/ops/audit").status_code == 429
    # The two wrong keys leave the window; the 429s answered since are younger, but only
    # failed authentications count.
    old = timezone.now() - timedelta(seconds=61)
    with audit_triggers_off():  # aged as only a superuser could: the rows are history
        OpsLog.objects.using("audit").filter(code__in=["authentication_failed"]).update(ts=old)

    assert api.get("/ops/audit").status_code == 200


def test_failures_older_than_the_window_do_not_count(apiops, cluster):
    from ops.models import OpsLog

    apiops(AUTH_FAILURE_LIMIT=2, AUTH_FAILURE_WINDOW=60)
    for _ in range(2):
        _client("wrong").get("/ops/audit")
    with audit_triggers_off():  # aged as only a superuser could: the rows are history
        OpsLog.objects.using("audit").update(ts=timezone.now() - timedelta(seconds=61))

    assert _client("wrong").get("/ops/audit").status_code == 401


@TRANSACTIONAL_DB
def test_using_a_named_key_records_when_it_was_last_used(apiops, cluster):
    new = ApiKey.objects.issue(name="bot")
    assert new.key.last_used_at is None

    assert _client(new.raw).get("/ops/audit").status_code == 200

    assert ApiKey.objects.get(pk=new.key.pk).last_used_at is not None


@pytest.mark.parametrize("scope", [["staging"], ["staging", "kube-system"]])
def test_a_key_scoped_to_other_namespaces_is_denied_403_and_audited(apiops, cluster, scope):
    new = ApiKey.objects.issue(name="staging-bot", namespaces=scope)

    response = _client(new.raw).post(STS, {"replicas": 2}, format="json")

    assert response.status_code == 403
    assert response.json()["code"] == "namespace_denied"
    assert "staging-bot" in response.json()["detail"]
    assert list(cluster.requests) == []
    [row] = audit_log()
    assert (row.status, row.actor, row.http_status) == ("denied", "staging-bot", 403)


def test_a_scoped_key_works_inside_its_scope(apiops, cluster):
    new = ApiKey.objects.issue(name="staging-bot", namespaces=["staging"])

    response = _client(new.raw).delete(
        "/ops/namespaces/staging/persistentvolumeclaims/data-postgres-2"
    )

    assert response.status_code == 200


def test_a_scope_cannot_widen_the_allowed_namespaces(apiops, cluster):
    new = ApiKey.objects.issue(name="kube-bot", namespaces=["kube-system"])

    response = _client(new.raw).post(
        "/ops/namespaces/kube-system/deployments/coredns/scale", {"replicas": 0}, format="json"
    )

    assert response.status_code == 403
    assert cluster.get("deployments", "kube-system", "coredns")["spec"]["replicas"] == 2
