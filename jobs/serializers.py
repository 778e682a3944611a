"""Input and output shapes of the job endpoints (plain serializers: validation only)."""

from __future__ import annotations

from rest_framework import serializers

from jobs.inputs import input_schema
from jobs.models import Job, JobStep
from jobs.registry import JobType


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


class JobTypeSerializer(serializers.Serializer):
    """One job type: its name, what it does, its steps (by plan) and its input's JSON Schema."""

    type = serializers.CharField()
    description = serializers.CharField()
    target_kind = serializers.CharField()
    steps = serializers.ListField(child=serializers.CharField())
    plans = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))
    input = serializers.JSONField()


class JobTypesSerializer(serializers.Serializer):
    """Answer of ``GET /ops/jobs/types``."""

    types = JobTypeSerializer(many=True)


def describe_job_type(kind: JobType) -> dict:
    """The ``GET /ops/jobs/types`` entry of a type (``steps``: its default plan's)."""
    plans = kind.plan_names()
    return {
        "type": kind.name,
        "description": kind.description,
        "target_kind": kind.target_kind,
        "steps": [s.name for s in kind.steps],
        "plans": plans if kind.plans is not None else {},
        "input": input_schema(kind.input) if kind.input is not None else {"type": "object"},
    }
