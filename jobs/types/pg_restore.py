"""``pg-rebuild`` with ``from_snapshot`` (a restore): the replica's new claim is created from
a ``VolumeSnapshot`` (``spec.dataSource``) while no pod of the ordinal can exist, so the
StatefulSet controller never gets the chance to create an empty one first — never by racing it.

* ``scale-to-zero``: the seed's five steps with ``restore_pvc`` between ``delete_pvc`` and
  ``scale_sts_to_target`` (the set is at 0: nothing creates the claim meanwhile).
* ``in-place`` (only on the set's highest ordinal, else 409
  ``restore_needs_highest_ordinal``): ``check_target``, ``scale_down_one`` (only the target
  goes), ``wait_pod_gone``, ``delete_pvc``, ``wait_pvc_gone``, ``restore_pvc``, ``scale_back``,
  ``wait_pod_ready``. The other replicas keep running.

The snapshot is checked (exists in the namespace, ready to use) at the request and again
right before the claim is deleted; ``restore_pvc`` refuses to go on over a claim it did not
make. Crash-safe like every step: each looks before it acts.
"""

from __future__ import annotations

import re

from jobs.errors import JobRefused
from jobs.steps import Done, StepContext, StepDef, Wait
from jobs.types import pg_in_place, pg_scale_to_zero
from jobs.types.pg_guards import (
    Observed,
    snapshot_ready,
    target_pod,
)
from jobs.types.pg_steps import (
    close_scale_if_resumed,
    delete_checked_claims,
    guarded,
    job_actor,
    ns,
    read_pod,
    read_pvc,
    read_sts,
    scale_pinned,
)
from ops import k8s, services
from ops.audit import Target
from ops.errors import ObjectConflict

TARGET_GUARDS = ("operator_owned", "primary_guard")


def restore_template(sts: k8s.StatefulSetInfo, snap: k8s.SnapshotInfo) -> str:
    """The claim template the snapshot restores: its source claim's, when that is one of the
    set's claims, else the set's first template."""
    for tpl in sts.claim_templates:
        if snap.source_claim and re.fullmatch(
            rf"{re.escape(tpl)}-{re.escape(sts.name)}-\d+", snap.source_claim
        ):
            return tpl
    return sts.claim_templates[0]


def preflight(obs: Observed, params: dict) -> dict:
    """The restore's own checks at the request (after the rebuild's guards)."""
    snap = snapshot_ready(params["namespace"], params["from_snapshot"])
    if params.get("strategy") == "in-place" and params["ordinal"] != obs.sts.replicas - 1:
        raise JobRefused(
            f"{obs.where} has {obs.sts.replicas} replicas: an in-place restore takes the "
            f"highest ordinal ({obs.sts.replicas - 1}) out by scaling down by one, so its claim "
            f"can be made from the snapshot before any pod could use an empty one. Ordinal "
            f"{params['ordinal']} needs the scale-to-zero strategy (with allow_outage if the "
            "set holds a primary).",
            code="restore_needs_highest_ordinal",
        )
    return {"restore_template": restore_template(obs.sts, snap), "from_snapshot_uid": snap.uid}


def _restored_claim(ctx: StepContext) -> str:
    tpl = ctx.job_result()["restore_template"]
    return f"{tpl}-{ctx.params['statefulset']}-{ctx.params['ordinal']}"


def restore_pvc(ctx: StepContext) -> Done | Wait:
    """Create the claim from the snapshot while no pod of the ordinal exists."""
    name, snapshot = _restored_claim(ctx), ctx.params["from_snapshot"]
    pvc = read_pvc(ctx, name)
    what = Target(services.ACTION_CREATE, services.KIND_PVC, ns(ctx), name)
    if pvc is not None:
        if pvc.data_source == snapshot and pvc.uid not in _old_uids(ctx):
            if ctx.state.get("creating"):
                ctx.close_interrupted(what, applied=True, observed=f"claim {name} exists")
            ctx.record_result(restored_claim=name, restored_claim_uid=pvc.uid)
            return Done(f"{name} (uid {pvc.uid}) restored from VolumeSnapshot {snapshot}")
        if pvc.terminating:
            return Wait(f"claim {name} still Terminating")
        raise JobRefused(
            f"claim {name} (uid {pvc.uid}) exists and was not made from {snapshot} by this "
            "job: not restoring over it",
            code="target_changed",
        )
    snapshot_ready(ns(ctx), snapshot)
    sts = read_sts(ctx)
    pod = read_pod(ctx, target_pod(ctx.params))
    if pod is not None or sts.replicas > ctx.params["ordinal"]:
        raise JobRefused(
            f"{target_pod(ctx.params)} may run (replicas {sts.replicas}): creating {name} now "
            "could race the StatefulSet controller",
            code="pods_not_down",
        )
    resumed = ctx.state.get("creating", False)
    ctx.state["creating"] = True
    ctx.checkpoint()
    try:
        created = services.pvc_create_from_snapshot(
            actor=job_actor(ctx),
            namespace=ns(ctx),
            name=name,
            template=sts.claim_template_bodies[ctx.job_result()["restore_template"]],
            snapshot=snapshot,
            job_id=ctx.job_id,
        )
    except ObjectConflict:
        return Wait(f"claim {name} appeared meanwhile; looking again")
    if resumed:
        ctx.close_interrupted(what, applied=False, observed=f"claim {name} did not exist")
    ctx.record_result(restored_claim=name, restored_claim_uid=created.uid)
    return Done(f"{name} (uid {created.uid}) restored from VolumeSnapshot {snapshot}")


def _old_uids(ctx: StepContext) -> set[str]:
    return {u for u in (ctx.job_result().get("old_claim_uids") or {}).values() if u}


# --- in-place on the highest ordinal -------------------------------------------------------------


def scale_down_one(ctx: StepContext) -> Done | Wait:
    """Scale the set from ordinal+1 to ordinal: only the target goes (highest first)."""
    ordinal = ctx.params["ordinal"]
    obs = guarded(ctx, TARGET_GUARDS)
    if obs.sts.replicas == ordinal:
        close_scale_if_resumed(ctx, ordinal)
        return Done(f"at {ordinal} replicas: {target_pod(ctx.params)} goes")
    if obs.sts.replicas != ordinal + 1:
        raise JobRefused(
            f"{obs.where} now has {obs.sts.replicas} replicas: {target_pod(ctx.params)} is no "
            "longer its highest ordinal",
            code="restore_needs_highest_ordinal",
        )
    if not scale_pinned(ctx, ordinal, obs):
        return Wait("the StatefulSet changed between the check and the scale; checking again")
    return Done(f"scaled to {ordinal}: only {target_pod(ctx.params)} goes")


def wait_pod_gone(ctx: StepContext) -> Done | Wait:
    """Done when the target pod is gone from the API (terminating counts as present)."""
    name = target_pod(ctx.params)
    pod = read_pod(ctx, name)
    if pod is None:
        return Done(f"{name} gone")
    return Wait(f"{name} still {'terminating' if pod.terminating else 'present'}")


def delete_pvc(ctx: StepContext) -> Done:
    """Delete the target's claims (no pod uses them any more), after the guards and with the
    snapshot still ready."""
    name = target_pod(ctx.params)
    snapshot_ready(ns(ctx), ctx.params["from_snapshot"])

    def target_still_down(claim: str, obs: Observed) -> None:
        if obs.pod(name) is not None or obs.sts.replicas > ctx.params["ordinal"]:
            raise JobRefused(
                f"{name} is back (replicas {obs.sts.replicas}): not deleting {claim}",
                code="pods_not_down",
            )

    return Done("; ".join(delete_checked_claims(ctx, TARGET_GUARDS, target_still_down)))


def scale_back(ctx: StepContext) -> Done | Wait:
    """Scale the set back to ordinal+1: the controller brings the target up on its claim."""
    want = ctx.params["ordinal"] + 1
    obs = guarded(ctx, ("operator_owned",))
    if obs.sts.replicas == want:
        close_scale_if_resumed(ctx, want)
        return Done(f"at {want} replicas")
    if not scale_pinned(ctx, want, obs):
        return Wait("the StatefulSet changed between the read and the scale; reading again")
    return Done(f"scaled back to {want}")


SCALE_TO_ZERO_STEPS = (
    *pg_scale_to_zero.STEPS[:3],
    StepDef("restore_pvc", restore_pvc),
    *pg_scale_to_zero.STEPS[3:],
)
IN_PLACE_STEPS = (
    pg_in_place.STEPS[0],  # check_target
    StepDef("scale_down_one", scale_down_one),
    StepDef("wait_pod_gone", wait_pod_gone),
    StepDef("delete_pvc", delete_pvc),
    pg_in_place.STEPS[3],  # wait_pvc_gone
    StepDef("restore_pvc", restore_pvc),
    StepDef("scale_back", scale_back),
    pg_in_place.STEPS[4],  # wait_pod_ready
)

RESUME_GUARDS_SCALE_TO_ZERO = {**pg_scale_to_zero.RESUME_GUARDS, "restore_pvc": ("operator_owned",)}
RESUME_GUARDS_IN_PLACE = {
    "check_target": pg_in_place.CHECK_GUARDS,
    "scale_down_one": TARGET_GUARDS,
    "wait_pod_gone": ("operator_owned",),
    "delete_pvc": TARGET_GUARDS,
    "wait_pvc_gone": ("operator_owned",),
    "restore_pvc": ("operator_owned",),
    "scale_back": ("operator_owned",),
    "wait_pod_ready": ("operator_owned",),
}
