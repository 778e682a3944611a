"""What the ops management commands share: the CLI actor, service errors turned into
``CommandError`` with an exit code, argument parsing and plain-text tables.

The commands call the same services as the HTTP API, so they raise the same
:mod:`ops.errors` classes; here those become one readable line and an exit code a script can
branch on, never a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from rest_framework.utils.encoders import JSONEncoder

from ops.actors import Actor
from ops.errors import OpsError
from ops.validation import relative_age

#: Exit codes by the HTTP status the same refusal gets from the API; anything else is 1.
#: 2 is also what argparse uses for a malformed command line: both mean "bad arguments".
EXIT_INVALID = 2
EXIT_DENIED = 3
EXIT_NOT_FOUND = 4
EXIT_CONFLICT = 5
#: The request was held for approval (OPS_APPROVAL_REQUIRED): nothing was done yet.
EXIT_HELD = 8
#: A ``--timeout`` passed before what the command waits for happened (as opsctl's 7).
EXIT_TIMED_OUT = 7
_EXIT_BY_STATUS = {400: EXIT_INVALID, 403: EXIT_DENIED, 404: EXIT_NOT_FOUND, 409: EXIT_CONFLICT}


class OpsCommand(BaseCommand):
    """Base of the operators' commands: they start without Django's system checks, which
    import every URL and view and belong to ``check``, ``migrate`` and the server."""

    requires_system_checks: list[str] = []


class DeleteCommand(OpsCommand):
    """Base of ``ops_delete_pod`` and ``ops_delete_pvc``: ``NAMESPACE NAME [--dry-run]``,
    the service behind ``DELETE .../{pods|persistentvolumeclaims}/{name}``."""

    #: The object as the name argument's help and the result line name it.
    described = ""
    noun = ""

    def delete(self, **kwargs):
        """The service (``services.pod_delete`` or ``services.pvc_delete``)."""
        raise NotImplementedError

    def add_arguments(self, parser):
        parser.add_argument("namespace", help="namespace (must be in OPS_ALLOWED_NAMESPACES)")
        add_dry_run_option(parser)
        parser.add_argument("name", help=f"name of the {self.described}")

    def handle(self, *args, namespace: str, name: str, dry_run: bool, **options):
        with service_errors():
            result = self.delete(
                actor=cli_actor(), namespace=namespace, name=name, dry_run=dry_run, gated=True
            )
        if report_deferred(self, result):
            return
        self.stdout.write(f"{self.noun} {result.namespace}/{result.name} deleted")


def cli_actor() -> Actor:
    """The actor of every command: ``cli:<OS user>`` from ``local``, all allowed namespaces."""
    return Actor.for_cli()


def error_text(error: OpsError) -> str:
    """One line: the detail, the field errors if any, and the machine-readable code."""
    text = str(error.detail)
    errors = getattr(error, "errors", None)
    if errors:
        text += " " + "; ".join(
            f"{field}: {' '.join(map(str, msgs))}" for field, msgs in errors.items()
        )
    codes = error.get_codes()
    code = codes if isinstance(codes, str) else error.default_code
    return f"{text} [{code}]"


def command_error(error: OpsError) -> CommandError:
    """The CommandError for a service error, with the exit code of its HTTP status."""
    returncode = _EXIT_BY_STATUS.get(error.status_code, 1)
    return CommandError(error_text(error), returncode=returncode)


@contextmanager
def service_errors() -> Iterator[None]:
    """Turn an :class:`~ops.errors.OpsError` raised inside the block into a CommandError."""
    try:
        yield
    except OpsError as error:
        raise command_error(error) from error


def int_or_raw(value: str) -> int | str:
    """argparse ``type`` for counts: an int when the text is one, else the text itself.

    The service then applies the API's rules (and writes the audit row of the refusal), so
    ``-3`` and ``two`` are refused by exactly the code that refuses them over HTTP.
    """
    try:
        return int(value, 10)
    except ValueError:
        return value


def parse_since(value: str, *, now: datetime | None = None) -> datetime:
    """``--since``: a duration back from now (``90s``, ``30m``, ``24h``, ``7d``) or ISO 8601."""
    age = relative_age(value)
    if age is not None:
        return (now or timezone.now()) - age
    parsed = _parse_iso(value)
    if parsed is None:
        raise CommandError(
            f"--since {value!r}: use a duration such as 30m, 24h, 7d or an ISO 8601 time",
            returncode=EXIT_INVALID,
        )
    return parsed


def parse_duration(value: str, *, option: str) -> timedelta:
    """A positive duration: ``90s``, ``30m``, ``24h``, ``7d`` (exit 2 otherwise)."""
    age = relative_age(value)
    if age is None or age <= timedelta(0):
        raise CommandError(
            f"{option} {value!r}: use a positive duration such as 90s, 30m, 24h or 7d",
            returncode=EXIT_INVALID,
        )
    return age


def _parse_iso(value: str) -> datetime | None:
    from django.utils.dateparse import parse_date, parse_datetime

    try:
        parsed = parse_datetime(value)
        if parsed is None:
            day = parse_date(value)
            parsed = datetime(day.year, day.month, day.day) if day else None
    except ValueError:
        return None
    if parsed is not None and timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, UTC)
    return parsed


def fmt_time(value: datetime | None) -> str:
    """A timestamp in UTC to the second, or ``-``."""
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def fmt_duration(start: datetime | None, end: datetime | None) -> str:
    """``1h02m03s`` / ``2m03s`` / ``4.2s`` between two times (end None: until now), or ``-``."""
    if start is None:
        return "-"
    seconds = ((end or timezone.now()) - start).total_seconds()
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def shorten(value: object, limit: int) -> str:
    """One line of at most ``limit`` characters (``…`` marks the cut); None is ``-``."""
    if value is None or value == "":
        return "-"
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def format_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A plain-text table: a header, a rule, left-aligned columns sized to their content."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def add_output_option(parser) -> None:
    """``-o table|json`` on a listing command (json: the API's own JSON, a list)."""
    parser.add_argument(
        "-o",
        "--output",
        choices=("table", "json"),
        default="table",
        help="table (default) or json: the API's JSON for each item, as one list",
    )


def write_json(stdout, items: list) -> None:
    """Write ``items`` as indented JSON (timestamps as the API renders them)."""
    stdout.write(json.dumps(items, cls=JSONEncoder, indent=2, ensure_ascii=False))


def add_dry_run_option(parser) -> None:
    """``--dry-run`` on a command that changes the cluster."""
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="run every check and print the plan of the exact changes; change nothing",
    )


def plan_lines(entries: list[dict]) -> list[str]:
    """A plan as lines for people: ``1. scale StatefulSet prod/postgres (uid …): …``."""
    lines = []
    for entry in entries:
        obj = entry["object"]
        uid = obj.get("uid") or "new"
        step = f" [{entry['step']}]" if entry.get("step") else ""
        change = json.dumps(entry["change"], sort_keys=True) if entry["change"] else ""
        lines.append(
            f"{entry['order']}. {entry['action']} {obj['kind']} {obj['namespace']}/{obj['name']}"
            f" (uid {uid}){step} {change}".rstrip()
        )
    return lines


def report_deferred(command, outcome) -> bool:
    """Print a dry run's plan (True: done) or a request held for approval (exit 8); False
    for an operation that ran."""
    from ops.services import Held, Planned

    if isinstance(outcome, Planned):
        for line in plan_lines(outcome.plan.entries()):
            command.stdout.write(line)
        command.stdout.write(f"plan_digest {outcome.plan.digest} (dry run: nothing changed)")
        return True
    if isinstance(outcome, Held):
        approval = outcome.approval
        command.stdout.write(approval.approval_id)
        command.stderr.write(
            f"held for approval until {fmt_time(approval.expires_at)} UTC (nothing changed); "
            f"another person approves it with: manage.py ops_approve {approval.approval_id} "
            "--reason '...'"
        )
        for line in plan_lines(approval.plan):
            command.stderr.write(line)
        raise CommandError("held for approval", returncode=EXIT_HELD)
    return False
