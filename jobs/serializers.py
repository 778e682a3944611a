"""Input and output shapes of the job endpoints (plain serializers: validation only)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from jobs.models import Job, JobStep
from jobs.types.pg_guards import STRATEGIES
from ops.serializers import StrictSerializer


class _AsSent(serializers.Field):
    """Passes a JSON value through untouched: the service checks it with the one set of rules
    (so a string "3" or a bool is refused there, not coerced here)."""

    def to_internal_value(self, data):
        return data

    def to_representation(self, value):
        return value


@extend_schema_field(OpenApiTypes.STR)
class _Name(_AsSent):
    pass


@extend_schema_field(OpenApiTypes.INT)
class _Int(_AsSent):
    pass


@extend_schema_field(OpenApiTypes.BOOL)
class _Bool(_AsSent):
    pass


@extend_schema_field({"type": "string", "enum": list(STRATEGIES)})
class _Strategy(_AsSent):
    pass


class PgRebuildSerializer(StrictSerializer):
    """Body of ``POST /ops/jobs/pg-rebuild``."""

    namespace = _Name(help_text="Namespace of the StatefulSet (DNS-1123 label).")
    statefulset = _Name(help_text="Name of the StatefulSet (DNS-1123 subdomain).")
    ordinal = _Int(help_text="Replica to rebuild (>= 0): pod <statefulset>-<ordinal>.")
    target_replicas = _Int(help_text="Replicas to scale back to (>= 1, > ordinal).")
    strategy = _Strategy(
        required=False,
        help_text=(
            "scale-to-zero (default: every pod goes down, the claims are deleted, the set "
            "scales back) or in-place (only the target replica goes down; the set keeps its "
            "replicas, so target_replicas must equal them)."
        ),
    )
    allow_outage = _Bool(
        required=False,
        help_text="Allow scale-to-zero on a set that holds a primary (a full database outage).",
    )
    allow_scale_down = _Bool(
        required=False,
        help_text="Allow target_replicas below the set's replicas when the job is accepted.",
    )


class JobCreatedSerializer(serializers.Serializer):
    """Answer of a job start (202)."""

    job_id = serializers.CharField()


class JobStepSerializer(serializers.ModelSerializer):
    """One step, in the seed's shape."""

    order = serializers.IntegerField(source="step_order")

    class Meta:
        model = JobStep
        fields = ["name", "order", "status", "detail", "started_at", "finished_at"]
        read_only_fields = fields


class JobErrorSerializer(serializers.Serializer):
    """Why a job failed: a machine-readable code (a guard's, ``timeout``...) and the detail."""

    code = serializers.CharField()
    detail = serializers.CharField()


class JobSerializer(serializers.ModelSerializer):
    """A job and its steps, in the seed's shape (timestamps UTC with ``Z``), with its
    ``result`` (evidence: what it found and made) and ``error`` (null unless failed)."""

    steps = JobStepSerializer(many=True, read_only=True)
    result = serializers.JSONField(read_only=True)
    error = JobErrorSerializer(read_only=True, allow_null=True)

    class Meta:
        model = Job
        fields = [
            "job_id",
            "type",
            "status",
            "created_at",
            "finished_at",
            "params",
            "result",
            "error",
            "steps",
        ]
        read_only_fields = fields
