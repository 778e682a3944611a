"""apiops_site.vault against a Vault-shaped HTTP server on 127.0.0.1.

Covers Kubernetes auth and token auth, KV v2 reads of secret/ops-api and secret/ops-api-db,
and every failure a pod meets at startup (sealed, unreachable, hung, denied, missing path or
key, wrong engine version), each ending in a VaultError that names the address and the path
and never carries a token, the JWT or a secret value, in the message or in the logs.
"""

from __future__ import annotations

import logging
import secrets
import traceback
from pathlib import Path

import pytest

from apiops_site.vault import REDACTED, VaultError, read_vault_secrets

from .fake_vault import FakeVault

API_KEY = "ak-" + secrets.token_urlsafe(24)
DB_URL = f"postgresql://apiops:{secrets.token_urlsafe(16)}@db.internal:5432/apiops"
SECRET_KEY = "sk-" + secrets.token_urlsafe(40)
JWT = "eyJhbGciOiJSUzI1NiJ9." + secrets.token_urlsafe(64)
ROOT_TOKEN = "hvs." + secrets.token_urlsafe(24)
EVERY_SECRET = (API_KEY, DB_URL, SECRET_KEY, JWT, ROOT_TOKEN)


@pytest.fixture
def stocked(vault: FakeVault, tmp_path: Path) -> tuple[FakeVault, dict[str, str]]:
    """A Vault holding ApiOps's secrets, a role bound to our JWT, and the env to reach it."""
    vault.state.jwt = JWT
    vault.state.secrets["ops-api"] = {"api_key": API_KEY, "secret_key": SECRET_KEY}
    vault.state.secrets["ops-api-db"] = {"db_url": DB_URL}
    vault.state.login_policy = {"ops-api", "ops-api-db"}
    token_file = tmp_path / "token"
    token_file.write_text(JWT + "\n", encoding="utf-8")
    env = {
        "VAULT_ADDR": vault.url,
        "VAULT_ROLE": "apiops",
        "VAULT_K8S_TOKEN_PATH": str(token_file),
        "VAULT_TIMEOUT": "5",
    }
    return vault, env


def assert_no_secret_in(text: str) -> None:
    for value in EVERY_SECRET:
        assert value not in text


def failure_text(err: pytest.ExceptionInfo[VaultError]) -> str:
    """Everything a log line of this exception could show: message, chain, traceback."""
    return "".join(traceback.format_exception(err.value))


def test_kubernetes_login_then_kv_v2_reads_return_the_secrets(stocked):
    vault, env = stocked

    got = read_vault_secrets(env)

    assert got == {"api_key": API_KEY, "db_url": DB_URL, "secret_key": SECRET_KEY}
    login, *reads = vault.state.requests
    assert (login.method, login.path) == ("POST", "/v1/auth/kubernetes/login")
    assert login.body == {"role": "apiops", "jwt": JWT}
    assert login.token is None
    assert sorted((r.method, r.path) for r in reads) == [
        ("GET", "/v1/secret/data/ops-api"),
        ("GET", "/v1/secret/data/ops-api-db"),
    ]
    issued = next(iter(t for t in vault.state.policies if t.startswith("hvs.")))
    assert all(r.token == issued for r in reads)


def test_vault_token_is_used_without_a_login(stocked):
    vault, env = stocked
    vault.grant(ROOT_TOKEN, "ops-api", "ops-api-db")
    env = {"VAULT_ADDR": vault.url, "VAULT_TOKEN": ROOT_TOKEN}

    got = read_vault_secrets(env)

    assert got["api_key"] == API_KEY
    assert got["db_url"] == DB_URL
    assert [r.path for r in vault.state.requests if r.method == "POST"] == []
    assert {r.token for r in vault.state.requests} == {ROOT_TOKEN}


def test_without_vault_addr_nothing_is_read_and_the_result_is_empty(vault):
    assert read_vault_secrets({"VAULT_ROLE": "apiops", "VAULT_TOKEN": ROOT_TOKEN}) == {}
    assert vault.state.requests == []


def test_custom_auth_and_kv_mounts_are_honoured(stocked):
    vault, env = stocked
    vault.state.auth_mount = "k8s-prod"
    vault.state.kv_mount = "apps"
    env = {**env, "VAULT_K8S_AUTH_MOUNT": "k8s-prod", "VAULT_KV_MOUNT": "apps"}

    assert read_vault_secrets(env)["db_url"] == DB_URL
    assert {r.path for r in vault.state.requests} == {
        "/v1/auth/k8s-prod/login",
        "/v1/apps/data/ops-api",
        "/v1/apps/data/ops-api-db",
    }


def test_secret_key_is_optional_in_vault(stocked):
    vault, env = stocked
    vault.state.secrets["ops-api"] = {"api_key": API_KEY}

    assert read_vault_secrets(env) == {"api_key": API_KEY, "db_url": DB_URL}


def test_sealed_vault_is_a_clear_error_naming_address_and_call(stocked):
    vault, env = stocked
    vault.state.sealed = True

    with pytest.raises(VaultError) as err:
        read_vault_secrets(env)

    message = str(err.value)
    assert "sealed" in message
    assert vault.url in message
    assert "Vault is sealed" in message
    assert "auth/kubernetes" in message
    assert_no_secret_in(failure_text(err))


def test_vault_sealed_between_login_and_read_names_the_secret_path(stocked):
    vault, env = stocked
    vault.state.seal_after = 1

    with pytest.raises(VaultError) as err:
        read_vault_secrets(env)

    assert "sealed" in str(err.value)
    assert "reading secret/ops-api " in str(err.value)
    assert [r.path for r in vault.state.requests] == [
        "/v1/auth/kubernetes/login",
        "/v1/secret/data/ops-api",
    ]
    assert_no_secret_in(failure_text(err))


def test_unreachable_vault_is_a_clear_error(stocked, closed_port_url):
    _, env = stocked
    env = {**env, "VAULT_ADDR": closed_port_url}

    with pytest.raises(VaultError) as err:
        read_vault_secrets(env)

    assert "unreachable" in str(err.value)
    assert closed_port_url in str(err.value)
    assert_no_secret_in(failure_text(err))


def test_a_vault_that_never_answers_is_cut_off_by_the_timeout(stocked):
    vault, env = stocked
    vault.state.hang = True
    env = {**env, "VAULT_TIMEOUT": "0.3"}

    with pytest.raises(VaultError) as err:
        read_vault_secrets(env)

    assert "did not answer within 0.3 s" in str(err.value)
    assert vault.url in str(err.value)


def test_a_wrong_role_is_reported_with_vaults_reason(stocked):
    _, env = stocked
    env = {**env, "VAULT_ROLE": "someone-else"}

    with pytest.raises(VaultError) as err:
        read_vault_secrets(env)

    assert "invalid role name" in str(err.value)
    assert "someone-else" in str(err.value)
    assert_no_secret_in(failure_text(err))


def test_a_rejected_jwt_is_permission_denied_and_the_jwt_is_not_shown(stocked):
    vault, env = stocked
    vault.state.jwt = "a-different-token"

    with pytest.raises(VaultError) as err:
        read_vault_secrets(env)

    assert "denied login" in str(err.value)
    assert "permission denied" in str(err.value)
    assert_no_secret_in(failure_text(err))


def test_a_server_echoing_the_jwt_in_its_error_is_redacted(stocked):
    vault, env = stocked
    vault.state.jwt = "a-different-token"
    vault.state.echo_jwt_in_errors = True

    with pytest.raises(VaultError) as err:
        read_vault_secrets(env)

    assert REDACTED in str(err.value)
    assert_no_secret_in(failure_text(err))


def test_a_token_without_read_permission_names_the_path(stocked):
    vault, env = stocked
    vault.grant(ROOT_TOKEN, "ops-api")
    env = {"VAULT_ADDR": vault.url, "VAULT_TOKEN": ROOT_TOKEN}

    with pytest.raises(VaultError) as err:
        read_vault_secrets(env)

    assert "denied reading secret/ops-api-db" in str(err.value)
    assert "permission denied" in str(err.value)
    assert_no_secret_in(failure_text(err))


def test_a_missing_secret_path_is_a_404_error(stocked):
    vault, env = stocked
    vault.state.secrets.pop("ops-api-db")

    with pytest.raises(VaultError) as err:
        read_vault_secrets(env)

    assert "no such path" in str(err.value)
    assert "secret/ops-api-db" in str(err.value)


def test_a_missing_key_names_the_key_and_path_but_no_value(stocked):
    vault, env = stocked
    vault.state.secrets["ops-api-db"] = {"database_url": DB_URL}

    with pytest.raises(VaultError) as err:
        read_vault_secrets(env)

    assert "'db_url'" in str(err.value)
    assert "secret/ops-api-db" in str(err.value)
    assert_no_secret_in(failure_text(err))


def test_a_kv_version_1_mount_is_reported_as_such(stocked):
    vault, env = stocked
    vault.state.kv_v1_shape = True

    with pytest.raises(VaultError) as err:
        read_vault_secrets(env)

    assert "KV version 2" in str(err.value)
    assert_no_secret_in(failure_text(err))


def test_a_missing_service_account_token_file_is_reported_by_path(stocked, tmp_path):
    vault, env = stocked
    missing = tmp_path / "no-such-token"
    env = {**env, "VAULT_K8S_TOKEN_PATH": str(missing)}

    with pytest.raises(VaultError) as err:
        read_vault_secrets(env)

    assert str(missing) in str(err.value)
    assert vault.state.requests == []


def test_vault_addr_without_any_credentials_is_an_error(vault):
    with pytest.raises(VaultError) as err:
        read_vault_secrets({"VAULT_ADDR": vault.url})

    assert "neither VAULT_ROLE" in str(err.value)


def test_the_process_environment_is_not_consulted_behind_the_callers_back(stocked, monkeypatch):
    """hvac would pick up VAULT_TOKEN from os.environ; only the mapping we are given counts."""
    vault, env = stocked
    monkeypatch.setenv("VAULT_TOKEN", ROOT_TOKEN)

    read_vault_secrets(env)

    assert ROOT_TOKEN not in {r.token for r in vault.state.requests}
    assert vault.state.requests[0].token is None

    vault.state.requests.clear()
    with pytest.raises(VaultError, match="neither VAULT_ROLE"):
        read_vault_secrets({"VAULT_ADDR": vault.url})
    assert vault.state.requests == []


def test_a_malformed_timeout_is_rejected(vault):
    with pytest.raises(VaultError, match="VAULT_TIMEOUT"):
        read_vault_secrets(
            {"VAULT_ADDR": vault.url, "VAULT_TOKEN": ROOT_TOKEN, "VAULT_TIMEOUT": "x"}
        )


def test_secrets_never_reach_the_logs_on_success_or_failure(stocked, caplog):
    vault, env = stocked
    caplog.set_level(logging.DEBUG)

    read_vault_secrets(env)
    vault.state.secrets["ops-api-db"] = {}
    with pytest.raises(VaultError):
        read_vault_secrets(env)
    vault.state.sealed = True
    with pytest.raises(VaultError):
        read_vault_secrets(env)

    logged = "\n".join(
        [r.getMessage() for r in caplog.records]
        + [str(r.args) for r in caplog.records]
        + [caplog.text]
    )
    assert "read api_key, db_url, secret_key from Vault" in logged
    assert_no_secret_in(logged)
