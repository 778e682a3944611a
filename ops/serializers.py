"""Input and output shapes of the ops endpoints (plain serializers: validation only)."""

from __future__ import annotations

from collections.abc import Mapping

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ops.approvals import effective_status
from ops.models import ApiKey, Approval, OpsLog
from ops.validation import replicas_problem


class StrictSerializer(serializers.Serializer):
    """A serializer that refuses anything but a JSON object, and unknown fields."""

    def to_internal_value(self, data):
        if not isinstance(data, Mapping):
            raise serializers.ValidationError(
                {"non_field_errors": [f"Expected a JSON object, got {type(data).__name__}."]},
                code="invalid",
            )
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError(
                {str(field)[:100]: ["Unknown field."] for field in unknown}, code="invalid"
            )
        return super().to_internal_value(data)


@extend_schema_field(OpenApiTypes.INT)
class ReplicasField(serializers.Field):
    """An integer 0..OPS_MAX_REPLICAS; a bool, a float or a numeric string is refused."""

    default_error_messages = {"invalid": "{problem}"}

    def to_internal_value(self, data):
        problem = replicas_problem(data, maximum=settings.APIOPS["MAX_REPLICAS"])
        if problem:
            self.fail("invalid", problem=problem)
        return data

    def to_representation(self, value):
        return value


class ScaleSerializer(StrictSerializer):
    """Body of ``POST .../scale``."""

    replicas = ReplicasField(help_text="Desired replica count, 0..OPS_MAX_REPLICAS.")


class EmptySerializer(StrictSerializer):
    """Body of a DELETE: nothing (or ``{}``)."""


class ScaleResultSerializer(serializers.Serializer):
    """Answer of a scale."""

    namespace = serializers.CharField()
    kind = serializers.CharField()
    name = serializers.CharField()
    replicas = serializers.IntegerField()
    previous_replicas = serializers.IntegerField()


class DeleteResultSerializer(serializers.Serializer):
    """Answer of a delete."""

    status = serializers.CharField()
    namespace = serializers.CharField()
    kind = serializers.CharField()
    name = serializers.CharField()


class OpsLogSerializer(serializers.ModelSerializer):
    """One audit row."""

    class Meta:
        model = OpsLog
        fields = [
            "id",
            "ts",
            "actor",
            "source_ip",
            "action",
            "resource_kind",
            "namespace",
            "resource_name",
            "request_body",
            "status",
            "error_message",
            "code",
            "http_status",
            "origin",
            "job_id",
            "key_prefix",
            "finished_at",
            "dry_run",
            "audit_id",
            "chain_seq",
            "chain_hash",
        ]
        read_only_fields = fields


class ApiKeyInfoSerializer(serializers.ModelSerializer):
    """An API key as its holder may see it: never the secret, only its prefix and times."""

    class Meta:
        model = ApiKey
        fields = ["prefix", "created_at", "expires_at", "last_used_at"]
        read_only_fields = fields


class WhoAmISerializer(serializers.Serializer):
    """Answer of ``GET /ops/whoami``."""

    name = serializers.CharField()
    namespaces = serializers.ListField(child=serializers.CharField(), allow_null=True)
    operations = serializers.ListField(child=serializers.CharField())
    key = ApiKeyInfoSerializer(allow_null=True)
    keys = ApiKeyInfoSerializer(many=True)


class PlanObjectSerializer(serializers.Serializer):
    """An object a plan changes, as read: uid None for one it creates."""

    kind = serializers.CharField()
    namespace = serializers.CharField()
    name = serializers.CharField()
    uid = serializers.CharField(allow_null=True)
    generation = serializers.IntegerField(required=False, help_text="Deployments, StatefulSets")
    resourceVersion = serializers.CharField(required=False, help_text="pods, claims, snapshots")


class PlanEntrySerializer(serializers.Serializer):
    """One change of a plan."""

    order = serializers.IntegerField()
    action = serializers.CharField(help_text="scale, delete, create, restart, wait")
    object = PlanObjectSerializer()
    change = serializers.DictField(
        help_text='What changes, e.g. {"replicas": {"from": 3, "to": 0}}'
    )


class DryRunSerializer(serializers.Serializer):
    """Answer of ``?dry_run=true``: the plan of what the request would change."""

    dry_run = serializers.BooleanField()
    plan = PlanEntrySerializer(many=True)
    plan_digest = serializers.CharField(help_text="sha256:<hex> of the plan's canonical JSON")


class ApprovalHeldSerializer(serializers.Serializer):
    """Answer (202) of a request that waits for approval (``OPS_APPROVAL_REQUIRED``)."""

    approval_id = serializers.CharField()
    status = serializers.CharField()
    plan = PlanEntrySerializer(many=True)
    plan_digest = serializers.CharField()
    expires_at = serializers.DateTimeField()
    warnings = serializers.ListField(
        child=serializers.DictField(),
        help_text="what checks that run again at approval say now ({code, detail})",
    )


class ApprovalSerializer(serializers.ModelSerializer):
    """An approval: what was asked, by whom, its plan, and where it stands."""

    status = serializers.SerializerMethodField()
    plan = PlanEntrySerializer(many=True)

    class Meta:
        model = Approval
        fields = [
            "approval_id",
            "status",
            "operation",
            "namespace",
            "resource_kind",
            "resource_name",
            "params",
            "plan",
            "plan_digest",
            "warnings",
            "requested_by",
            "created_at",
            "expires_at",
            "decided_by",
            "decided_at",
            "reason",
            "outcome",
            "job_id",
        ]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.STR)
    def get_status(self, approval: Approval) -> str:
        return effective_status(approval)


class ReasonSerializer(StrictSerializer):
    """Body of ``POST /ops/approvals/{id}/approve`` and ``/reject``."""

    reason = serializers.CharField(
        max_length=2000, help_text="Why (a change ticket, a sentence): required."
    )


class ErrorSerializer(serializers.Serializer):
    """Every error answer: what went wrong, a machine-readable code, and field errors."""

    detail = serializers.CharField(help_text="What went wrong, for a person.")
    code = serializers.CharField(help_text="What went wrong, for a program: e.g. `invalid`.")
    errors = serializers.DictField(
        child=serializers.JSONField(),
        required=False,
        help_text="Field errors of a 400: each field (or query parameter) with its messages.",
    )
