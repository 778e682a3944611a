"""ENV=prod as a pod starts it: ``manage.py check --deploy`` passes with only the documented
variables, secrets come from files or Vault, and startup stops with a clear message (and
nothing secret in the output) when they cannot be had.

Each case runs Django in a subprocess, because production settings are decided when the
settings module is imported. The database URL names a host that does not exist: none of these
commands connects to it.
"""

from __future__ import annotations

import pytest

from tests.site.support import run_python, token, write_secrets

ALLOWED_HOSTS = "apiops.example.org"
DB_PASSWORD = token("db-pw-")
DB_URL = f"postgresql://apiops:{DB_PASSWORD}@db.invalid:5432/apiops"
API_KEY = token("api-key-")
SECRET_KEY = token("secret-key-") + token("-")  # long and varied: Django's W009 is quiet
VAULT_TOKEN = token("hvs.")
JWT = "eyJhbGciOiJSUzI1NiJ9." + token("")
EVERY_SECRET = (DB_PASSWORD, DB_URL, API_KEY, SECRET_KEY, VAULT_TOKEN, JWT)


def manage(tmp_path, *args: str, **env: str):
    return run_python(["manage.py", *args], tmp_path, **env)


def assert_no_secret_in(result) -> None:
    output = result.stdout + result.stderr
    for value in EVERY_SECRET:
        assert value not in output


@pytest.fixture
def secret_files(tmp_path):
    return write_secrets(
        tmp_path / "vault-secrets", api_key=API_KEY, db_url=DB_URL, secret_key=SECRET_KEY
    )


@pytest.fixture
def stocked(vault, tmp_path):
    """A Vault with ApiOps's secrets, a Kubernetes role bound to our JWT, and the env for it."""
    vault.state.jwt = JWT
    vault.state.secrets["ops-api"] = {"api_key": API_KEY, "secret_key": SECRET_KEY}
    vault.state.secrets["ops-api-db"] = {"db_url": DB_URL}
    vault.state.login_policy = {"ops-api", "ops-api-db"}
    jwt_file = tmp_path / "sa-token"
    jwt_file.write_text(JWT, encoding="utf-8")
    env = {
        "VAULT_ADDR": vault.url,
        "VAULT_ROLE": "apiops",
        "VAULT_K8S_TOKEN_PATH": str(jwt_file),
        "VAULT_TIMEOUT": "5",
    }
    return vault, env


def test_prod_passes_check_deploy_with_the_secret_files_and_allowed_hosts(tmp_path, secret_files):
    result = manage(
        tmp_path,
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        ENV="prod",
        OPS_SECRETS_DIR=str(secret_files),
        OPS_ALLOWED_HOSTS=ALLOWED_HOSTS,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert_no_secret_in(result)


def test_prod_passes_check_deploy_with_secrets_in_the_environment(tmp_path):
    result = manage(
        tmp_path,
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        ENV="prod",
        OPS_SECRETS_DIR=str(tmp_path / "none"),
        OPS_ALLOWED_HOSTS=ALLOWED_HOSTS,
        OPS_API_KEY=API_KEY,
        OPS_DB_URL=DB_URL,
        OPS_SECRET_KEY=SECRET_KEY,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert_no_secret_in(result)


def test_prod_reads_every_secret_from_vault_and_passes_check_deploy(tmp_path, stocked):
    vault, env = stocked

    result = manage(
        tmp_path,
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        ENV="prod",
        OPS_SECRETS_DIR=str(tmp_path / "none"),
        OPS_ALLOWED_HOSTS=ALLOWED_HOSTS,
        **env,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert_no_secret_in(result)
    # One login, then each KV path read once, for all three secrets.
    assert [(r.method, r.path) for r in vault.state.requests] == [
        ("POST", "/v1/auth/kubernetes/login"),
        ("GET", "/v1/secret/data/ops-api"),
        ("GET", "/v1/secret/data/ops-api-db"),
    ]


def test_injected_files_mean_no_vault_login_at_startup(tmp_path, stocked, secret_files):
    vault, env = stocked

    result = manage(
        tmp_path,
        "check",
        ENV="prod",
        OPS_SECRETS_DIR=str(secret_files),
        OPS_ALLOWED_HOSTS=ALLOWED_HOSTS,
        **env,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert vault.state.requests == []


def test_a_sealed_vault_stops_startup_with_a_clear_message_and_no_secret(tmp_path, stocked):
    vault, env = stocked
    vault.state.sealed = True

    result = manage(
        tmp_path,
        "check",
        ENV="prod",
        OPS_SECRETS_DIR=str(tmp_path / "none"),
        OPS_ALLOWED_HOSTS=ALLOWED_HOSTS,
        # Would be used if a sealed Vault fell through to the environment: it must not.
        OPS_API_KEY=token("env-key-"),
        OPS_SECRET_KEY=SECRET_KEY,
        **env,
    )

    assert result.returncode == 1
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("django.core.exceptions.ImproperlyConfigured: ")
    assert "cannot read secrets from Vault" in last_line
    assert f"Vault at {vault.url} is sealed" in last_line
    assert_no_secret_in(result)


def test_a_vault_token_that_vault_refuses_is_not_printed(tmp_path, vault):
    result = manage(
        tmp_path,
        "check",
        ENV="prod",
        OPS_SECRETS_DIR=str(tmp_path / "none"),
        OPS_ALLOWED_HOSTS=ALLOWED_HOSTS,
        VAULT_ADDR=vault.url,
        VAULT_TOKEN=VAULT_TOKEN,
    )

    assert result.returncode == 1
    assert "denied" in result.stderr.strip().splitlines()[-1]
    assert_no_secret_in(result)


def test_an_unreachable_vault_stops_startup_with_a_clear_message(tmp_path, closed_port_url):
    result = manage(
        tmp_path,
        "check",
        ENV="prod",
        OPS_SECRETS_DIR=str(tmp_path / "none"),
        OPS_ALLOWED_HOSTS=ALLOWED_HOSTS,
        VAULT_ADDR=closed_port_url,
        VAULT_TOKEN=VAULT_TOKEN,
    )

    assert result.returncode == 1
    last_line = result.stderr.strip().splitlines()[-1]
    assert "ImproperlyConfigured" in last_line
    assert f"Vault at {closed_port_url} is unreachable" in last_line
    assert_no_secret_in(result)


@pytest.mark.parametrize(
    ("missing", "named"),
    [("api_key", "OPS_API_KEY"), ("secret_key", "OPS_SECRET_KEY"), ("db_url", "OPS_DB_URL")],
)
def test_prod_refuses_to_start_without_a_secret(tmp_path, missing, named):
    files = {"api_key": API_KEY, "db_url": DB_URL, "secret_key": SECRET_KEY}
    del files[missing]

    result = manage(
        tmp_path,
        "check",
        ENV="prod",
        OPS_SECRETS_DIR=str(write_secrets(tmp_path / "secrets", **files)),
        OPS_ALLOWED_HOSTS=ALLOWED_HOSTS,
    )

    assert result.returncode == 1
    last_line = result.stderr.strip().splitlines()[-1]
    assert "ImproperlyConfigured" in last_line
    assert named in last_line
    assert_no_secret_in(result)


# --- the HTTPS settings, read in this process --------------------------------------------------


PROD = {"ENV": "prod", "OPS_SECRET_KEY": SECRET_KEY, "OPS_API_KEY": API_KEY, "OPS_DB_URL": DB_URL}


def test_prod_redirects_to_https_except_health_and_sends_hsts(load_settings):
    s = load_settings(**PROD)

    assert s["SECURE_SSL_REDIRECT"] is True
    assert s["SECURE_REDIRECT_EXEMPT"] == [r"^health/"]
    assert s["SECURE_HSTS_SECONDS"] == 31_536_000
    assert s["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert s["SECURE_PROXY_SSL_HEADER"] == ("HTTP_X_FORWARDED_PROTO", "https")
    assert s["SESSION_COOKIE_SECURE"] is True
    assert s["CSRF_COOKIE_SECURE"] is True
    assert s["LOGGING"]["handlers"]["console"]["formatter"] == "json"


def test_local_development_stays_on_plain_http(load_settings):
    s = load_settings()

    assert s["SECURE_SSL_REDIRECT"] is False
    assert s["SECURE_HSTS_SECONDS"] == 0
    assert s["SECURE_PROXY_SSL_HEADER"] is None
    assert s["SESSION_COOKIE_SECURE"] is False
    assert s["LOGGING"]["handlers"]["console"]["formatter"] == "plain"


def test_the_https_settings_can_be_tuned(load_settings):
    s = load_settings(
        **PROD,
        OPS_SSL_REDIRECT="false",
        OPS_HSTS_SECONDS="300",
        OPS_HSTS_PRELOAD="true",
        OPS_PROXY_SSL_HEADER="X-Scheme",
        OPS_LOG_FORMAT="plain",
    )

    assert s["SECURE_SSL_REDIRECT"] is False
    assert s["SECURE_HSTS_SECONDS"] == 300
    assert s["SECURE_HSTS_PRELOAD"] is True
    assert s["SILENCED_SYSTEM_CHECKS"] == []
    assert s["SECURE_PROXY_SSL_HEADER"] == ("HTTP_X_SCHEME", "https")
    assert s["LOGGING"]["handlers"]["console"]["formatter"] == "plain"


def test_an_empty_proxy_header_turns_it_off(load_settings):
    assert load_settings(**PROD, OPS_PROXY_SSL_HEADER="")["SECURE_PROXY_SSL_HEADER"] is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OPS_SSL_REDIRECT", "sometimes"),
        ("OPS_HSTS_SECONDS", "a year"),
        ("OPS_PROXY_SSL_HEADER", "X-Forwarded-Proto: https"),
        ("OPS_LOG_FORMAT", "xml"),
        ("OPS_LOG_LEVEL", "LOUD"),
    ],
)
def test_a_malformed_production_variable_names_itself(load_settings, name, value):
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match=name):
        load_settings(**PROD, **{name: value})
