"""Job types: a name, what kind of object they lock, and their ordered steps.

A step is a plain function ``run(ctx) -> Done | Wait``. It must look before it acts: the
runner may call it again after a crash, a lost lease or a redelivered tick, and a second call
must not repeat a mutation that already happened (remember what you did in ``ctx.state``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jobs.models import Job
    from jobs.runner import StepContext


@dataclass(frozen=True)
class Done:
    """The step finished; ``detail`` is shown to people as the step's outcome."""

    detail: str


@dataclass(frozen=True)
class Wait:
    """The step is waiting; ``detail`` says for what, and becomes the timeout message."""

    detail: str


StepResult = Done | Wait


@dataclass(frozen=True)
class StepDef:
    """A named step and the function that runs it."""

    name: str
    run: Callable[[StepContext], StepResult]


@dataclass(frozen=True)
class JobType:
    """A kind of job: its name in the API, what it locks, its steps in order."""

    name: str
    #: Kind of object the job locks ("StatefulSet"): one active job per kind/namespace/name.
    target_kind: str
    #: The steps, in order (of the default plan when ``plan`` chooses between several).
    steps: tuple[StepDef, ...]
    #: What a failed or cancelled job of this type leaves behind (read fresh, e.g. "StatefulSet
    #: prod/postgres left at 0 replicas (was 3)"), added to the failed step's detail; None
    #: when there is nothing to say. Called after the failure is committed, best effort.
    aftermath: Callable[[Job], str | None] | None = None
    #: The steps for a job's parameters, when they depend on them (e.g. a strategy); None:
    #: always ``steps``.
    plan: Callable[[dict], tuple[StepDef, ...]] | None = None
    #: Checks that a retry request runs before the job may resume at the named step (the
    #: guards of that step's destructive calls, read against the live cluster): raises the
    #: API error of the first that fails (the retry is then refused, nothing changes).
    resume_check: Callable[[Job, str], None] | None = None
    #: The checks of a request against the live cluster, run before the job exists: raises
    #: the API error to answer, else returns what the job records from the start (its
    #: ``result``, e.g. the replica count when it was accepted).
    preflight: Callable[[dict], dict] | None = None

    def steps_for(self, params: dict | None) -> tuple[StepDef, ...]:
        """The ordered steps of a job of this type with ``params``."""
        if self.plan is None or params is None:
            return self.steps
        return self.plan(params)

    def step(self, name: str, params: dict | None = None) -> StepDef:
        """The step called ``name`` in the plan for ``params`` (KeyError if there is none)."""
        for step in self.steps_for(params):
            if step.name == name:
                return step
        raise KeyError(f"job type {self.name} has no step {name!r}")


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
