"""manage.py create_api_key and revoke_api_key: the key is printed once, stored hashed,
scoped and expiring as asked, and revocation takes effect at once."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from ops.models import ApiKey
from tests.ops.conftest import DB

pytestmark = DB


def _create(*args: str) -> str:
    out, err = StringIO(), StringIO()
    call_command("create_api_key", *args, stdout=out, stderr=err)
    return out.getvalue().strip()


def test_create_prints_a_key_that_authenticates_as_the_name(apiops):
    raw = _create("ci-bot")

    key = ApiKey.objects.get(name="ci-bot")
    assert raw.startswith(f"ops_{key.prefix}_")
    assert raw not in key.key_hash
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=raw)
    assert client.get("/ops/audit").status_code == 200


def test_create_with_namespaces_and_expiry_stores_them(apiops):
    _create("staging-bot", "--namespaces", "staging", "--expires", "30d")

    key = ApiKey.objects.get(name="staging-bot")
    assert key.namespaces == ["staging"]
    assert key.expires_at is not None


def test_a_naive_expiry_datetime_is_read_as_utc(apiops):
    _create("night-bot", "--expires", "2999-01-02T03:04:05")

    key = ApiKey.objects.get(name="night-bot")
    assert key.expires_at.isoformat() == "2999-01-02T03:04:05+00:00"


@pytest.mark.parametrize(
    "args",
    [
        ["bad", "--namespaces", "Not_A_Namespace"],
        ["bad", "--expires", "tomorrow-ish"],
        ["bad", "--expires", "2001-01-01T00:00:00Z"],
        ["bootstrap"],
        [""],
    ],
)
def test_create_refuses_bad_arguments(apiops, args):
    with pytest.raises(CommandError):
        _create(*args)
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize("name", ["cli:root", "CLI:alice", "job", "Job", "api", "job:x", "api:y"])
def test_names_that_pass_for_a_command_or_a_job_are_reserved(apiops, name):
    with pytest.raises(CommandError, match="reserved"):
        _create(name)
    with pytest.raises(ValueError, match="reserved"):
        ApiKey.objects.issue(name=name)  # the one way keys are made refuses them too
    assert not ApiKey.objects.exists()


def test_names_that_only_contain_a_reserved_word_are_fine(apiops):
    for name in ("jobs-bot", "client:eu", "my-cli", "apiops"):
        _create(name)
    assert ApiKey.objects.count() == 4


def test_a_second_active_key_for_the_same_name_is_refused(apiops):
    _create("bot")

    with pytest.raises(CommandError, match="already has an active key"):
        _create("bot")


def test_revoke_makes_the_key_fail_and_allows_a_new_one(apiops):
    raw = _create("bot")

    call_command("revoke_api_key", "bot", stdout=StringIO())

    client = APIClient()
    client.credentials(HTTP_X_API_KEY=raw)
    assert client.get("/ops/audit").status_code == 401
    assert ApiKey.objects.get(name="bot").revoked_at is not None
    assert _create("bot") != raw


def test_revoking_an_unknown_name_is_an_error(apiops):
    with pytest.raises(CommandError):
        call_command("revoke_api_key", "nobody", stdout=StringIO())
