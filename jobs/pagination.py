"""Pagination of the job list: the audit list's cursors and capped count, on creation time."""

from ops.pagination import AuditCursorPagination


class JobCursorPagination(AuditCursorPagination):
    """Newest first; ``{count, count_exact, next, previous, results}`` like ``/ops/audit``."""

    ordering = ("-created_at", "-id")
