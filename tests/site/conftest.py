"""Fixtures for the project-level tests: the fake Vault of tests/deploy, a closed port, the API
clients of tests/ops, and settings.py executed with exactly the environment a test gives."""

from __future__ import annotations

import runpy
from collections.abc import Callable

import pytest

from apiops_site.secrets import forget_vault_secrets
from tests.deploy.conftest import closed_port_url, vault  # noqa: F401 - fixtures, reused
from tests.ops.conftest import anon, api, apiops  # noqa: F401 - fixtures, reused
from tests.site.support import SETTINGS

# Every variable settings.py or the Vault client reads: cleared before a test sets its own.
_VARS = [
    "ENV", "OPS_DEBUG", "OPS_API_KEY", "OPS_DB_URL", "OPS_SECRET_KEY", "OPS_ALLOWED_HOSTS",
    "OPS_SECRETS_DIR", "OPS_KUBECONFIG", "OPS_SSL_REDIRECT", "OPS_HSTS_SECONDS",
    "OPS_HSTS_INCLUDE_SUBDOMAINS", "OPS_HSTS_PRELOAD", "OPS_PROXY_SSL_HEADER", "OPS_LOG_FORMAT",
    "OPS_LOG_LEVEL", "VAULT_ADDR", "VAULT_TOKEN", "VAULT_ROLE", "VAULT_K8S_TOKEN_PATH",
    "VAULT_TIMEOUT", "KUBECONFIG",
]  # fmt: skip


@pytest.fixture(autouse=True)
def _fresh_vault_answers():
    """Each test asks Vault itself: nothing is kept from another test's Vault."""
    forget_vault_secrets()
    yield
    forget_vault_secrets()


@pytest.fixture
def load_settings(monkeypatch, tmp_path) -> Callable[..., dict]:
    """Execute settings.py in this process with exactly the given variables set.

    The secrets directory is an empty ``tmp_path/secrets`` unless OPS_SECRETS_DIR is given.
    """

    def run(**env: str) -> dict:
        for name in _VARS:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("OPS_SECRETS_DIR", str(tmp_path / "secrets"))
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return runpy.run_path(SETTINGS)

    return run
