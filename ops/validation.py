"""Input rules shared by the HTTP serializers and the services (pure functions, no I/O).

Kubernetes object names are DNS-1123 subdomains, namespaces DNS-1123 labels
(``k8s.io/apimachinery/pkg/util/validation``). Checking them here means a malformed name never
reaches the cluster, and never becomes part of a URL path we send to it.
"""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlsplit

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_LABEL_RE = re.compile(rf"^{_LABEL}$")
_SUBDOMAIN_RE = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
#: JSON Schema of a namespace and of an object name, for the OpenAPI document.
NAMESPACE_SCHEMA = {"type": "string", "pattern": _LABEL_RE.pattern, "maxLength": DNS1123_LABEL_MAX}
NAME_SCHEMA = {
    "type": "string",
    "pattern": _SUBDOMAIN_RE.pattern,
    "maxLength": DNS1123_SUBDOMAIN_MAX,
}
_AGE_RE = re.compile(r"^(\d{1,9})([smhdw])$")
_AGE_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def relative_age(value: str) -> timedelta | None:
    """A relative age as the CLIs write it (``90s``, ``30m``, ``24h``, ``7d``, ``2w``) as a
    timedelta; None when ``value`` is not one (or too long to be a timedelta)."""
    match = _AGE_RE.match(value.strip())
    if not match:
        return None
    amount, unit = match.groups()
    try:
        return timedelta(**{_AGE_UNITS[unit]: int(amount)})
    except OverflowError:
        return None


def namespace_problem(value: object) -> str | None:
    """Why ``value`` is not a valid namespace (DNS-1123 label), or None when it is."""
    if not isinstance(value, str):
        return "Must be a string."
    if not value:
        return "Must not be empty."
    if len(value) > DNS1123_LABEL_MAX:
        return f"Must be at most {DNS1123_LABEL_MAX} characters."
    if not _LABEL_RE.fullmatch(value):
        return (
            "Must be a DNS-1123 label: lower-case letters, digits and '-', "
            "starting and ending with a letter or digit."
        )
    return None


def name_problem(value: object) -> str | None:
    """Why ``value`` is not a valid object name (DNS-1123 subdomain), or None when it is."""
    if not isinstance(value, str):
        return "Must be a string."
    if not value:
        return "Must not be empty."
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        return f"Must be at most {DNS1123_SUBDOMAIN_MAX} characters."
    if not _SUBDOMAIN_RE.fullmatch(value):
        return (
            "Must be a DNS-1123 subdomain: lower-case letters, digits, '-' and '.', "
            "each part starting and ending with a letter or digit."
        )
    return None


API_KEY_NAME_MAX = 150
#: Actor names the code writes itself: the doors (``origin``) and a job without a requester.
RESERVED_KEY_NAMES = frozenset({"api", "cli", "job"})
#: ``cli:<OS user>`` is a management command's actor; ``api:``/``job:`` stay free for the same.
RESERVED_KEY_PREFIXES = ("cli:", "api:", "job:")


def api_key_name_problem(value: object) -> str | None:
    """Why ``value`` cannot name an API key, or None when it can.

    The name is the actor of the key's audit rows, so it must not pass for an actor the code
    writes itself: ``cli:root`` would read as a shell command run by root, ``job`` as a job
    step. Compared case-insensitively (``CLI:root`` reads the same to a person).
    """
    if not isinstance(value, str):
        return "Must be a string."
    name = value.strip()
    if not name:
        return "Must not be empty."
    if len(name) > API_KEY_NAME_MAX:
        return f"Must be at most {API_KEY_NAME_MAX} characters."
    folded = name.casefold()
    if folded in RESERVED_KEY_NAMES or folded.startswith(RESERVED_KEY_PREFIXES):
        return (
            f"{name!r} is reserved: names such as 'cli:<user>' and 'job' are the actors of "
            "management commands and job steps."
        )
    return None


def replicas_problem(value: object, *, maximum: int) -> str | None:
    """Why ``value`` is not a valid replica count in 0..maximum, or None when it is.

    Only a real integer counts: not a bool (``True`` is an int in Python), not a float (even
    ``2.0``), not a numeric string.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        return "Must be an integer (not a string, bool, float or null)."
    if value < 0:
        return "Must be at least 0."
    if value > maximum:
        return f"Must be at most {maximum}."
    return None


def notify_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a notification target's URL, or None. Never quotes the URL (a
    webhook URL is a credential)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    return None
