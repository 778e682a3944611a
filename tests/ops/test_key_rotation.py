"""API keys that rotate without a gap: ``rotate_api_key NAME --overlap`` (and the admin's
Rotate action) issue a new key while the old one keeps working until the overlap ends; both
act as the name, each audit row records which key was used; ``GET /ops/whoami`` shows the
name, its scope and its keys."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from ops.models import ApiKey, OpsLog
from tests.ops.conftest import BOOTSTRAP_KEY, DB

pytestmark = DB


def command(name: str, *args: str) -> str:
    out = StringIO()
    call_command(name, *args, stdout=out, stderr=StringIO())
    return out.getvalue().strip().splitlines()[-1]


def whoami(raw: str):
    client = APIClient(REMOTE_ADDR="198.51.100.20")
    client.credentials(HTTP_X_API_KEY=raw)
    return client.get("/ops/whoami")


def test_both_keys_work_during_the_overlap_and_only_the_new_one_after(apiops):
    old = command("create_api_key", "rot-bot", "--namespaces", "staging")

    new = command("rotate_api_key", "rot-bot", "--overlap", "24h")

    assert new != old
    for raw in (old, new):
        response = whoami(raw)
        assert response.status_code == 200
        assert response.json()["name"] == "rot-bot"
        assert response.json()["namespaces"] == ["staging"]
    keys = {k.prefix: k for k in ApiKey.objects.filter(name="rot-bot")}
    old_key = next(k for k in keys.values() if old.split("_")[1] == k.prefix)
    assert (
        timedelta(hours=23, minutes=59) < old_key.expires_at - timezone.now() <= timedelta(hours=24)
    )
    # The overlap ends: the old key is refused, the new one goes on.
    ApiKey.objects.filter(pk=old_key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert whoami(old).status_code == 401
    assert whoami(new).status_code == 200


def test_a_rotation_is_audited_with_both_prefixes(apiops):
    old = command("create_api_key", "rot-bot")
    new = command("rotate_api_key", "rot-bot", "--overlap", "30m")

    [row] = OpsLog.objects.using("audit").filter(action="rotate")
    assert (row.resource_kind, row.resource_name, row.status, row.origin) == (
        "api_key",
        "rot-bot",
        "success",
        "cli",
    )
    assert row.actor.startswith("cli:")
    assert row.request_body == {
        "overlap": "30m",
        "new_prefix": new.split("_")[1],
        "old_prefixes": [old.split("_")[1]],
    }


def test_each_audit_row_names_the_key_that_was_used(apiops, cluster):
    old = command("create_api_key", "rot-bot")
    new = command("rotate_api_key", "rot-bot", "--overlap", "1h")
    for raw in (old, new):
        client = APIClient(REMOTE_ADDR="198.51.100.20")
        client.credentials(HTTP_X_API_KEY=raw)
        response = client.post(
            "/ops/namespaces/prod/deployments/web/scale", {"replicas": 2}, format="json"
        )
        assert response.status_code == 200
    rows = OpsLog.objects.using("audit").filter(action="scale").order_by("id")
    assert [(r.actor, r.key_prefix) for r in rows] == [
        ("rot-bot", old.split("_")[1]),
        ("rot-bot", new.split("_")[1]),
    ]


@pytest.mark.parametrize("args", [["nobody", "--overlap", "1h"], ["rot-bot", "--overlap", "0h"]])
def test_rotation_refuses_an_unknown_name_or_a_bad_overlap(apiops, args):
    command("create_api_key", "rot-bot")
    with pytest.raises(CommandError):
        call_command("rotate_api_key", *args, stdout=StringIO(), stderr=StringIO())
    assert ApiKey.objects.filter(name="rot-bot").count() == 1


def test_a_second_key_is_made_by_rotation_not_by_create(apiops):
    command("create_api_key", "rot-bot")
    with pytest.raises(CommandError, match="rotate_api_key rot-bot --overlap"):
        call_command("create_api_key", "rot-bot", stdout=StringIO(), stderr=StringIO())


def test_whoami_shows_the_key_used_and_every_usable_key_of_the_name(apiops):
    old = command("create_api_key", "rot-bot")
    new = command("rotate_api_key", "rot-bot", "--overlap", "1h")

    body = whoami(new).json()

    assert body["key"]["prefix"] == new.split("_")[1]
    assert [k["prefix"] for k in body["keys"]] == [old.split("_")[1], new.split("_")[1]]
    assert body["keys"][0]["expires_at"] is not None
    assert {"scale", "delete-pod", "delete-pvc", "pg-rebuild"} <= set(body["operations"])
    assert "key_hash" not in str(body)


def test_whoami_of_the_bootstrap_key_and_without_a_key(apiops):
    body = whoami(BOOTSTRAP_KEY).json()
    assert (body["name"], body["namespaces"], body["key"], body["keys"]) == (
        "bootstrap",
        None,
        None,
        [],
    )
    assert APIClient().get("/ops/whoami").status_code == 401


def test_the_admin_rotate_action_shows_the_new_key_once_and_keeps_the_old_one_a_day(
    apiops, admin_client
):
    old = command("create_api_key", "rot-bot")
    key = ApiKey.objects.get(name="rot-bot")

    response = admin_client.post(
        "/admin/ops/apikey/", {"action": "rotate", "_selected_action": [key.pk]}
    )

    assert response.status_code == 200
    html = response.content.decode()
    [new] = ApiKey.objects.filter(name="rot-bot").exclude(pk=key.pk)
    assert f"ops_{new.prefix}_" in html
    assert whoami(old).status_code == 200
    key.refresh_from_db()
    assert key.expires_at - timezone.now() <= timedelta(hours=24)
    [row] = OpsLog.objects.using("audit").filter(action="rotate")
    assert (row.actor, row.origin) == ("admin:admin", "admin")
