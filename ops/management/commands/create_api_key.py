"""``manage.py create_api_key NAME [--namespaces a,b] [--operations ...] [--expires ...]``:
prints the key once."""

from __future__ import annotations

from datetime import UTC, timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from ops.extensions import operations
from ops.models import ApiKey
from ops.policy import ALL_OPERATIONS, APPROVE
from ops.validation import api_key_name_problem, namespace_problem


def parse_expiry(value: str):
    """An ISO 8601 datetime, or a duration from now: ``30d``, ``12h``, ``90m``."""
    units = {"d": "days", "h": "hours", "m": "minutes"}
    if value and value[-1] in units and value[:-1].isdigit():
        return timezone.now() + timedelta(**{units[value[-1]]: int(value[:-1])})
    parsed = parse_datetime(value)
    if parsed is None:
        raise CommandError(f"--expires {value!r}: use an ISO 8601 datetime or e.g. 30d, 12h")
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, UTC)
    if parsed <= timezone.now():
        raise CommandError(f"--expires {value!r} is in the past")
    return parsed


def parse_operations(value: str) -> list[str]:
    """``--operations``: known operation names, ``all`` and ``approve`` (exit 2 otherwise)."""
    names = [op.strip() for op in value.split(",") if op.strip()]
    known = {*operations(), ALL_OPERATIONS, APPROVE}
    unknown = [op for op in names if op not in known]
    if unknown or not names:
        raise CommandError(
            f"--operations {value!r}: "
            + (f"unknown {', '.join(unknown)}; " if unknown else "")
            + f"choose from {', '.join(sorted(known))}",
            returncode=2,
        )
    return list(dict.fromkeys(names))


class Command(BaseCommand):
    help = "Create a named API key (the name is the actor in the audit log); prints it once."

    def add_arguments(self, parser):
        parser.add_argument("name", help="actor name written into the audit log")
        parser.add_argument(
            "--namespaces",
            default="",
            help="comma list narrowing the allowed namespaces (default: all allowed ones)",
        )
        parser.add_argument("--expires", help="ISO 8601 datetime, or a duration such as 30d")
        parser.add_argument(
            "--operations",
            help=(
                "comma list of what the key may request: operation names (scale, delete-pod, "
                "delete-pvc, job types), 'all' (every operation) and 'approve' (approve or "
                "reject requests held for approval); default: every operation, not approve"
            ),
        )

    def handle(
        self,
        *args,
        name: str,
        namespaces: str,
        expires: str | None,
        operations: str | None,
        **options,
    ):
        name = name.strip()
        problem = api_key_name_problem(name)
        if problem:
            raise CommandError(f"NAME: {problem}")
        if name == settings.APIOPS["API_KEY_ACTOR"]:
            raise CommandError(f"{name!r} is the bootstrap key's actor name; choose another")
        scope = [ns.strip() for ns in namespaces.split(",") if ns.strip()]
        for ns in scope:
            problem = namespace_problem(ns)
            if problem:
                raise CommandError(f"--namespaces: {ns!r}: {problem}")
        allowed = set(settings.APIOPS["ALLOWED_NAMESPACES"])
        outside = sorted(set(scope) - allowed)
        if outside:
            self.stderr.write(
                f"warning: {', '.join(outside)} not in OPS_ALLOWED_NAMESPACES; "
                "the key cannot use them until they are"
            )
        granted = parse_operations(operations) if operations is not None else None
        expires_at = parse_expiry(expires) if expires else None
        with transaction.atomic():
            # One key per name is created here; a second one only by a rotation, with overlap.
            if ApiKey.objects.select_for_update().filter(name=name, active=True).exists():
                raise CommandError(
                    f"{name!r} already has an active key: rotate it "
                    f"(rotate_api_key {name} --overlap 24h) or revoke it (revoke_api_key {name})"
                )
            new = ApiKey.objects.issue(
                name=name, namespaces=scope, expires_at=expires_at, operations=granted
            )
        scope_text = ", ".join(scope) if scope else "all allowed namespaces"
        ops_text = ", ".join(granted) if granted is not None else "every operation"
        self.stderr.write(
            f"API key for {name} ({scope_text}; {ops_text}); it is shown only this once:"
        )
        self.stdout.write(new.raw)
