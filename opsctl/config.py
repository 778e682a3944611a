"""Contexts in ``$XDG_CONFIG_HOME/opsctl/config.yaml`` (else ``~/.config/...``) and how the
server and key are chosen: flags, then the environment (``OPSCTL_SERVER``, ``OPSCTL_KEY``),
then the context. A context names where its key lives (an environment variable or a file);
the key itself is stored only with ``--insecure-key``, and then the file must be private."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

import yaml

from opsctl.errors import BAD_INPUT, CliError


def config_path() -> Path:
    """Where the contexts live (``XDG_CONFIG_HOME`` respected)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "opsctl" / "config.yaml"


def load() -> dict:
    """The config file's data (empty when there is none)."""
    path = config_path()
    if not path.exists():
        return {"contexts": {}}
    try:
        text = path.read_text()
        data = yaml.safe_load(text) or {}
    except (OSError, yaml.YAMLError) as e:
        raise CliError(f"cannot read {path}: {e}", BAD_INPUT, "bad_config") from None
    if not isinstance(data, dict) or not isinstance(data.get("contexts", {}), dict):
        raise CliError(f"{path} is not an opsctl config", BAD_INPUT, "bad_config")
    data.setdefault("contexts", {})
    if _holds_a_key(data) and path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CliError(
            f"{path} holds a key and others can read it: chmod 600 {path}",
            BAD_INPUT,
            "config_not_private",
        )
    return data


def save(data: dict) -> Path:
    """Write the config, private (0600) from its creation."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        yaml.safe_dump(data, out, default_flow_style=False, sort_keys=False)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


def _holds_a_key(data: dict) -> bool:
    return any(isinstance(c, dict) and c.get("key") for c in data["contexts"].values())


def set_context(name: str, entry: dict) -> Path:
    data = load()
    data["contexts"][name] = {k: v for k, v in entry.items() if v is not None}
    data.setdefault("current-context", name)
    return save(data)


def use_context(name: str) -> Path:
    data = load()
    if name not in data["contexts"]:
        raise CliError(f"no context named {name!r}", BAD_INPUT, "no_such_context")
    data["current-context"] = name
    return save(data)


@dataclass
class Target:
    """The server to talk to and how."""

    server: str
    key: str | None
    ca_bundle: str | None
    context: str | None


def resolve(*, server: str | None, context: str | None) -> Target:
    """Server and key: flag, then environment, then the chosen (or current) context."""
    env_server = os.environ.get("OPSCTL_SERVER") or None
    env_key = os.environ.get("OPSCTL_KEY") or None
    data = load() if (context or not (server or env_server) or not env_key) else None
    entry: dict = {}
    name = None
    if data is not None:
        name = context or data.get("current-context")
        if context and context not in data["contexts"]:
            raise CliError(f"no context named {context!r}", BAD_INPUT, "no_such_context")
        entry = (data["contexts"].get(name) or {}) if name else {}
    chosen_server = server or env_server or entry.get("server")
    if not chosen_server:
        raise CliError(
            "no server: give --server, set OPSCTL_SERVER, or run opsctl config set-context",
            BAD_INPUT,
            "no_server",
        )
    key = env_key or _context_key(name, entry)
    return Target(chosen_server, key, entry.get("ca-bundle"), name)


def _context_key(name: str | None, entry: dict) -> str | None:
    if entry.get("key-env"):
        var = entry["key-env"]
        value = os.environ.get(var)
        if not value:
            raise CliError(
                f"context {name!r} reads its key from ${var}, which is not set",
                BAD_INPUT,
                "no_key",
            )
        return value
    if entry.get("key-file"):
        path = Path(entry["key-file"]).expanduser()
        try:
            return path.read_text().strip()
        except OSError as e:
            raise CliError(
                f"context {name!r}: cannot read its key file: {e}", BAD_INPUT, "no_key"
            ) from None
    return entry.get("key")
