"""Input and output shapes of the job endpoints (plain serializers: validation only)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from jobs.models import Job, JobStep
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


class PgRebuildSerializer(StrictSerializer):
    """Body of ``POST /ops/jobs/pg-rebuild``."""

    namespace = _Name(help_text="Namespace of the StatefulSet (DNS-1123 label).")
    statefulset = _Name(help_text="Name of the StatefulSet (DNS-1123 subdomain).")
    ordinal = _Int(help_text="Replica to rebuild (>= 0): pod <statefulset>-<ordinal>.")
    target_replicas = _Int(help_text="Replicas to scale back to (>= 1, > ordinal).")


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


class JobSerializer(serializers.ModelSerializer):
    """A job and its steps, in the seed's shape (timestamps UTC with ``Z``)."""

    steps = JobStepSerializer(many=True, read_only=True)

    class Meta:
        model = Job
        fields = ["job_id", "type", "status", "created_at", "finished_at", "params", "steps"]
        read_only_fields = fields
