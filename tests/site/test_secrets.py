"""Where each secret comes from: a file in OPS_SECRETS_DIR, else Vault, else the environment.

Vault is the Vault-shaped HTTP server of tests/deploy on 127.0.0.1, spoken to by the real
hvac client. Also: Vault is not asked at all when the files are there, it is asked once for
all three secrets, and a Vault that fails stops startup (ImproperlyConfigured) instead of
falling through to the environment, with nothing secret in the message.
"""

from __future__ import annotations

import traceback

import pytest
from django.core.exceptions import ImproperlyConfigured

from apiops_site.secrets import read_secret
from tests.site.support import token, write_secrets

FILE_KEY = token("file-key-")
VAULT_KEY = token("vault-key-")
ENV_KEY = token("env-key-")
VAULT_DB_URL = f"postgresql://apiops:{token('pw-')}@db.internal:5432/apiops"
VAULT_SECRET_KEY = token("vault-sk-")
VAULT_TOKEN = token("hvs.")


@pytest.fixture
def stocked(vault):
    """Vault holding ApiOps's secrets, readable with VAULT_TOKEN."""
    vault.state.secrets["ops-api"] = {"api_key": VAULT_KEY, "secret_key": VAULT_SECRET_KEY}
    vault.state.secrets["ops-api-db"] = {"db_url": VAULT_DB_URL}
    vault.grant(VAULT_TOKEN, "ops-api", "ops-api-db")
    return vault


def environ(tmp_path, vault=None, **extra: str) -> dict[str, str]:
    env = {"OPS_SECRETS_DIR": str(tmp_path / "secrets"), "OPS_API_KEY": ENV_KEY, **extra}
    if vault is not None:
        env |= {"VAULT_ADDR": vault.url, "VAULT_TOKEN": VAULT_TOKEN, "VAULT_TIMEOUT": "5"}
    return env


def test_a_secret_file_wins_over_vault_and_the_environment_and_vault_is_not_asked(
    stocked, tmp_path
):
    write_secrets(tmp_path / "secrets", api_key=FILE_KEY)

    assert read_secret("api-key", "OPS_API_KEY", environ(tmp_path, stocked)) == FILE_KEY
    assert stocked.state.requests == []


def test_vault_wins_over_the_environment_when_the_file_is_missing(stocked, tmp_path):
    env = environ(tmp_path, stocked, OPS_DB_URL="postgresql://env@envdb/x")

    assert read_secret("api-key", "OPS_API_KEY", env) == VAULT_KEY
    assert read_secret("db-url", "OPS_DB_URL", env) == VAULT_DB_URL
    assert read_secret("secret-key", "OPS_SECRET_KEY", env) == VAULT_SECRET_KEY


def test_the_environment_is_used_without_vault(tmp_path):
    assert read_secret("api-key", "OPS_API_KEY", environ(tmp_path)) == ENV_KEY


def test_the_environment_fills_in_what_vault_does_not_hold(stocked, tmp_path):
    # secret_key is optional in secret/ops-api: without it the environment's value is used.
    del stocked.state.secrets["ops-api"]["secret_key"]
    env = environ(tmp_path, stocked, OPS_SECRET_KEY="sk-from-the-environment")

    assert read_secret("secret-key", "OPS_SECRET_KEY", env) == "sk-from-the-environment"


def test_an_empty_secret_file_counts_as_missing(stocked, tmp_path):
    write_secrets(tmp_path / "secrets", api_key="")

    assert read_secret("api-key", "OPS_API_KEY", environ(tmp_path, stocked)) == VAULT_KEY


def test_vault_is_read_once_for_all_three_secrets(stocked, tmp_path):
    env = environ(tmp_path, stocked)

    for name, var in [
        ("secret-key", "OPS_SECRET_KEY"),
        ("api-key", "OPS_API_KEY"),
        ("db-url", "OPS_DB_URL"),
    ]:
        assert read_secret(name, var, env)

    assert sorted(r.path for r in stocked.state.requests) == [
        "/v1/secret/data/ops-api",
        "/v1/secret/data/ops-api-db",
    ]


def test_a_secret_vault_does_not_know_never_contacts_it(stocked, tmp_path):
    env = environ(tmp_path, stocked, OPS_OTHER="from-env")

    assert read_secret("other", "OPS_OTHER", env) == "from-env"
    assert stocked.state.requests == []


@pytest.mark.parametrize(
    ("break_vault", "words"),
    [
        (lambda v: setattr(v.state, "sealed", True), "sealed"),
        (lambda v: v.state.policies.clear(), "denied"),
        (lambda v: v.state.secrets.pop("ops-api-db"), "no such path"),
    ],
    ids=["sealed", "permission-denied", "missing-path"],
)
def test_a_failing_vault_is_improperly_configured_and_the_environment_is_not_used(
    stocked, tmp_path, break_vault, words
):
    break_vault(stocked)

    with pytest.raises(ImproperlyConfigured) as caught:
        read_secret("api-key", "OPS_API_KEY", environ(tmp_path, stocked))

    text = "".join(traceback.format_exception(caught.value))
    assert words in str(caught.value)
    assert stocked.url in str(caught.value)
    for value in (VAULT_TOKEN, VAULT_KEY, VAULT_DB_URL, VAULT_SECRET_KEY, ENV_KEY):
        assert value not in text
    # Nothing of hvac's or requests' exceptions is chained into the traceback.
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__ is True


def test_an_unreachable_vault_is_improperly_configured(closed_port_url, tmp_path):
    env = environ(tmp_path) | {"VAULT_ADDR": closed_port_url, "VAULT_TOKEN": VAULT_TOKEN}

    with pytest.raises(ImproperlyConfigured, match="unreachable") as caught:
        read_secret("api-key", "OPS_API_KEY", env)

    assert VAULT_TOKEN not in str(caught.value)


def test_an_unreadable_secret_file_is_an_error_not_a_fall_back(stocked, tmp_path):
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "api-key").write_bytes(b"\xff\xfe not utf-8")

    with pytest.raises(ImproperlyConfigured, match="api-key"):
        read_secret("api-key", "OPS_API_KEY", environ(tmp_path, stocked))
    assert stocked.state.requests == []
