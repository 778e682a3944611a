"""The step vocabulary: what a job type's steps are written in, and all a type imports of the
engine.

A step is a plain function ``run(ctx) -> Done | Wait``. It must look before it acts: the
runner may call it again after a crash, a lost lease or a redelivered tick, and a second call
must not repeat a mutation that already happened (remember what you did in ``ctx.state``, and
call ``ctx.checkpoint()`` before every mutation). The runner (:mod:`jobs.runner`) provides
the :class:`StepContext`; job types never import it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from ops.actors import ORIGIN_JOB, Actor

if TYPE_CHECKING:
    from ops.audit import Target


@dataclass(frozen=True)
class Done:
    """The step finished; ``detail`` is shown to people as the step's outcome."""

    detail: str


@dataclass(frozen=True)
class Wait:
    """The step is waiting; ``detail`` says for what, and becomes the timeout message."""

    detail: str


StepResult = Done | Wait


class StepContext(Protocol):
    """What a step sees of its job and may do through the engine.

    ``actor``, ``source_ip`` and ``actor_namespaces`` are those of whoever the job acts for
    now: the requester, or the last one who retried it. ``state`` is the step's own saved
    state (a dict it may change; saved by ``checkpoint`` and when the step ends or waits).
    """

    job_id: str
    job_type: str
    params: dict[str, Any]
    actor: str | None
    source_ip: str | None
    actor_namespaces: tuple[str, ...] | None
    step_name: str
    state: dict[str, Any]

    def checkpoint(self) -> None:
        """Save ``state`` and confirm the job is still ours and not cancelled; call before
        every mutation (raises to stop the step otherwise)."""

    def heartbeat(self) -> None:
        """Extend the job's lease now."""

    def earlier_state(self, step_name: str) -> dict[str, Any]:
        """What an earlier step of this job saved, or {}."""

    def record_result(self, **values: Any) -> None:
        """Add ``values`` to the job's ``result`` (its evidence), at once."""

    def job_result(self) -> dict[str, Any]:
        """The job's ``result`` as recorded so far."""

    def close_interrupted(self, target: Target, *, applied: bool, observed: str) -> int:
        """Close the audit rows an interrupted attempt of this job left pending on ``target``
        with what this step observed."""

    def db_now(self) -> datetime:
        """The database clock now."""

    def past_deadline(self) -> bool:
        """True when this check is the step's last before its timeout."""


def job_actor(ctx: StepContext) -> Actor:
    """Who a step's mutations act for: whoever the job acts for now (the requester, or the
    last one who retried it), with their address and namespace scope, origin ``job``."""
    return Actor(
        name=ctx.actor or "job",
        source_ip=ctx.source_ip,
        namespaces=ctx.actor_namespaces,
        origin=ORIGIN_JOB,
    )


@dataclass(frozen=True)
class StepDef:
    """A named step and the function that runs it."""

    name: str
    run: Callable[[StepContext], StepResult]
