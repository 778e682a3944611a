"""``pg-rebuild``: give one PostgreSQL replica an empty volume, which the database then
re-seeds from the primary (SPEC § "pg-rebuild", § "Safe PostgreSQL rebuild").

Two strategies:

* ``scale-to-zero`` (the seed's, default): ``scale_sts_to_zero`` (remember the replica count),
  ``wait_pods_down`` (the selector lists nothing, terminating pods included),
  ``delete_pvc`` (``<template>-<sts>-<ordinal>`` per volumeClaimTemplate, then wait until each
  is gone from the API, not merely Terminating), ``scale_sts_to_target``, ``wait_pods_ready``
  (``readyReplicas == target`` in a status that observed the current generation). Every pod
  goes down: refused on a set that holds a primary unless ``allow_outage``.
* ``in-place``: ``check_target``, ``delete_pvc`` (it stays Terminating while the pod uses it),
  ``delete_pod`` (uid-pinned), ``wait_pvc_gone``, ``wait_pod_ready`` (a new pod, Ready, on a
  claim with a new uid). Only the target goes down; the other replicas are never touched.

Every destructive call (a scale, a claim delete, a pod delete) re-reads the cluster and runs
its guards (:mod:`jobs.types.pg_guards`) immediately before it is sent, and carries a
Kubernetes precondition — the ``resourceVersion`` of that read on a scale, the uid on a
delete — so that a request from a killed worker, arriving after the job moved on, changes
nothing. Each step looks before it acts, so a re-run after a crash never repeats a mutation;
the re-run closes the interrupted attempt's ``pending`` audit row with what it observed.
Evidence (old and new claim and pod uids, how long the target was down) goes to the job's
``result`` and the step details.
"""

from __future__ import annotations

from rest_framework import serializers

from jobs.inputs import BoolField, IntField, JobInput, NameField, NamespaceField
from jobs.models import Job, JobStep
from jobs.plans import pg_rebuild_plan
from jobs.registry import JobTarget, JobType, register
from jobs.types import pg_in_place, pg_restore, pg_scale_to_zero
from jobs.types.pg_guards import (
    AT_REQUEST,
    STRATEGIES,
    STRATEGY_IN_PLACE,
    STRATEGY_SCALE_TO_ZERO,
    check,
    observe,
)
from ops import k8s
from ops.errors import InvalidInput, OpsError

NAME = "pg-rebuild"
FIRST_STEP = pg_scale_to_zero.FIRST_STEP
RESTORE = "+from_snapshot"
#: The steps of each plan, by strategy (and restore), and the guards a retry checks at each.
PLANS = {
    STRATEGY_SCALE_TO_ZERO: pg_scale_to_zero.STEPS,
    STRATEGY_IN_PLACE: pg_in_place.STEPS,
    STRATEGY_SCALE_TO_ZERO + RESTORE: pg_restore.SCALE_TO_ZERO_STEPS,
    STRATEGY_IN_PLACE + RESTORE: pg_restore.IN_PLACE_STEPS,
}
RESUME_GUARDS = {
    STRATEGY_SCALE_TO_ZERO: pg_scale_to_zero.RESUME_GUARDS,
    STRATEGY_IN_PLACE: pg_in_place.RESUME_GUARDS,
    STRATEGY_SCALE_TO_ZERO + RESTORE: pg_restore.RESUME_GUARDS_SCALE_TO_ZERO,
    STRATEGY_IN_PLACE + RESTORE: pg_restore.RESUME_GUARDS_IN_PLACE,
}


class PgRebuildInput(JobInput):
    """Body of ``POST /ops/jobs/pg-rebuild``."""

    namespace = NamespaceField(help_text="Namespace of the StatefulSet (DNS-1123 label).")
    statefulset = NameField(help_text="Name of the StatefulSet (DNS-1123 subdomain).")
    ordinal = IntField(
        minimum=0, help_text="Replica to rebuild (>= 0): pod <statefulset>-<ordinal>."
    )
    target_replicas = IntField(
        minimum=1,
        maximum="MAX_REPLICAS",
        help_text="Replicas to scale back to (>= 1, > ordinal; in-place: the set's replicas).",
    )
    strategy = serializers.ChoiceField(
        choices=STRATEGIES,
        default=STRATEGY_SCALE_TO_ZERO,
        help_text=(
            "scale-to-zero (default: every pod goes down, the claims are deleted, the set "
            "scales back) or in-place (only the target replica goes down)."
        ),
    )
    allow_outage = BoolField(
        default=False,
        help_text="Allow scale-to-zero on a set that holds a primary (a full database outage).",
    )
    allow_scale_down = BoolField(
        default=False,
        help_text="Allow target_replicas below the set's replicas when the job is accepted.",
    )
    from_snapshot = NameField(
        required=False,
        help_text=(
            "Restore: the replica's new claim is made from this VolumeSnapshot (same "
            "namespace, ready to use); in-place only on the highest ordinal."
        ),
    )

    def validate(self, data: dict) -> dict:
        ordinal, target = data["ordinal"], data["target_replicas"]
        if target <= ordinal:
            raise serializers.ValidationError(
                {
                    "target_replicas": [
                        f"Must be greater than ordinal ({ordinal}): pod {ordinal} must come back."
                    ]
                }
            )
        return data


def target(params: dict) -> JobTarget:
    return JobTarget("StatefulSet", params["namespace"], params["statefulset"])


def strategy(params: dict) -> str:
    return params.get("strategy") or STRATEGY_SCALE_TO_ZERO


def plan_key(params: dict) -> str:
    """The plan of a job: its strategy, restoring from a snapshot or not."""
    return strategy(params) + (RESTORE if params.get("from_snapshot") else "")


def preflight(params: dict) -> dict:
    """The checks of a request, against the live cluster; returns what the job records.

    Raises the API error to answer: 404 no such StatefulSet, 400 no volumeClaimTemplates,
    409 with a guard's code.
    """
    namespace, name = params["namespace"], params["statefulset"]
    obs = observe(namespace=namespace, name=name)
    if not obs.sts.claim_templates:
        raise _invalid_no_templates(namespace, name)
    check(obs, params, AT_REQUEST[strategy(params)])
    result = {"replicas_at_request": obs.sts.replicas, "patroni_scopes": list(obs.roles.scopes)}
    if params.get("from_snapshot"):
        result.update(pg_restore.preflight(obs, params))
    return result


def _invalid_no_templates(namespace: str, name: str) -> OpsError:
    return InvalidInput(
        {
            "statefulset": [
                f"StatefulSet {namespace}/{name} has no volumeClaimTemplates: "
                "there is no per-replica claim to rebuild."
            ]
        }
    )


def resume_check(job: Job, step_name: str) -> None:
    """The guards of the step a retry would resume at, against the live cluster now."""
    names = RESUME_GUARDS[plan_key(job.params)].get(step_name, ("operator_owned",))
    obs = observe(
        namespace=job.params["namespace"],
        name=job.params["statefulset"],
        known_scopes=(job.result or {}).get("patroni_scopes", ()),
    )
    if step_name == FIRST_STEP and obs.sts.replicas == 0:
        names = tuple(n for n in names if n != "no_such_replica")  # nothing to scale down
    check(obs, job.params, names, job.result or {})


def aftermath(job: Job) -> str | None:
    """How a failed or cancelled rebuild leaves its StatefulSet: its replicas now (read fresh)
    against the count the job started from, so nobody takes a database left at 0 for a
    running one; for in-place, also the target's claims."""
    namespace, name = job.params["namespace"], job.params["statefulset"]
    first = JobStep.objects.filter(job=job, name=FIRST_STEP).values_list("state", flat=True)
    original = (first.first() or {}).get("original_replicas")
    if original is None:
        original = (job.result or {}).get("replicas_at_request")
    was = f" (was {original})" if original is not None else ""
    try:
        now = k8s.statefulset_read(namespace=namespace, name=name).replicas
    except k8s.K8sNotFound:
        return f"StatefulSet {namespace}/{name} no longer exists{was}"
    except k8s.K8sError:
        if original is None:
            return None
        return f"StatefulSet {namespace}/{name}: replicas now unknown (cannot read it){was}"
    note = f"StatefulSet {namespace}/{name} left at {now} replicas{was}"
    if strategy(job.params) == STRATEGY_IN_PLACE:
        note += _claims_note(job)
    return note


def _claims_note(job: Job) -> str:
    """The target's claims now: a Terminating one goes when the pod stops, and the pod then
    comes back only on a new, empty claim."""
    states = []
    for claim, uid in ((job.result or {}).get("old_claim_uids") or {}).items():
        try:
            pvc = k8s.pvc_read(namespace=job.params["namespace"], name=claim)
        except k8s.K8sError:
            return ""
        if pvc is None:
            states.append(f"{claim} gone")
        elif pvc.uid != uid:
            states.append(f"{claim} new (uid {pvc.uid})")
        else:
            states.append(
                f"{claim} Terminating (deleted when its pod stops)"
                if pvc.terminating
                else f"{claim} untouched"
            )
    return f"; claims: {', '.join(states)}" if states else ""


PG_REBUILD = register(
    JobType(
        name=NAME,
        description=(
            "Rebuild one replica of a PostgreSQL StatefulSet on new, empty volumes: in place "
            "(only that replica down) or the seed's scale to 0 and back; never the primary."
        ),
        input=PgRebuildInput,
        target=target,
        target_kind="StatefulSet",
        steps=pg_scale_to_zero.STEPS,
        plans=PLANS,
        plan_key=plan_key,
        aftermath=aftermath,
        resume_check=resume_check,
        preflight=preflight,
        plan=pg_rebuild_plan,
    )
)
