"""``pg-rebuild``, strategy ``scale-to-zero`` (the seed's): every pod goes down.

1. ``scale_sts_to_zero`` — remember the replica count, scale to 0 unless already 0;
2. ``wait_pods_down`` — until listing the StatefulSet's selector returns nothing (terminating
   pods included: a terminating pod still mounts the claim);
3. ``delete_pvc`` — delete ``<template>-<sts>-<ordinal>`` for every volumeClaimTemplate that is
   still there and not already being deleted, then wait until each is gone from the API
   (a pod created while its claim is Terminating stays Pending for ever);
4. ``scale_sts_to_target`` — scale to ``target_replicas`` unless already there;
5. ``wait_pods_ready`` — until ``readyReplicas == target`` with ``observedGeneration >=
   generation`` (status written for an older spec means nothing).

Before the scale down: the set is not operator-owned, the replica exists, it is not the
primary, the set holds no primary (unless ``allow_outage``), the target is not below the
replicas at request (unless ``allow_scale_down``). Before each claim delete: no pod of the set
exists, and the primary signals (the leader record speaks with every pod down) still allow it.
"""

from __future__ import annotations

from jobs.errors import JobRefused
from jobs.steps import Done, StepContext, StepDef, Wait
from jobs.types.pg_guards import (
    AT_REQUEST,
    STRATEGY_SCALE_TO_ZERO,
    check,
    snapshot_ready,
    target_pod,
)
from jobs.types.pg_steps import (
    claims_of,
    close_claim_if_resumed,
    close_scale_if_resumed,
    db_time,
    delete_claim_pinned,
    guarded,
    new_evidence,
    no_templates,
    ns,
    observe_now,
    read_pvc,
    read_sts,
    scale_pinned,
)
from ops import k8s
from ops.errors import from_k8s

FIRST_STEP = "scale_sts_to_zero"

# The guards of each step's destructive call (the first failing one is raised).
SCALE_DOWN_GUARDS = AT_REQUEST[STRATEGY_SCALE_TO_ZERO]
WAIT_DOWN_GUARDS = ("operator_owned", "primary_guard", "primary_in_set")
CLAIM_DELETE_GUARDS = ("operator_owned", "primary_guard", "primary_in_set", "pods_not_down")
SCALE_UP_GUARDS = ("operator_owned", "would_scale_down")
WAIT_GUARDS = ("operator_owned",)


def scale_sts_to_zero(ctx: StepContext) -> Done | Wait:
    """Remember the replica count, then scale to 0 unless it already is — after its guards.

    Refuses before any change when the set has lost its volumeClaimTemplates since the job
    was accepted: scaling down would only take the database away for nothing.
    """
    job = ctx.job_result()
    obs = observe_now(ctx, job)
    sts = obs.sts
    if not sts.claim_templates:
        raise no_templates(sts)
    original = ctx.state.setdefault("original_replicas", sts.replicas)
    ctx.state.setdefault("selector", sts.label_selector)
    ctx.state.setdefault("claims", sts.pvc_names(ctx.params["ordinal"]))
    if sts.replicas == 0:
        if ctx.state.get("requested_replicas") == 0:
            close_scale_if_resumed(ctx, 0)
            return Done(f"scaled to 0 (was {original})")
        return Done(f"already at 0 replicas (was {original})")
    check(obs, ctx.params, SCALE_DOWN_GUARDS, job)
    pod = obs.pod(target_pod(ctx.params))
    if "old_pod_uid" not in job:
        ctx.record_result(old_pod_uid=pod.uid if pod else None)
    down_since = db_time(ctx)
    if not scale_pinned(ctx, 0, obs):
        return Wait("the StatefulSet changed between the check and the scale; checking again")
    ctx.record_result(down_since=down_since)
    return Done(f"scaled to 0 (was {original}); {obs.roles.describe(target_pod(ctx.params))}")


def _selector(ctx: StepContext) -> str:
    """The StatefulSet's pod selector, as the first step read it (else read now), kept."""
    if "selector" not in ctx.state:
        known = ctx.earlier_state(FIRST_STEP).get("selector")
        ctx.state["selector"] = known if known is not None else read_sts(ctx).label_selector
    return ctx.state["selector"]


def wait_pods_down(ctx: StepContext) -> Done | Wait:
    """Done when the selector lists no pod at all (terminating ones count)."""
    selector = _selector(ctx)
    try:
        pods = k8s.pod_list(namespace=ns(ctx), label_selector=selector)
    except k8s.K8sError as e:
        raise from_k8s(e) from e
    if not pods:
        return Done(f"no pods left matching {selector}")
    names = ", ".join(sorted(p.name for p in pods))
    return Wait(f"pods {names} still present")


def delete_pvc(ctx: StepContext) -> Done | Wait:
    """Delete the ordinal's claims still there and not Terminating — each only after its
    guards hold (no pod of the set exists, the target is not the primary...); done when every
    one is gone from the API (404), not merely Terminating.

    Each claim is pinned to the incarnation (uid) this step first saw, or to "absent" if it
    was already gone: a claim that comes back under the same name with another uid was made
    by someone else (e.g. the StatefulSet scaled up meanwhile) and may be in use, so the step
    fails rather than delete it.
    """
    deleted: dict[str, str] = ctx.state.setdefault("deleted", {})
    # name -> uid of the claim this step is removing (None: it was already gone).
    pinned: dict[str, str | None] = ctx.state.setdefault("uids", dict(deleted))
    still_there: list[str] = []
    for name in claims_of(ctx, FIRST_STEP):
        pvc = read_pvc(ctx, name)
        close_claim_if_resumed(ctx, name, pvc)
        if pvc is None:
            pinned.setdefault(name, None)
            continue  # gone from the API: what this step waits for
        if pinned.setdefault(name, pvc.uid) != pvc.uid:
            raise JobRefused(
                f"claim {name} was recreated (uid {pvc.uid}) by someone else; not deleting it again"
                if pinned[name]
                else f"claim {name} appeared (uid {pvc.uid}) after this step found it gone; "
                "not deleting it",
                code="target_changed",
            )
        if not pvc.terminating:
            if ctx.params.get("from_snapshot"):  # a restore: never delete without its source
                snapshot_ready(ns(ctx), ctx.params["from_snapshot"])
            guarded(ctx, CLAIM_DELETE_GUARDS)
            _record_old_claim(ctx, name, pvc.uid)
            delete_claim_pinned(ctx, pvc)
        still_there.append(name)
    if still_there:
        return Wait(f"claims {', '.join(still_there)} still present (Terminating)")
    if deleted:
        return Done("deleted " + ", ".join(f"{n} (uid {u})" for n, u in sorted(deleted.items())))
    return Done(f"claims {', '.join(claims_of(ctx, FIRST_STEP))} already gone")


def _record_old_claim(ctx: StepContext, name: str, uid: str) -> None:
    old = dict(ctx.job_result().get("old_claim_uids") or {})
    if name not in old:
        old[name] = uid
        ctx.record_result(old_claim_uids=old)


def scale_sts_to_target(ctx: StepContext) -> Done | Wait:
    """Scale to ``target_replicas`` unless it already is (pinned to the set as read)."""
    target = ctx.params["target_replicas"]
    obs = guarded(ctx, SCALE_UP_GUARDS)
    if obs.sts.replicas == target:
        if ctx.state.get("requested_replicas") == target:
            close_scale_if_resumed(ctx, target)
            return Done(f"scaled to {target}")
        return Done(f"already at {target} replicas")
    if not scale_pinned(ctx, target, obs):
        return Wait("the StatefulSet changed between the read and the scale; reading again")
    return Done(f"scaled to {target}")


def wait_pods_ready(ctx: StepContext) -> Done | Wait:
    """Done when ``readyReplicas == target`` in a status that has observed the current
    generation (then the evidence: the new pod and claims, how long the target was down)."""
    target = ctx.params["target_replicas"]
    sts = read_sts(ctx)
    if sts.observed_generation < sts.generation:
        progress = (
            f"status not yet observed for generation {sts.generation} "
            f"(observed {sts.observed_generation})"
        )
    elif sts.ready_replicas == target:
        evidence = new_evidence(ctx, claims_of(ctx, FIRST_STEP))
        return Done(f"{target} of {target} pods ready; {evidence}")
    else:
        progress = f"{sts.ready_replicas} of {target} pods ready"
    if ctx.past_deadline():
        progress += _not_ready_pods(ctx, sts.label_selector)
    return Wait(progress)


def _not_ready_pods(ctx: StepContext, selector: str) -> str:
    """Which pods are not ready (one extra list, only for the timeout message)."""
    try:
        pods = k8s.pod_list(namespace=ns(ctx), label_selector=selector)
    except k8s.K8sError:
        return ""
    lagging = sorted(f"{p.name} ({p.phase or 'no phase'})" for p in pods if not p.ready)
    return f"; not ready: {', '.join(lagging)}" if lagging else ""


# --- in-place --------------------------------------------------------------------------------


STEPS = (
    StepDef("scale_sts_to_zero", scale_sts_to_zero),
    StepDef("wait_pods_down", wait_pods_down),
    StepDef("delete_pvc", delete_pvc),
    StepDef("scale_sts_to_target", scale_sts_to_target),
    StepDef("wait_pods_ready", wait_pods_ready),
)

#: The guards a retry request checks before the job may resume at a step.
RESUME_GUARDS = {
    "scale_sts_to_zero": SCALE_DOWN_GUARDS,
    "wait_pods_down": WAIT_DOWN_GUARDS,
    "delete_pvc": CLAIM_DELETE_GUARDS,
    "scale_sts_to_target": SCALE_UP_GUARDS,
    "wait_pods_ready": WAIT_GUARDS,
}
