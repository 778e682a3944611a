"""Filters of ``GET /ops/audit`` and ``GET /ops/approvals``, and the API's filter backend: a
malformed value is a 400 ``invalid_query``, never silently ignored."""

from __future__ import annotations

import django_filters
from django.core.exceptions import ValidationError as FormValidationError
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone
from django_filters.fields import IsoDateTimeField
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.exceptions import ValidationError

from ops.errors import InvalidQuery
from ops.models import Approval, ApprovalStatus, OpsLog, OpsLogStatus
from ops.validation import relative_age

TIME_HELP = (
    "ISO 8601 (2025-01-15T10:30:00Z), or a relative age back from now as the CLIs take it: "
    "30m, 24h, 7d (units s, m, h, d, w)."
)


class GivenChoiceField(django_filters.fields.ChoiceField):
    """A choice that, when the parameter is given, must be one of the choices: ``?status=``
    (empty) is refused like any other value outside them, not taken as "no filter" (the
    schema lists the choices; an empty value is not one of them)."""

    def clean(self, value):
        if value == "":
            raise FormValidationError(
                "An empty value is not one of the choices: give one, or leave the parameter out.",
                code="invalid_choice",
            )
        return super().clean(value)


class ChoiceFilter(django_filters.ChoiceFilter):
    """django-filter's ChoiceFilter with :class:`GivenChoiceField`."""

    field_class = GivenChoiceField


class AgeOrIsoDateTimeField(IsoDateTimeField):
    """A time given as ISO 8601 or as a relative age (``30m``, ``24h``, ``7d``) before now."""

    default_error_messages = {"invalid": f"Enter a valid time: {TIME_HELP}"}

    def to_python(self, value):
        age = relative_age(value) if isinstance(value, str) else None
        if age is None:
            return super().to_python(value)
        try:
            return timezone.now() - age
        except OverflowError as e:  # an age reaching back before year 1
            raise FormValidationError(self.error_messages["invalid"], code="invalid") from e


class AgeOrIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    """:class:`~django_filters.IsoDateTimeFilter` that also takes a relative age."""

    field_class = AgeOrIsoDateTimeField


class StrictFilterBackend(DjangoFilterBackend):
    """django-filter's backend; a malformed filter value is the API's query error (400
    ``invalid_query`` naming the parameter, audited like an unknown one)."""

    def filter_queryset(self, request, queryset, view):
        try:
            return super().filter_queryset(request, queryset, view)
        except ValidationError as e:
            errors = {name: [str(m) for m in msgs] for name, msgs in e.detail.items()}
            names = ", ".join(repr(name) for name in errors)
            raise InvalidQuery(errors, detail=f"Invalid value of {names}.") from e


class OpsLogFilter(django_filters.FilterSet):
    """namespace, actor, action, status (exact); since (ts >=) and until (ts <), each ISO 8601
    or a relative age (``24h``)."""

    namespace = django_filters.CharFilter(field_name="namespace")
    actor = django_filters.CharFilter(field_name="actor")
    action = django_filters.CharFilter(field_name="action")
    status = ChoiceFilter(field_name="status", choices=OpsLogStatus.choices)
    since = AgeOrIsoDateTimeFilter(field_name="ts", lookup_expr="gte")
    until = AgeOrIsoDateTimeFilter(field_name="ts", lookup_expr="lt")

    class Meta:
        model = OpsLog
        fields = ["namespace", "actor", "action", "status", "since", "until"]


class ApprovalFilter(django_filters.FilterSet):
    """status, as :func:`ops.approvals.effective_status` tells it: a pending approval past its
    ``expires_at`` is listed as expired even before the workers have marked it."""

    status = ChoiceFilter(choices=ApprovalStatus.choices, method="filter_status")

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
