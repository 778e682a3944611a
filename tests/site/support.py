"""Helpers for the project-level tests: random secret values, secret files, and a Django
subprocess with exactly the environment a test gives (production settings are decided when
settings.py is imported, so they are tested in a process of their own)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SETTINGS = str(REPO / "apiops_site" / "settings.py")


def token(prefix: str) -> str:
    """A fresh random value, so a leak cannot hide behind a value another test registered."""
    return prefix + secrets.token_urlsafe(24)


def write_secrets(directory: Path, **files: str) -> Path:
    """Write secret files (``api_key="..."`` becomes ``api-key``), as the Vault agent does."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, value in files.items():
        (directory / name.replace("_", "-")).write_text(value + "\n", encoding="utf-8")
    return directory


def subprocess_env(tmp_path: Path, **env: str) -> dict[str, str]:
    """A bare environment for a Django subprocess: the venv on PATH and nothing inherited."""
    return {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "DJANGO_SETTINGS_MODULE": "apiops_site.settings",
        **env,
    }


def run_python(
    args: list[str], tmp_path: Path, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess:
    """Run ``python <args>`` from the repository root with only ``env`` (plus PATH, HOME)."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        env=subprocess_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
