"""Security-relevant events are audit rows through the normal chained path: admin logins
(success and failure, through the login form), the lockout django-axes applies after too
many failures (429), and API keys created and revoked in the admin and by the management
commands (one service). Each row is in the hash chain."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.test import Client

from ops.actors import os_user
from ops.models import ApiKey, OpsLog
from tests.admin.conftest import DB
from tests.admin.test_apikey_admin import LIST, create

pytestmark = DB

LOGIN = "/admin/login/?next=/admin/"
IP = "198.51.100.23"


@pytest.fixture
def allowed(settings):
    settings.APIOPS = {**settings.APIOPS, "ALLOWED_NAMESPACES": ("prod", "staging")}


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user(
        "carol", password="right-password", is_staff=True, is_superuser=True
    )


def _rows(**filters) -> list[OpsLog]:
    return list(OpsLog.objects.using("audit").filter(**filters).order_by("id"))


def _login(client: Client, password: str):
    return client.post(LOGIN, {"username": "carol", "password": password}, REMOTE_ADDR=IP)


def test_a_login_and_a_failed_one_are_rows(staff):
    client = Client()
    assert _login(client, "wrong").status_code == 200  # the form again, with its error
    assert _login(client, "right-password").status_code == 302

    failed, ok = _rows(resource_kind="admin_session")
    assert (failed.action, failed.status, failed.actor, failed.resource_name) == (
        "login",
        "denied",
        None,
        "carol",
    )
    assert (failed.code, failed.source_ip, failed.origin) == ("login_failed", IP, "admin")
    assert (ok.action, ok.status, ok.actor, ok.source_ip) == ("login", "success", "admin:carol", IP)
    assert failed.chain_seq < ok.chain_seq


def test_too_many_failures_lock_the_user_out_and_the_lockout_is_a_row(staff, settings):
    settings.AXES_FAILURE_LIMIT = 3
    client = Client()
    for _ in range(2):
        assert _login(client, "wrong").status_code == 200
    assert _login(client, "wrong").status_code == 429  # the third failure locks out

    # Locked out: even the right password is refused now, and audited as such.
    assert _login(client, "right-password").status_code == 429
    rows = _rows(resource_kind="admin_session")
    # django-axes signals the lockout on the failure that reaches the limit and again on
    # every try refused while it lasts; each try is a row of its own.
    assert [(r.action, r.code) for r in rows] == [
        ("login", "login_failed"),
        ("login", "login_failed"),
        ("lockout", "locked_out"),
        ("login", "locked_out"),
        ("lockout", "locked_out"),
        ("login", "locked_out"),
    ]
    assert not [r for r in rows if r.status == "success"]
    assert all(r.chain_seq for r in rows)


def test_keys_created_and_revoked_in_the_admin_are_rows(admin_client, allowed):
    create(admin_client)
    key = ApiKey.objects.get(name="ci-bot")
    admin_client.post(LIST, {"action": "revoke", "_selected_action": [key.pk]})

    made, revoked = _rows(resource_kind="api_key")
    assert (made.action, made.actor, made.origin, made.resource_name) == (
        "create",
        "admin:admin",
        "admin",
        "ci-bot",
    )
    assert made.request_body["prefix"] == key.prefix
    assert made.request_body["namespaces"] == ["staging"]
    assert (revoked.action, revoked.actor, revoked.request_body) == (
        "revoke",
        "admin:admin",
        {"prefix": key.prefix},
    )
    assert made.chain_seq < revoked.chain_seq


def test_keys_created_and_revoked_by_the_commands_are_rows(allowed):
    call_command("create_api_key", "deploy-bot", stdout=io.StringIO(), stderr=io.StringIO())
    call_command("revoke_api_key", "deploy-bot", stdout=io.StringIO())

    made, revoked = _rows(resource_kind="api_key")
    prefix = ApiKey.objects.get(name="deploy-bot").prefix
    assert [(r.action, r.actor, r.origin, r.request_body["prefix"]) for r in (made, revoked)] == [
        ("create", f"cli:{os_user()}", "cli", prefix),
        ("revoke", f"cli:{os_user()}", "cli", prefix),
    ]
