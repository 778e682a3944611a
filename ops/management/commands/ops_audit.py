"""``manage.py ops_audit [--since ...] [--namespace ...] [--actor ...] [--status ...]``.

The audit log as a table, newest first. Filters are checked by the same FilterSet as
``GET /ops/audit`` (a malformed value is an error, never silently ignored).
"""

from __future__ import annotations

from django.core.management.base import CommandError

from ops.cli import (
    EXIT_INVALID,
    OpsCommand,
    add_output_option,
    fmt_time,
    format_table,
    parse_since,
    shorten,
    write_json,
)
from ops.filters import OpsLogFilter
from ops.models import OpsLogStatus
from ops.selectors import audit_rows
from ops.serializers import OpsLogSerializer

HEADERS = ["time (UTC)", "actor", "source", "action", "kind", "object", "status", "error"]


class Command(OpsCommand):
    help = "Show the audit log (ops_log), newest first."

    def add_arguments(self, parser):
        parser.add_argument(
            "--since", help="rows at or after: a duration back from now (30m, 24h, 7d) or ISO 8601"
        )
        parser.add_argument("--until", help="rows before: a duration back from now or ISO 8601")
        parser.add_argument("--namespace", help="only this namespace")
        parser.add_argument("--actor", help="only this actor, e.g. cli:alice or a key name")
        parser.add_argument("--action", help="only this action: scale, delete, pg-rebuild")
        parser.add_argument("--status", choices=OpsLogStatus.values, help="only this outcome")
        parser.add_argument("--job", dest="job_id", help="only the rows of this job")
        add_output_option(parser)
        parser.add_argument(
            "--limit", type=int, default=50, help="at most this many rows (default 50)"
        )

    def handle(self, *args, **options):
        limit = options["limit"]
        if limit < 1:
            raise CommandError("--limit must be at least 1", returncode=EXIT_INVALID)
        data = {
            key: options[key]
            for key in ("namespace", "actor", "action", "status")
            if options[key] is not None
        }
        for key in ("since", "until"):
            if options[key] is not None:
                data[key] = parse_since(options[key]).isoformat()
        rows = audit_rows()
        if options["job_id"]:
            rows = rows.filter(job_id=options["job_id"])
        found = OpsLogFilter(data=data, queryset=rows)
        if not found.is_valid():
            problems = "; ".join(
                f"--{field}: {' '.join(msgs)}" for field, msgs in found.errors.items()
            )
            raise CommandError(problems, returncode=EXIT_INVALID)
        page = list(found.qs[: limit + 1])
        if options["output"] == "json":
            write_json(self.stdout, OpsLogSerializer(page[:limit], many=True).data)
            return
        if not page:
            self.stdout.write("no audit rows match")
            return
        table = [
            [
                fmt_time(row.ts),
                row.actor or "(no key)",
                row.source_ip or "-",
                row.action,
                row.resource_kind,
                f"{row.namespace}/{row.resource_name}",
                row.status,
                shorten(row.error_message, 60),
            ]
            for row in page[:limit]
        ]
        self.stdout.write(format_table(HEADERS, table))
        if len(page) > limit:
            self.stdout.write(f"(the newest {limit} rows; --limit shows more)")
