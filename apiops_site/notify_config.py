"""``OPS_NOTIFY_TARGETS``: notification targets given by the environment (GitOps setups).

A JSON list of ``{"name", "kind", "url", "secret"?, "events": [...], "namespaces"?: [...]}``.
The URL and the secret may instead come from secret files named ``notify-<name>-url`` and
``notify-<name>-secret`` in ``OPS_SECRETS_DIR`` (a file wins, as for every secret), so they
need not sit in a ConfigMap. Anything malformed stops the process with a message naming the
target and field, never a URL or a secret.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from django.core.exceptions import ImproperlyConfigured

from apiops_site.secrets import read_secret, secrets_dir
from ops.validation import namespace_problem, notify_url_problem

KINDS = ("slack", "teams", "webhook")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_FIELDS = {"name", "kind", "url", "secret", "events", "namespaces"}


def _strings(value: object, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ImproperlyConfigured(f"{where} must be a list of non-empty strings")
    return [v.strip() for v in value]


def _target(item: object, index: int, environ: Mapping[str, str] | None) -> dict:
    if not isinstance(item, dict):
        raise ImproperlyConfigured(f"OPS_NOTIFY_TARGETS[{index}] is not an object")
    unknown = set(item) - _FIELDS
    if unknown:
        raise ImproperlyConfigured(
            f"OPS_NOTIFY_TARGETS[{index}] has unknown fields: {', '.join(sorted(unknown))}"
        )
    name = item.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ImproperlyConfigured(
            f"OPS_NOTIFY_TARGETS[{index}].name must be lower-case letters, digits and '-'"
        )
    where = f"OPS_NOTIFY_TARGETS target {name!r}"
    if item.get("kind") not in KINDS:
        raise ImproperlyConfigured(f"{where}: kind must be one of {', '.join(KINDS)}")
    env_url, env_secret = item.get("url"), item.get("secret")
    for field, value in (("url", env_url), ("secret", env_secret)):
        if value is not None and not isinstance(value, str):
            raise ImproperlyConfigured(f"{where}: {field} must be a string")
    # A secret file wins; the JSON's own value stands where an environment variable would.
    files = {"OPS_SECRETS_DIR": str(secrets_dir(environ))}
    url = read_secret(f"notify-{name}-url", "json", {**files, "json": env_url or ""})
    secret = read_secret(f"notify-{name}-secret", "json", {**files, "json": env_secret or ""})
    if not url:
        raise ImproperlyConfigured(f"{where}: no url (nor a notify-{name}-url secret file)")
    problem = notify_url_problem(url)
    if problem:
        raise ImproperlyConfigured(f"{where}: url {problem}")
    events = _strings(item.get("events"), f"{where}: events")
    namespaces = _strings(item.get("namespaces", []), f"{where}: namespaces")
    for ns in namespaces:
        if namespace_problem(ns):
            raise ImproperlyConfigured(f"{where}: namespace {ns!r} is not a DNS-1123 label")
    return {
        "name": name,
        "kind": item["kind"],
        "url": url,
        "secret": secret or "",
        "events": tuple(events),
        "namespaces": tuple(namespaces),
    }


def parse_notify_targets(raw: str | None, environ: Mapping[str, str] | None = None) -> tuple:
    """The targets of ``OPS_NOTIFY_TARGETS`` (``raw``), validated; () when unset or empty."""
    if raw is None or not raw.strip():
        return ()
    try:
        items = json.loads(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"OPS_NOTIFY_TARGETS is not JSON: {exc.msg}") from None
    if not isinstance(items, list):
        raise ImproperlyConfigured("OPS_NOTIFY_TARGETS must be a JSON list of targets")
    targets = [_target(item, i, environ) for i, item in enumerate(items)]
    names = [t["name"] for t in targets]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ImproperlyConfigured(f"OPS_NOTIFY_TARGETS names twice: {', '.join(duplicates)}")
    return tuple(targets)
