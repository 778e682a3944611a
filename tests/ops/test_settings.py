"""Settings are read strictly: malformed values stop the process with ImproperlyConfigured,
secret files win over the environment, and ENV=prod refuses DEBUG, a missing key or database
URL, and kubesim. Each case executes settings.py afresh with its own environment."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

SETTINGS = str(Path(__file__).resolve().parents[2] / "apiops_site" / "settings.py")
_VARS = [
    "ENV", "OPS_DEBUG", "OPS_API_KEY", "OPS_DB_URL", "OPS_SECRET_KEY", "OPS_ALLOWED_HOSTS",
    "OPS_ALLOWED_NAMESPACES", "OPS_MAX_REPLICAS", "OPS_TRUSTED_PROXIES", "OPS_SECRETS_DIR",
    "OPS_KUBECONFIG", "OPS_K8S_TIMEOUT", "OPS_API_KEY_ACTOR", "KUBECONFIG",
    "OPS_JOB_TICK_BUDGET", "OPS_Q_TIMEOUT", "OPS_Q_RETRY",
]  # fmt: skip


@pytest.fixture
def load(monkeypatch, tmp_path):
    """Execute settings.py with exactly the given variables set (secrets dir: empty tmp)."""

    def run(**env: str) -> dict:
        for name in _VARS:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("OPS_SECRETS_DIR", str(tmp_path / "secrets"))
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return runpy.run_path(SETTINGS)

    return run


def _kubeconfig(tmp_path: Path, name: str) -> str:
    path = tmp_path / f"{name}.kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters: [{{name: {name}, cluster: {{server: 'https://10.0.0.1:6443'}}}}]\n"
        f"contexts: [{{name: {name}, context: {{cluster: {name}, user: u}}}}]\n"
        f"current-context: {name}\nusers: [{{name: u, user: {{}}}}]\n"
    )
    return str(path)


def test_defaults_give_a_local_development_setup(load):
    s = load()

    assert s["ENV"] == "local"
    assert s["DEBUG"] is False
    assert s["APIOPS"]["ALLOWED_NAMESPACES"] == ("prod", "staging")
    assert s["APIOPS"]["MAX_REPLICAS"] == 100
    assert s["APIOPS"]["KUBECONFIG"] is None
    assert s["APIOPS"]["API_KEY"] is None
    assert s["DATABASES"]["default"]["ENGINE"] == "apiops_site.db"


def test_a_developers_kubeconfig_variable_is_ignored(load, tmp_path):
    s = load(KUBECONFIG=_kubeconfig(tmp_path, "real-cluster"))

    assert s["APIOPS"]["KUBECONFIG"] is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ENV", "production"),
        ("OPS_DEBUG", "maybe"),
        ("OPS_MAX_REPLICAS", "ten"),
        ("OPS_MAX_REPLICAS", "-1"),
        ("OPS_MAX_REPLICAS", "2.5"),
        ("OPS_ALLOWED_NAMESPACES", "prod,Kube_System"),
        ("OPS_TRUSTED_PROXIES", "10.0.0.0/33"),
        ("OPS_TRUSTED_PROXIES", "not-a-cidr"),
        ("OPS_K8S_TIMEOUT", "soon"),
        ("OPS_DB_URL", "sqlite:///db.sqlite3"),
        ("OPS_API_KEY", "short"),
    ],
)
def test_a_malformed_value_is_improperly_configured_naming_the_variable(load, name, value):
    with pytest.raises(ImproperlyConfigured) as caught:
        load(**{name: value})

    assert name in str(caught.value)


def test_values_are_parsed(load):
    s = load(
        OPS_ALLOWED_NAMESPACES="a, b ,c",
        OPS_MAX_REPLICAS="7",
        OPS_TRUSTED_PROXIES="10.0.0.0/8, ::1/128",
        OPS_DB_URL="postgres://u:p@db.example:5433/apiops",
    )

    assert s["APIOPS"]["ALLOWED_NAMESPACES"] == ("a", "b", "c")
    assert s["APIOPS"]["MAX_REPLICAS"] == 7
    assert [str(n) for n in s["APIOPS"]["TRUSTED_PROXIES"]] == ["10.0.0.0/8", "::1/128"]
    db = s["DATABASES"]["default"]
    assert (db["HOST"], db["PORT"], db["NAME"]) == ("db.example", 5433, "apiops")
    assert s["DATABASES"]["audit"]["NAME"] == "apiops"
    assert s["DATABASES"]["audit"]["ATOMIC_REQUESTS"] is False


def test_secret_files_win_over_the_environment(load, tmp_path):
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "api-key").write_text("key-from-the-file-0123456789\n")
    (secrets / "db-url").write_text("postgres://file@filedb/apiops\n")
    (secrets / "secret-key").write_text("secret-from-file")

    s = load(OPS_API_KEY="key-from-the-environment-0123", OPS_DB_URL="postgres://env@envdb/x")

    assert s["APIOPS"]["API_KEY"] == "key-from-the-file-0123456789"
    assert s["DATABASES"]["default"]["HOST"] == "filedb"
    assert s["SECRET_KEY"] == "secret-from-file"


PROD = {
    "ENV": "prod",
    "OPS_SECRET_KEY": "s" * 50,
    "OPS_API_KEY": "k" * 32,
    "OPS_DB_URL": "postgres://apiops:pw@db.example:5432/apiops",
}


def test_prod_starts_with_a_key_a_secret_and_a_real_cluster(load, tmp_path):
    s = load(**PROD, OPS_KUBECONFIG=_kubeconfig(tmp_path, "real-cluster"))

    assert s["ENV"] == "prod"


@pytest.mark.parametrize(
    ("extra", "missing", "message"),
    [
        ({"OPS_DEBUG": "true"}, None, "DEBUG"),
        ({}, "OPS_API_KEY", "OPS_API_KEY"),
        ({}, "OPS_SECRET_KEY", "OPS_SECRET_KEY"),
        ({}, "OPS_DB_URL", "OPS_DB_URL"),
    ],
)
def test_prod_refuses_debug_and_missing_secrets(load, extra, missing, message):
    env = {**PROD, **extra}
    env.pop(missing, None)

    with pytest.raises(ImproperlyConfigured, match=message):
        load(**env)


def test_prod_never_falls_back_to_the_embedded_database(load):
    env = {**PROD}
    del env["OPS_DB_URL"]

    with pytest.raises(ImproperlyConfigured, match="ENV=prod needs OPS_DB_URL"):
        load(**env)


def test_prod_takes_its_database_url_from_the_secret_file(load, tmp_path):
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "db-url").write_text("postgres://apiops:pw@filedb:5432/apiops\n")
    env = {**PROD}
    del env["OPS_DB_URL"]

    s = load(**env)

    assert s["DATABASES"]["default"]["HOST"] == "filedb"
    assert s["DATABASES"]["default"]["ENGINE"] == "django.db.backends.postgresql"


def test_prod_refuses_a_kubesim_kubeconfig(load, tmp_path):
    with pytest.raises(ImproperlyConfigured, match="kubesim"):
        load(**PROD, OPS_KUBECONFIG=_kubeconfig(tmp_path, "kubesim"))


# The jobs' knobs: a tick's polling budget must stay under django-q2's task timeout, or every
# tick that uses its budget is killed mid-step.


def test_a_tick_budget_under_the_task_timeout_is_accepted(load):
    s = load(OPS_JOB_TICK_BUDGET="60", OPS_Q_TIMEOUT="120")

    assert s["APIOPS"]["JOB_TICK_BUDGET"] == 60.0
    assert s["Q_CLUSTER"]["timeout"] == 120


@pytest.mark.parametrize(
    ("budget", "timeout"), [("120", "120"), ("300", "120"), ("130", None)], ids=str
)
def test_a_tick_budget_at_or_over_the_task_timeout_is_refused(load, budget, timeout):
    env = {"OPS_JOB_TICK_BUDGET": budget}
    if timeout is not None:
        env["OPS_Q_TIMEOUT"] = timeout
    with pytest.raises(ImproperlyConfigured, match=r"OPS_JOB_TICK_BUDGET=.* must be under"):
        load(**env)
