"""Where secrets come from: one small function so another source (Vault) can be added in one place.

Order of precedence, highest first:
1. a file named after the secret in ``OPS_SECRETS_DIR`` (default ``/vault/secrets``), which is
   what the Vault agent injector writes into the pod;
2. the environment variable.

Values are stripped of surrounding whitespace (files written by ``echo`` end with a newline).
An empty value counts as unset.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_SECRETS_DIR = "/vault/secrets"


def secrets_dir() -> Path:
    """The directory holding secret files (``OPS_SECRETS_DIR``)."""
    return Path(os.environ.get("OPS_SECRETS_DIR") or DEFAULT_SECRETS_DIR)


def read_secret(name: str, env_var: str) -> str | None:
    """Return secret ``name``: the file ``<OPS_SECRETS_DIR>/<name>`` wins over ``env_var``.

    Returns None when neither source has a non-empty value. A file that exists but cannot be
    read is an error (raised), not a silent fall back to the environment: a broken secret mount
    must not quietly run with different credentials.
    """
    path = secrets_dir() / name
    if path.is_file():
        value = path.read_text(encoding="utf-8").strip()
        if value:
            return value
    value = os.environ.get(env_var, "").strip()
    return value or None
