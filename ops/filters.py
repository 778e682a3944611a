"""Filters of ``GET /ops/audit``: a malformed value is a 400, never silently ignored."""

from __future__ import annotations

import django_filters

from ops.models import OpsLog, OpsLogStatus


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
