"""``manage.py ops_reject APPROVAL_ID --reason TEXT``: reject, as ``cli:<OS user>``."""

from __future__ import annotations

from ops.management.commands import ops_approve


class Command(ops_approve.Command):
    help = (
        "Reject a request held for approval (nothing runs). Exit codes: 2 no reason, 3 "
        "self-rejection or not allowed, 4 unknown, 5 already closed or expired."
    )
    approve = False
