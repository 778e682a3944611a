"""Where secrets come from: one function, so every secret follows the same order.

Order of precedence, highest first:
1. a file named after the secret in ``OPS_SECRETS_DIR`` (default ``/vault/secrets``), which is
   what the Vault agent injector writes into the pod;
2. HashiCorp Vault itself (:mod:`apiops_site.vault`), when ``VAULT_ADDR`` is set: for pods
   without the injector. Vault is only asked when a file is missing, so a pod whose agent
   wrote the files never logs in, and it is asked once per process (the answer is kept);
3. the environment variable.

Values are stripped of surrounding whitespace (files written by ``echo`` end with a newline).
An empty value counts as unset. Every failure is ``ImproperlyConfigured`` with a message that
names the file or the Vault path and never a secret, so the process stops at startup with a
line an operator can act on.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from apiops_site.vault import VaultError, read_vault_secrets, vault_configured

DEFAULT_SECRETS_DIR = "/vault/secrets"

# secret file name -> the name read_vault_secrets() returns it under
VAULT_NAMES = {
    "api-key": "api_key",
    "db-url": "db_url",
    "secret-key": "secret_key",
    "audit-signing-key": "audit_signing_key",
}

# What Vault answered, per VAULT_* configuration: settings ask for three secrets, Vault is
# logged in to once.
_vault_answers: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}


def secrets_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The directory holding secret files (``OPS_SECRETS_DIR``)."""
    environ = os.environ if environ is None else environ
    return Path(environ.get("OPS_SECRETS_DIR") or DEFAULT_SECRETS_DIR)


def read_secret(name: str, env_var: str, environ: Mapping[str, str] | None = None) -> str | None:
    """Return secret ``name``: its file, else Vault, else ``env_var``; None when none has it.

    A file that exists but cannot be read is an error, not a silent fall back: a broken secret
    mount must not quietly run with different credentials. Likewise a Vault that is configured
    but sealed, unreachable or refusing stops the process instead of falling through to the
    environment.
    """
    environ = os.environ if environ is None else environ
    path = secrets_dir(environ) / name
    if path.is_file():
        try:
            value = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            raise ImproperlyConfigured(f"cannot read the secret file {path}: {reason}") from None
        if value:
            return value
    value = _from_vault(name, environ)
    if value:
        return value
    value = environ.get(env_var, "").strip()
    return value or None


def forget_vault_secrets() -> None:
    """Drop what Vault answered, so the next :func:`read_secret` asks again (tests, reloads)."""
    _vault_answers.clear()


def _from_vault(name: str, environ: Mapping[str, str]) -> str | None:
    vault_name = VAULT_NAMES.get(name)
    if vault_name is None or not vault_configured(environ):
        return None
    config = tuple(sorted((k, v) for k, v in environ.items() if k.startswith("VAULT_")))
    if config not in _vault_answers:
        try:
            _vault_answers[config] = read_vault_secrets(environ)
        except VaultError as exc:
            # The message names the address and path only (see apiops_site.vault); the chain is
            # dropped so no hvac or requests object ends up in a traceback.
            raise ImproperlyConfigured(f"cannot read secrets from Vault: {exc}") from None
    return _vault_answers[config].get(vault_name)
