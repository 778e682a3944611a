"""Job types: everything the API, the commands and the runner need to know of one kind of job.

A job type is one module in ``jobs/types/`` that builds a :class:`JobType` and calls
:func:`register` at import: its name and description, its input (a serializer: validation,
the OpenAPI schema, the ``GET /ops/jobs/types`` entry and the management command's arguments
all come from it), what it locks (:class:`JobTarget`), the checks of a request against the
live cluster (``preflight``), and its steps. It imports the step vocabulary
(:mod:`jobs.steps`), never the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jobs.steps import Done, StepContext, StepDef, StepResult, Wait

if TYPE_CHECKING:
    from rest_framework import serializers

    from jobs.models import Job
    from ops.plans import Plan

__all__ = [
    "Done",
    "JobTarget",
    "JobType",
    "StepContext",
    "StepDef",
    "StepResult",
    "UnknownJobType",
    "Wait",
    "get_job_type",
    "job_type_names",
    "job_types",
    "register",
    "unregister",
]


@dataclass(frozen=True)
class JobTarget:
    """What a job locks (one active job per kind/namespace/name) and its audit row names."""

    kind: str  # Kubernetes kind: "StatefulSet", "Deployment"
    namespace: str
    name: str

    @property
    def audit_kind(self) -> str:
        """The ``resource_kind`` of the job's audit rows: the kind in lower case."""
        return self.kind.lower()


@dataclass(frozen=True)
class JobType:
    """A kind of job: its name in the API, its input, what it locks, its checks, its steps."""

    name: str
    #: Kind of object the job locks ("StatefulSet"), for jobs recorded without a target.
    target_kind: str
    #: The steps, in order (of the default plan when ``plan`` chooses between several).
    steps: tuple[StepDef, ...]
    #: One line for people (``GET /ops/jobs/types``, the command's help).
    description: str = ""
    #: The request body: a serializer class whose ``validated_data`` are the job's params
    #: (defaults filled in); unknown fields are refused.
    input: type[serializers.Serializer] | None = None
    #: The object the job acts on, from its params.
    target: Callable[[dict], JobTarget] | None = None
    #: What a failed or cancelled job of this type leaves behind (read fresh, e.g. "StatefulSet
    #: prod/postgres left at 0 replicas (was 3)"), added to the failed step's detail; None
    #: when there is nothing to say. Called after the failure is committed, best effort.
    aftermath: Callable[[Job], str | None] | None = None
    #: When the steps depend on the params (e.g. a strategy): every plan by its key, and the
    #: function that picks a job's key from its params. None: always ``steps``.
    plans: Mapping[str, tuple[StepDef, ...]] | None = None
    plan_key: Callable[[dict], str] | None = None
    #: Checks that a retry request runs before the job may resume at the named step (the
    #: guards of that step's destructive calls, read against the live cluster): raises the
    #: API error of the first that fails (the retry is then refused, nothing changes).
    resume_check: Callable[[Job, str], None] | None = None
    #: The checks of a request against the live cluster, run before the job exists: raises
    #: the API error to answer, else returns what the job records from the start (its
    #: ``result``, e.g. the replica count when it was accepted).
    preflight: Callable[[dict], dict] | None = None
    #: The plan of a request (a dry run, an approval): ``(type, params, preflight's result)``
    #: to the :class:`ops.plans.Plan` of every step, read from the live cluster. None: each
    #: step listed on the job's target (see :func:`jobs.plans.job_plan`).
    plan: Callable[[JobType, dict, dict], Plan] | None = None

    def steps_for(self, params: dict | None) -> tuple[StepDef, ...]:
        """The ordered steps of a job of this type with ``params``."""
        if self.plans is None or self.plan_key is None or params is None:
            return self.steps
        return self.plans[self.plan_key(params)]

    def step(self, name: str, params: dict | None = None) -> StepDef:
        """The step called ``name`` in the plan for ``params`` (KeyError if there is none)."""
        for step in self.steps_for(params):
            if step.name == name:
                return step
        raise KeyError(f"job type {self.name} has no step {name!r}")

    def plan_names(self) -> dict[str, list[str]]:
        """The step names of every plan, by its key (``{"": [...]}`` for a single plan)."""
        if self.plans is None:
            return {"": [s.name for s in self.steps]}
        return {key: [s.name for s in steps] for key, steps in self.plans.items()}


class UnknownJobType(KeyError):
    """No job type of that name is registered."""


_REGISTRY: dict[str, JobType] = {}


def register(job_type: JobType) -> JobType:
    """Make a job type known to the API and the runner (called at import of its module)."""
    existing = _REGISTRY.get(job_type.name)
    if existing is not None and existing is not job_type:
        raise ValueError(f"job type {job_type.name!r} is already registered")
    _REGISTRY[job_type.name] = job_type
    return job_type


def unregister(name: str) -> None:
    """Forget a job type (tests that register throwaway types clean up with this)."""
    _REGISTRY.pop(name, None)


def get_job_type(name: str) -> JobType:
    """The registered job type called ``name`` (UnknownJobType if none)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownJobType(name) from None


def job_type_names() -> list[str]:
    """Names of every registered job type, sorted."""
    return sorted(_REGISTRY)


def job_types() -> list[JobType]:
    """Every registered job type, sorted by name."""
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]
