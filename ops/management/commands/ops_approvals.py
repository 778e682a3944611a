"""``manage.py ops_approvals [--status pending] [-o json]``: requests held for approval."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from ops.approvals import effective_status
from ops.cli import add_output_option, fmt_time, format_table, shorten, write_json
from ops.filters import ApprovalFilter
from ops.models import Approval, ApprovalStatus
from ops.serializers import ApprovalSerializer

HEADERS = ["approval", "status", "operation", "object", "requested by", "expires (UTC)", "decided"]


class Command(BaseCommand):
    help = "List requests held for approval (OPS_APPROVAL_REQUIRED), newest first."

    def add_arguments(self, parser):
        parser.add_argument(
            "--status", choices=ApprovalStatus.values, help="only this status (e.g. pending)"
        )
        parser.add_argument("--limit", type=int, default=50, help="at most this many (50)")
        add_output_option(parser)

    def handle(self, *args, status: str | None, limit: int, output: str, **options):
        rows = Approval.objects.order_by("-created_at", "-id")
        if status:
            rows = ApprovalFilter({"status": status}, queryset=rows).qs
        rows = list(rows[: max(limit, 1)])
        if output == "json":
            write_json(self.stdout, ApprovalSerializer(rows, many=True).data)
            return
        self.stdout.write(
            format_table(
                HEADERS,
                (
                    [
                        a.approval_id,
                        effective_status(a),
                        a.operation,
                        f"{a.resource_kind} {a.namespace}/{a.resource_name}",
                        a.requested_by,
                        fmt_time(a.expires_at),
                        shorten(f"{a.decided_by}: {a.reason}" if a.decided_by else None, 40),
                    ]
                    for a in rows
                ),
            )
        )
