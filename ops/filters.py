"""Filters of ``GET /ops/audit`` and ``GET /ops/approvals``: a malformed value is a 400,
never silently ignored."""

from __future__ import annotations

import django_filters
from django.db.models import Q
from django.db.models.functions import Now

from ops.models import Approval, ApprovalStatus, OpsLog, OpsLogStatus


class OpsLogFilter(django_filters.FilterSet):
    """namespace, actor, action, status (exact); since (ts >=) and until (ts <), ISO 8601."""

    namespace = django_filters.CharFilter(field_name="namespace")
    actor = django_filters.CharFilter(field_name="actor")
    action = django_filters.CharFilter(field_name="action")
    status = django_filters.ChoiceFilter(field_name="status", choices=OpsLogStatus.choices)
    since = django_filters.IsoDateTimeFilter(field_name="ts", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="ts", lookup_expr="lt")

    class Meta:
        model = OpsLog
        fields = ["namespace", "actor", "action", "status", "since", "until"]


class ApprovalFilter(django_filters.FilterSet):
    """status, as :func:`ops.approvals.effective_status` tells it: a pending approval past its
    ``expires_at`` is listed as expired even before the workers have marked it."""

    status = django_filters.ChoiceFilter(choices=ApprovalStatus.choices, method="filter_status")

    class Meta:
        model = Approval
        fields = ["status"]

    def filter_status(self, queryset, name, value):
        now = Now()
        if value == ApprovalStatus.PENDING:
            return queryset.filter(status=value, expires_at__gt=now)
        if value == ApprovalStatus.EXPIRED:
            return queryset.filter(
                Q(status=value) | Q(status=ApprovalStatus.PENDING, expires_at__lte=now)
            )
        return queryset.filter(status=value)
