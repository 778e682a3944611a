"""Fields for job types' input serializers: the project's input rules (DNS-1123 names, strict
integers and booleans) as DRF fields, so that one serializer per job type gives validation,
the OpenAPI schema, the ``GET /ops/jobs/types`` entry and the command's arguments.

Strict means a value is taken only in its JSON type: ``"3"``, ``3.0`` or ``true`` is not an
integer, ``1`` or ``"yes"`` not a boolean (DRF's own fields coerce them).
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ops.serializers import StrictSerializer
from ops.validation import name_problem, namespace_problem

__all__ = ["BoolField", "IntField", "JobInput", "NameField", "NamespaceField"]


class _Checked(serializers.Field):
    default_error_messages = {"invalid": "{problem}"}
    #: The field's JSON Schema (also given to drf-spectacular for the OpenAPI schema).
    schema: dict = {}

    def problem(self, value: object) -> str | None:
        raise NotImplementedError

    def json_schema(self) -> dict:
        return dict(self.schema)

    def to_internal_value(self, data):
        problem = self.problem(data)
        if problem:
            self.fail("invalid", problem=problem)
        return data

    def to_representation(self, value):
        return value


@extend_schema_field(
    {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63}
)
class NamespaceField(_Checked):
    """A namespace: a DNS-1123 label."""

    def problem(self, value: object) -> str | None:
        return namespace_problem(value)


@extend_schema_field(
    {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253}
)
class NameField(_Checked):
    """An object name: a DNS-1123 subdomain."""

    def problem(self, value: object) -> str | None:
        return name_problem(value)


@extend_schema_field({"type": "integer"})
class IntField(_Checked):
    """An integer (not a bool, string, float or null) within ``minimum``..``maximum``;
    ``maximum="MAX_REPLICAS"`` reads ``OPS_MAX_REPLICAS`` when the value is checked."""

    schema = {"type": "integer"}

    def __init__(self, *, minimum: int | None = None, maximum: int | str | None = None, **kw):
        self.minimum, self.maximum = minimum, maximum
        super().__init__(**kw)

    def json_schema(self) -> dict:
        schema = dict(self.schema)
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        maximum = self.maximum
        if isinstance(maximum, str):
            maximum = settings.APIOPS[maximum]
        if maximum is not None:
            schema["maximum"] = maximum
        return schema

    def problem(self, value: object) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return "Must be an integer (not a string, bool, float or null)."
        if self.minimum is not None and value < self.minimum:
            return f"Must be at least {self.minimum}."
        maximum = self.maximum
        if isinstance(maximum, str):
            maximum = settings.APIOPS[maximum]
        if maximum is not None and value > maximum:
            return f"Must be at most {maximum}."
        return None


@extend_schema_field({"type": "boolean"})
class BoolField(_Checked):
    """``true`` or ``false``, nothing else."""

    schema = {"type": "boolean"}

    def problem(self, value: object) -> str | None:
        return None if isinstance(value, bool) else "Must be true or false."


class JobInput(StrictSerializer):
    """Base of a job type's input: a JSON object, unknown fields refused; ``validated_data``
    (with the defaults of fields not given) are the job's params."""

    def error_lists(self) -> dict[str, list[str]]:
        """``errors`` as plain ``{field: [message]}`` (after ``is_valid()``)."""
        return {
            str(f): [str(m) for m in (v if isinstance(v, list) else [v])]
            for f, v in self.errors.items()
        }


def input_schema(serializer_class: type[serializers.Serializer]) -> dict:
    """The JSON Schema of a job type's input (``GET /ops/jobs/types``)."""
    properties, required = {}, []
    for name, field in serializer_class().fields.items():
        if isinstance(field, _Checked):
            schema = field.json_schema()
        elif isinstance(field, serializers.ChoiceField):
            schema = {"type": "string", "enum": list(field.choices)}
        else:
            schema = {}
        if field.help_text:
            schema["description"] = str(field.help_text)
        if field.default is not serializers.empty:
            schema["default"] = field.default
        if field.required:
            required.append(name)
        properties[name] = schema
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }
