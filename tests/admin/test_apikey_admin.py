"""The API key admin: creating a key shows the raw key once (on the answer itself, stored
nowhere: not in a message, the session or a cookie), the hash is never shown, keys are scoped
and revoked, never deleted."""

from __future__ import annotations

import re

import pytest
from django.contrib.sessions.models import Session
from rest_framework.test import APIClient

from ops.models import ApiKey, hash_key
from tests.admin.conftest import DB

pytestmark = DB

LIST = "/admin/ops/apikey/"
RAW = re.compile(r"ops_[0-9a-f]{8}_[A-Za-z0-9_-]{20,}")


@pytest.fixture
def allowed(settings):
    settings.APIOPS = {**settings.APIOPS, "ALLOWED_NAMESPACES": ("prod", "staging")}


def create(admin_client, name="ci-bot", namespaces=("staging",)):
    return admin_client.post(f"{LIST}add/", {"name": name, "namespaces": list(namespaces)})


def test_creating_a_key_shows_the_raw_key_once_and_stores_only_its_hash(admin_client, allowed):
    response = create(admin_client)

    assert response.status_code == 200
    html = response.content.decode()
    raw = RAW.search(html).group(0)
    key = ApiKey.objects.get(name="ci-bot")
    assert key.key_hash == hash_key(raw)
    assert key.namespaces == ["staging"]
    assert "no-store" in response["Cache-Control"]
    assert "shown only this once" in html
    # Stored nowhere else: no message cookie, nothing in the session table.
    assert all(raw not in morsel.value for morsel in response.cookies.values())
    assert not any(raw in str(s.get_decoded()) for s in Session.objects.all())
    # Never again on any page.
    for url in (LIST, f"{LIST}{key.pk}/change/", f"{LIST}{key.pk}/history/", "/admin/"):
        page = admin_client.get(url).content.decode()
        assert raw not in page, url


def test_the_new_key_authenticates_as_its_name(admin_client, allowed):
    raw = RAW.search(create(admin_client, name="deploy-bot").content.decode()).group(0)

    client = APIClient()
    client.credentials(HTTP_X_API_KEY=raw)

    assert client.get("/ops/audit").status_code == 200


def test_the_hash_is_never_shown(admin_client, allowed):
    create(admin_client)
    key = ApiKey.objects.get(name="ci-bot")

    for url in (LIST, f"{LIST}{key.pk}/change/", f"{LIST}?q={key.prefix}"):
        page = admin_client.get(url).content.decode()
        assert key.key_hash not in page, url
        assert "key_hash" not in page, url
    assert f"ops_{key.prefix}_…" in admin_client.get(LIST).content.decode()


def test_a_second_active_key_for_a_name_is_refused_on_the_form(admin_client, allowed):
    create(admin_client)

    response = create(admin_client)

    assert response.status_code == 200
    assert "already has an active key" in response.content.decode()
    assert not RAW.search(response.content.decode())
    assert ApiKey.objects.filter(name="ci-bot").count() == 1


def test_the_bootstrap_actor_name_and_past_expiry_are_refused(admin_client, allowed, settings):
    bootstrap = settings.APIOPS["API_KEY_ACTOR"]

    by_name = create(admin_client, name=bootstrap)
    past = admin_client.post(
        f"{LIST}add/", {"name": "late", "expires_at_0": "2001-01-01", "expires_at_1": "00:00:00"}
    )

    assert "bootstrap key" in by_name.content.decode()
    assert "Must be in the future." in past.content.decode()
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize("name", ["cli:root", "job", "API"])
def test_names_that_pass_for_a_command_or_a_job_are_refused_on_the_form(
    admin_client, allowed, name
):
    response = create(admin_client, name=name)

    assert response.status_code == 200
    assert "is reserved" in response.content.decode()
    assert not RAW.search(response.content.decode())
    assert not ApiKey.objects.exists()


def test_the_scope_of_an_active_key_can_be_changed(admin_client, allowed):
    create(admin_client, namespaces=("staging",))
    key = ApiKey.objects.get(name="ci-bot")

    response = admin_client.post(f"{LIST}{key.pk}/change/", {"namespaces": ["prod"]})

    assert response.status_code == 302
    key.refresh_from_db()
    assert key.namespaces == ["prod"]


def test_revoking_makes_the_key_fail_and_freezes_its_page(admin_client, allowed):
    raw = RAW.search(create(admin_client).content.decode()).group(0)
    key = ApiKey.objects.get(name="ci-bot")

    response = admin_client.post(
        LIST, {"action": "revoke", "_selected_action": [key.pk]}, follow=True
    )

    assert "Revoked 1 key(s): ci-bot" in response.content.decode()
    key.refresh_from_db()
    assert not key.active
    assert key.revoked_at is not None
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=raw)
    assert client.get("/ops/audit").status_code == 401
    page = admin_client.get(f"{LIST}{key.pk}/change/").content.decode()
    assert 'name="namespaces"' not in page
    assert "revoked" in page


def test_keys_cannot_be_deleted(admin_client, allowed):
    create(admin_client)
    key = ApiKey.objects.get(name="ci-bot")

    assert admin_client.post(f"{LIST}{key.pk}/delete/", {"post": "yes"}).status_code == 403
    assert ApiKey.objects.filter(pk=key.pk).exists()
