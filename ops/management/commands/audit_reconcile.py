"""``manage.py audit_reconcile --apiserver-log FILE``: our audit rows against the Kubernetes
API server's audit log: confirmed, unconfirmed, orphans (exit 1 when there is an orphan)."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError

from ops.models import OpsLog
from ops.reconcile import read_events, reconcile


def _row_text(row: OpsLog) -> str:
    return (
        f"row {row.pk} (audit_id {row.audit_id}) {row.action} {row.resource_kind} "
        f"{row.namespace}/{row.resource_name} by {row.actor} at {row.ts.isoformat()}"
    )


class Command(BaseCommand):
    help = (
        "Match audit rows with an API-server audit log (audit.k8s.io/v1 Event JSON lines): "
        "confirmed and unconfirmed rows, and orphan mutations made with our credentials."
    )

    def add_arguments(self, parser):
        parser.add_argument("--apiserver-log", required=True, metavar="FILE")

    def handle(self, *args, apiserver_log: str, **options):
        try:
            with open(apiserver_log, encoding="utf-8", errors="replace") as handle:
                events = list(read_events(handle))
        except OSError as e:
            raise CommandError(f"cannot read {apiserver_log}: {e}") from None
        result = reconcile(events)
        for pk, seen in sorted(result.confirmed.items()):
            self.stdout.write(
                f"confirmed   {_row_text(result.rows[pk])}: {'; '.join(e.describe() for e in seen)}"
            )
        for row in result.unconfirmed:
            self.stdout.write(
                f"unconfirmed {_row_text(row)}: no mutation with its audit_id in the log"
            )
        for event in result.orphans:
            self.stdout.write(f"orphan      auditID {event.audit_id}: {event.describe()}: no row")
        ours = ", ".join(sorted(result.ours)) or "none seen"
        self.stdout.write(
            f"{len(result.confirmed)} confirmed, {len(result.unconfirmed)} unconfirmed, "
            f"{len(result.orphans)} orphan(s) among {len(events)} events (our users: {ours})"
        )
        if result.orphans:
            sys.exit(1)
