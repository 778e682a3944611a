"""``pg-rebuild``, strategy ``in-place``: only the target replica goes down.

1. ``check_target`` — every request guard, then record the target's pod and claims (uids);
2. ``delete_pvc`` — delete the target's claims: they stay Terminating while its pod runs
   (pvc-protection), each only while the target's own pod is the only one using it;
3. ``delete_pod`` — delete the target pod, pinned to the uid that used the claims;
4. ``wait_pvc_gone`` — until the old claims are gone from the API (the StatefulSet controller
   does not create the pod while its claim is Terminating);
5. ``wait_pod_ready`` — until a new pod (new uid) is Ready on claims with new uids.

The other replicas are never touched. Before each delete: the set is not operator-owned, the
replica exists, it is not (and may not be) the primary.
"""

from __future__ import annotations

from contextlib import suppress

from jobs.errors import JobRefused
from jobs.steps import Done, StepContext, StepDef, Wait
from jobs.types.pg_guards import (
    AT_REQUEST,
    STRATEGY_IN_PLACE,
    Observed,
    target_pod,
)
from jobs.types.pg_steps import (
    check_approved,
    claim_uids,
    claims_of,
    db_time,
    delete_checked_claims,
    guarded,
    job_actor,
    new_evidence,
    no_templates,
    ns,
    read_pod,
    read_pvc,
)
from ops import services
from ops.audit import Target
from ops.errors import ObjectNotFound

CHECK_GUARDS = AT_REQUEST[STRATEGY_IN_PLACE]
DELETE_GUARDS = ("operator_owned", "no_such_replica", "primary_guard")
WAIT_GUARDS = ("operator_owned",)


def check_target(ctx: StepContext) -> Done:
    """Check the target against every request guard and record it: its pod and claims."""
    obs = guarded(ctx, CHECK_GUARDS)
    if not obs.sts.claim_templates:
        raise no_templates(obs.sts)
    name = target_pod(ctx.params)
    pod = obs.pod(name)
    claims = obs.sts.pvc_names(ctx.params["ordinal"])
    uids = claim_uids(ctx, claims)
    ctx.state["claims"] = claims
    ctx.record_result(old_pod_uid=pod.uid if pod else None, old_claim_uids=uids)
    others = [p for p in obs.pods if p.name != name and not p.terminating]
    return Done(
        f"{obs.roles.describe(name)}; pod uid {pod.uid if pod else 'none'}; claims "
        + ", ".join(f"{n} uid {u}" for n, u in uids.items())
        + f"; other pods ready: {sum(p.ready for p in others)} of {len(others)}"
    )


def delete_pvc(ctx: StepContext) -> Done:
    """Delete the target's claims (they stay Terminating while its pod runs), each only while
    the target's own pod is the only one using it, after the guards."""
    name = target_pod(ctx.params)

    def only_the_target_uses(claim: str, obs: Observed) -> None:
        strangers = [p.name for p in obs.pods if claim in p.claim_names and p.name != name]
        if strangers:
            raise JobRefused(
                f"claim {claim} is used by {', '.join(strangers)}, not only by {name}: "
                "not deleting it",
                code="claim_in_use",
            )
        # The pod that will be deleted next: the target as it is now (set only once).
        pod = obs.pod(name)
        ctx.state.setdefault("doomed_pod_uid", pod.uid if pod else None)

    done = delete_checked_claims(ctx, DELETE_GUARDS, only_the_target_uses)
    return Done("; ".join(done) + f" (Terminating while {name} uses them)")


def delete_pod(ctx: StepContext) -> Done:
    """Delete the target pod (pinned to the uid that used the claims), after the guards."""
    name = target_pod(ctx.params)
    doomed = ctx.earlier_state("delete_pvc").get("doomed_pod_uid")
    pod = read_pod(ctx, name)
    target = Target(services.ACTION_DELETE, services.KIND_POD, ns(ctx), name)
    sent = ctx.state.get("sent")
    if pod is None or pod.uid != doomed or pod.terminating:
        if sent:
            state = "gone" if pod is None or pod.uid != doomed else "Terminating"
            ctx.close_interrupted(target, applied=True, observed=f"pod {name} (uid {sent}) {state}")
            ctx.record_result(pod_deleted_at=ctx.state["at"])
            return Done(f"deleted {name} (uid {sent})")
        return Done(f"{name} (uid {doomed}) already {'gone' if pod is None else 'deleted'}")
    guarded(ctx, DELETE_GUARDS)
    check_approved(ctx, "Pod", name, pod.uid)
    ctx.state.update(sent=pod.uid, at=db_time(ctx))
    ctx.checkpoint()
    with suppress(ObjectNotFound):  # gone between our read and the delete: gone is gone
        services.pod_delete(
            actor=job_actor(ctx), namespace=ns(ctx), name=name, job_id=ctx.job_id, uid=pod.uid
        )
    if sent == pod.uid:
        ctx.close_interrupted(
            target, applied=False, observed=f"pod {name} (uid {pod.uid}) was still running"
        )
    ctx.record_result(down_since=ctx.state["at"])
    return Done(f"deleted {name} (uid {pod.uid})")


def wait_pvc_gone(ctx: StepContext) -> Done | Wait:
    """Done when every old claim is gone from the API (or already replaced by a new one)."""
    old = ctx.job_result().get("old_claim_uids") or {}
    left = []
    for claim in claims_of(ctx, "check_target"):
        pvc = read_pvc(ctx, claim)
        if pvc is not None and pvc.uid == old.get(claim):
            left.append(f"{claim} ({'Terminating' if pvc.terminating else 'not deleted'})")
    if left:
        return Wait(f"old claims still present: {', '.join(left)}")
    return Done(f"old claims gone: {', '.join(claims_of(ctx, 'check_target'))}")


def wait_pod_ready(ctx: StepContext) -> Done | Wait:
    """Done when a new pod (new uid) is Ready on claims with new uids."""
    name = target_pod(ctx.params)
    job = ctx.job_result()
    old_claims = job.get("old_claim_uids") or {}
    pod = read_pod(ctx, name)
    if pod is None or pod.uid == job.get("old_pod_uid"):
        return Wait(f"no new pod {name} yet")
    if not pod.ready or pod.terminating:
        return Wait(f"new pod {name} (uid {pod.uid}) not Ready ({pod.phase or 'no phase'})")
    claims = claims_of(ctx, "check_target")
    uids = claim_uids(ctx, claims)
    stale = [c for c, uid in uids.items() if uid is None or uid == old_claims.get(c)]
    if stale:
        return Wait(f"new pod {name} Ready but claims {', '.join(stale)} are not new")
    evidence = new_evidence(ctx, claims, pod=pod, new_claims=uids, job=job)
    return Done(f"new pod Ready: {evidence}")


# --- the job type ----------------------------------------------------------------------------


STEPS = (
    StepDef("check_target", check_target),
    StepDef("delete_pvc", delete_pvc),
    StepDef("delete_pod", delete_pod),
    StepDef("wait_pvc_gone", wait_pvc_gone),
    StepDef("wait_pod_ready", wait_pod_ready),
)

#: The guards a retry request checks before the job may resume at a step.
RESUME_GUARDS = {
    "check_target": CHECK_GUARDS,
    "delete_pvc": DELETE_GUARDS,
    "delete_pod": DELETE_GUARDS,
    "wait_pvc_gone": WAIT_GUARDS,
    "wait_pod_ready": WAIT_GUARDS,
}
