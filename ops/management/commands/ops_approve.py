"""``manage.py ops_approve APPROVAL_ID --reason TEXT``: approve, as ``cli:<OS user>``.

The same service as ``POST /ops/approvals/{id}/approve``: the plan is checked against the
cluster now (exit 5 ``stale_approval`` when an object changed), then the operation runs for
its requester.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from ops.approvals import decide
from ops.cli import cli_actor, service_errors


class Command(BaseCommand):
    help = (
        "Approve a request held for approval: the operation runs for its requester. Exit "
        "codes: 2 no reason, 3 self-approval or not allowed, 4 unknown, 5 closed, expired or "
        "stale, 1 the operation failed."
    )
    approve = True

    def add_arguments(self, parser):
        parser.add_argument("approval_id", help="the approval's id (apr_...)")
        parser.add_argument("--reason", required=True, help="why (a change ticket, a sentence)")

    def handle(self, *args, approval_id: str, reason: str, **options):
        with service_errors():
            approval, outcome = decide(
                actor=cli_actor(), approval_id=approval_id, reason=reason, approve=self.approve
            )
        if outcome is not None:
            self.stdout.write(json.dumps(outcome.body, sort_keys=True))
        self.stderr.write(f"{approval.approval_id} {approval.status}")
