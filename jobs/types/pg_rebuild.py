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

from contextlib import suppress
from datetime import datetime

from jobs.models import Job, JobStep
from jobs.registry import Done, JobType, StepDef, Wait, register
from jobs.runner import StepContext
from jobs.types import pg_guards as guards
from jobs.types.pg_guards import (
    STRATEGY_IN_PLACE,
    STRATEGY_SCALE_TO_ZERO,
    ClaimInUse,
    Observed,
    RebuildRefused,
    TargetChanged,
    check,
    observe,
    target_pod,
)
from ops import k8s, services
from ops.actors import ORIGIN_JOB, Actor
from ops.audit import Target
from ops.errors import (
    InvalidInput,
    ObjectConflict,
    ObjectNotFound,
    OpsError,
    TargetHeldByJob,
    from_k8s,
)

NAME = "pg-rebuild"
FIRST_STEP = "scale_sts_to_zero"

# The guards of each destructive call, by strategy and step (the first failing one is raised).
SCALE_DOWN_GUARDS = guards.AT_REQUEST[STRATEGY_SCALE_TO_ZERO]
WAIT_DOWN_GUARDS = ("operator_owned", "primary_guard", "primary_in_set")
CLAIM_DELETE_GUARDS = ("operator_owned", "primary_guard", "primary_in_set", "pods_not_down")
SCALE_UP_GUARDS = ("operator_owned", "would_scale_down")
IN_PLACE_CHECK_GUARDS = guards.AT_REQUEST[STRATEGY_IN_PLACE]
IN_PLACE_DELETE_GUARDS = ("operator_owned", "no_such_replica", "primary_guard")
WAIT_GUARDS = ("operator_owned",)


def job_actor(ctx: StepContext) -> Actor:
    """The requester, acting through a job: same name, address and namespace scope."""
    return Actor(
        name=ctx.actor or "job",
        source_ip=ctx.source_ip,
        namespaces=ctx.actor_namespaces,
        origin=ORIGIN_JOB,
    )


def _ns(ctx: StepContext) -> str:
    return ctx.params["namespace"]


def _observe(ctx: StepContext, job: dict | None = None) -> Observed:
    """The set, its pods and roles now (with the Patroni scopes the job has seen before)."""
    job = ctx.job_result() if job is None else job
    return observe(
        namespace=_ns(ctx),
        name=ctx.params["statefulset"],
        known_scopes=job.get("patroni_scopes", ()),
    )


def _guarded(ctx: StepContext, names: tuple[str, ...]) -> Observed:
    """A fresh snapshot on which every guard in ``names`` holds (else the refusal raised)."""
    job = ctx.job_result()
    obs = _observe(ctx, job)
    check(obs, ctx.params, names, job)
    return obs


def _read_sts(ctx: StepContext) -> k8s.StatefulSetInfo:
    try:
        return k8s.statefulset_read(namespace=_ns(ctx), name=ctx.params["statefulset"])
    except k8s.K8sError as e:
        raise from_k8s(e) from e


def _read_pvc(ctx: StepContext, name: str) -> k8s.PvcInfo | None:
    try:
        return k8s.pvc_read(namespace=_ns(ctx), name=name)
    except k8s.K8sError as e:
        raise from_k8s(e) from e


def _read_pod(ctx: StepContext, name: str) -> k8s.PodInfo | None:
    try:
        return k8s.pod_read(namespace=_ns(ctx), name=name)
    except k8s.K8sError as e:
        raise from_k8s(e) from e


def _no_templates(sts: k8s.StatefulSetInfo) -> RebuildRefused:
    return RebuildRefused(
        f"StatefulSet {sts.namespace}/{sts.name} has no volumeClaimTemplates any more: "
        "there is no claim to rebuild"
    )


def _now(ctx: StepContext) -> str:
    return ctx.db_now().isoformat()


def _seconds_since(ctx: StepContext, since: str | None) -> float | None:
    if not since:
        return None
    return round((ctx.db_now() - datetime.fromisoformat(since)).total_seconds(), 1)


# --- audited mutations, pinned ---------------------------------------------------------------


def _scale_target(ctx: StepContext) -> Target:
    return Target(
        services.ACTION_SCALE, services.KIND_STATEFULSET, _ns(ctx), ctx.params["statefulset"]
    )


def _scale(ctx: StepContext, replicas: int, obs: Observed) -> bool:
    """Scale the set to ``replicas`` only if it is still as ``obs`` read it (its
    resourceVersion); False when it changed since (409: read again, decide again)."""
    resumed = ctx.state.get("requested_replicas") == replicas
    ctx.state["requested_replicas"] = replicas
    ctx.checkpoint()  # saved before acting: a re-run knows this scale was already sent
    try:
        services.statefulset_scale(
            actor=job_actor(ctx),
            namespace=_ns(ctx),
            name=ctx.params["statefulset"],
            replicas=replicas,
            job_id=ctx.job_id,
            resource_version=obs.sts.resource_version,
        )
    except TargetHeldByJob:
        raise
    except ObjectConflict:
        return False
    if resumed:
        ctx.close_interrupted(
            _scale_target(ctx),
            applied=False,
            observed=f"replicas were still {obs.sts.replicas} (resourceVersion "
            f"{obs.sts.resource_version})",
        )
    return True


def _close_scale_if_resumed(ctx: StepContext, replicas: int) -> None:
    if ctx.state.get("requested_replicas") == replicas:
        ctx.close_interrupted(
            _scale_target(ctx), applied=True, observed=f"the set is at {replicas} replicas"
        )


def _claim_target(ctx: StepContext, name: str) -> Target:
    return Target(services.ACTION_DELETE, services.KIND_PVC, _ns(ctx), name)


def _delete_claim(ctx: StepContext, pvc: k8s.PvcInfo) -> None:
    """Delete ``pvc`` pinned to its uid (the caller has just checked its guards)."""
    deleted: dict[str, str] = ctx.state.setdefault("deleted", {})
    resumed = deleted.get(pvc.name) == pvc.uid
    deleted[pvc.name] = pvc.uid
    ctx.checkpoint()
    try:
        # Pinned to the claim just read: a replacement made since is a 409, not deleted.
        services.pvc_delete(
            actor=job_actor(ctx), namespace=_ns(ctx), name=pvc.name, job_id=ctx.job_id, uid=pvc.uid
        )
    except ObjectNotFound:
        return  # vanished between our read and the delete: gone is gone
    if resumed:
        ctx.close_interrupted(
            _claim_target(ctx, pvc.name),
            applied=False,
            observed=f"claim {pvc.name} (uid {pvc.uid}) was still there, not Terminating",
        )


def _close_claim_if_resumed(ctx: StepContext, name: str, pvc: k8s.PvcInfo | None) -> None:
    """A claim this step had sent a delete for is Terminating or gone: close that attempt."""
    uid = ctx.state.get("deleted", {}).get(name)
    if uid and (pvc is None or pvc.uid != uid or pvc.terminating):
        state = "Terminating" if pvc is not None and pvc.uid == uid else "gone"
        ctx.close_interrupted(
            _claim_target(ctx, name), applied=True, observed=f"claim {name} (uid {uid}) {state}"
        )


def _claims(ctx: StepContext, step: str) -> list[str]:
    """The claims of the ordinal, as ``step`` read them (else read now), kept in state."""
    if "claims" not in ctx.state:
        known = ctx.earlier_state(step).get("claims")
        if known:
            ctx.state["claims"] = list(known)
    if "claims" not in ctx.state:
        sts = _read_sts(ctx)
        if not sts.claim_templates:
            raise _no_templates(sts)
        ctx.state["claims"] = sts.pvc_names(ctx.params["ordinal"])
    return ctx.state["claims"]


def _claim_uids(ctx: StepContext, names: list[str]) -> dict[str, str | None]:
    uids = {}
    for name in names:
        pvc = _read_pvc(ctx, name)
        uids[name] = pvc.uid if pvc else None
    return uids


# --- scale-to-zero ----------------------------------------------------------------------------


def scale_sts_to_zero(ctx: StepContext) -> Done | Wait:
    """Remember the replica count, then scale to 0 unless it already is — after its guards.

    Refuses before any change when the set has lost its volumeClaimTemplates since the job
    was accepted: scaling down would only take the database away for nothing.
    """
    job = ctx.job_result()
    obs = _observe(ctx, job)
    sts = obs.sts
    if not sts.claim_templates:
        raise _no_templates(sts)
    original = ctx.state.setdefault("original_replicas", sts.replicas)
    ctx.state.setdefault("selector", sts.label_selector)
    ctx.state.setdefault("claims", sts.pvc_names(ctx.params["ordinal"]))
    if sts.replicas == 0:
        if ctx.state.get("requested_replicas") == 0:
            _close_scale_if_resumed(ctx, 0)
            return Done(f"scaled to 0 (was {original})")
        return Done(f"already at 0 replicas (was {original})")
    check(obs, ctx.params, SCALE_DOWN_GUARDS, job)
    pod = obs.pod(target_pod(ctx.params))
    if "old_pod_uid" not in job:
        ctx.record_result(old_pod_uid=pod.uid if pod else None)
    down_since = _now(ctx)
    if not _scale(ctx, 0, obs):
        return Wait("the StatefulSet changed between the check and the scale; checking again")
    ctx.record_result(down_since=down_since)
    return Done(f"scaled to 0 (was {original}); {obs.roles.describe(target_pod(ctx.params))}")


def _selector(ctx: StepContext) -> str:
    """The StatefulSet's pod selector, as the first step read it (else read now), kept."""
    if "selector" not in ctx.state:
        known = ctx.earlier_state(FIRST_STEP).get("selector")
        ctx.state["selector"] = known if known is not None else _read_sts(ctx).label_selector
    return ctx.state["selector"]


def wait_pods_down(ctx: StepContext) -> Done | Wait:
    """Done when the selector lists no pod at all (terminating ones count)."""
    selector = _selector(ctx)
    try:
        pods = k8s.pod_list(namespace=_ns(ctx), label_selector=selector)
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
    for name in _claims(ctx, FIRST_STEP):
        pvc = _read_pvc(ctx, name)
        _close_claim_if_resumed(ctx, name, pvc)
        if pvc is None:
            pinned.setdefault(name, None)
            continue  # gone from the API: what this step waits for
        if pinned.setdefault(name, pvc.uid) != pvc.uid:
            raise TargetChanged(
                f"claim {name} was recreated (uid {pvc.uid}) by someone else; not deleting it again"
                if pinned[name]
                else f"claim {name} appeared (uid {pvc.uid}) after this step found it gone; "
                "not deleting it"
            )
        if not pvc.terminating:
            _guarded(ctx, CLAIM_DELETE_GUARDS)
            _record_old_claim(ctx, name, pvc.uid)
            _delete_claim(ctx, pvc)
        still_there.append(name)
    if still_there:
        return Wait(f"claims {', '.join(still_there)} still present (Terminating)")
    if deleted:
        return Done("deleted " + ", ".join(f"{n} (uid {u})" for n, u in sorted(deleted.items())))
    return Done(f"claims {', '.join(_claims(ctx, FIRST_STEP))} already gone")


def _record_old_claim(ctx: StepContext, name: str, uid: str) -> None:
    old = dict(ctx.job_result().get("old_claim_uids") or {})
    if name not in old:
        old[name] = uid
        ctx.record_result(old_claim_uids=old)


def scale_sts_to_target(ctx: StepContext) -> Done | Wait:
    """Scale to ``target_replicas`` unless it already is (pinned to the set as read)."""
    target = ctx.params["target_replicas"]
    obs = _guarded(ctx, SCALE_UP_GUARDS)
    if obs.sts.replicas == target:
        if ctx.state.get("requested_replicas") == target:
            _close_scale_if_resumed(ctx, target)
            return Done(f"scaled to {target}")
        return Done(f"already at {target} replicas")
    if not _scale(ctx, target, obs):
        return Wait("the StatefulSet changed between the read and the scale; reading again")
    return Done(f"scaled to {target}")


def wait_pods_ready(ctx: StepContext) -> Done | Wait:
    """Done when ``readyReplicas == target`` in a status that has observed the current
    generation (then the evidence: the new pod and claims, how long the target was down)."""
    target = ctx.params["target_replicas"]
    sts = _read_sts(ctx)
    if sts.observed_generation < sts.generation:
        progress = (
            f"status not yet observed for generation {sts.generation} "
            f"(observed {sts.observed_generation})"
        )
    elif sts.ready_replicas == target:
        evidence = _new_evidence(ctx, _claims(ctx, FIRST_STEP))
        return Done(f"{target} of {target} pods ready; {evidence}")
    else:
        progress = f"{sts.ready_replicas} of {target} pods ready"
    if ctx.past_deadline():
        progress += _not_ready_pods(ctx, sts.label_selector)
    return Wait(progress)


def _new_evidence(ctx: StepContext, claims: list[str]) -> str:
    """Record the target's new pod and claim uids and its downtime; say them in a line."""
    name = target_pod(ctx.params)
    pod = _read_pod(ctx, name)
    new_claims = _claim_uids(ctx, claims)
    job = ctx.job_result()
    down = _seconds_since(ctx, job.get("down_since"))
    ctx.record_result(
        new_pod_uid=pod.uid if pod else None, new_claim_uids=new_claims, downtime_seconds=down
    )
    claims_text = ", ".join(f"{n} uid {u}" for n, u in new_claims.items())
    return (
        f"{name} uid {pod.uid if pod else '?'} (was {job.get('old_pod_uid')}) on {claims_text}"
        + (f"; {name} down {down} s" if down is not None else "")
    )


def _not_ready_pods(ctx: StepContext, selector: str) -> str:
    """Which pods are not ready (one extra list, only for the timeout message)."""
    try:
        pods = k8s.pod_list(namespace=_ns(ctx), label_selector=selector)
    except k8s.K8sError:
        return ""
    lagging = sorted(f"{p.name} ({p.phase or 'no phase'})" for p in pods if not p.ready)
    return f"; not ready: {', '.join(lagging)}" if lagging else ""


# --- in-place --------------------------------------------------------------------------------


def check_target(ctx: StepContext) -> Done:
    """Check the target against every request guard and record it: its pod and claims."""
    obs = _guarded(ctx, IN_PLACE_CHECK_GUARDS)
    if not obs.sts.claim_templates:
        raise _no_templates(obs.sts)
    name = target_pod(ctx.params)
    pod = obs.pod(name)
    claims = obs.sts.pvc_names(ctx.params["ordinal"])
    uids = _claim_uids(ctx, claims)
    ctx.state["claims"] = claims
    ctx.record_result(old_pod_uid=pod.uid if pod else None, old_claim_uids=uids)
    others = [p for p in obs.pods if p.name != name and not p.terminating]
    return Done(
        f"{obs.roles.describe(name)}; pod uid {pod.uid if pod else 'none'}; claims "
        + ", ".join(f"{n} uid {u}" for n, u in uids.items())
        + f"; other pods ready: {sum(p.ready for p in others)} of {len(others)}"
    )


def delete_pvc_in_place(ctx: StepContext) -> Done:
    """Delete the target's claims (they stay Terminating while its pod runs), each only while
    the target's own pod is the only one using it, after the guards."""
    name = target_pod(ctx.params)
    old = ctx.job_result().get("old_claim_uids") or {}
    done = []
    for claim in _claims(ctx, "check_target"):
        pvc = _read_pvc(ctx, claim)
        _close_claim_if_resumed(ctx, claim, pvc)
        if pvc is None or pvc.terminating:
            done.append(f"{claim} {'gone' if pvc is None else 'Terminating'}")
            continue
        if old.get(claim) and pvc.uid != old[claim]:
            raise TargetChanged(
                f"claim {claim} is not the one checked (uid {old[claim]}, now {pvc.uid}): "
                "it was replaced since; not deleting it"
            )
        obs = _guarded(ctx, IN_PLACE_DELETE_GUARDS)
        users = [p for p in obs.pods if claim in p.claim_names]
        strangers = [p.name for p in users if p.name != name]
        if strangers:
            raise ClaimInUse(
                f"claim {claim} is used by {', '.join(strangers)}, not only by {name}: "
                "not deleting it"
            )
        # The pod that will be deleted next: the target as it is now (set only once).
        pod = obs.pod(name)
        ctx.state.setdefault("doomed_pod_uid", pod.uid if pod else None)
        _delete_claim(ctx, pvc)
        done.append(f"{claim} (uid {pvc.uid}) deleted, Terminating while {name} uses it")
    return Done("; ".join(done))


def delete_pod(ctx: StepContext) -> Done:
    """Delete the target pod (pinned to the uid that used the claims), after the guards."""
    name = target_pod(ctx.params)
    doomed = ctx.earlier_state("delete_pvc").get("doomed_pod_uid")
    pod = _read_pod(ctx, name)
    target = Target(services.ACTION_DELETE, services.KIND_POD, _ns(ctx), name)
    sent = ctx.state.get("sent")
    if pod is None or pod.uid != doomed or pod.terminating:
        if sent:
            state = "gone" if pod is None or pod.uid != doomed else "Terminating"
            ctx.close_interrupted(target, applied=True, observed=f"pod {name} (uid {sent}) {state}")
            ctx.record_result(pod_deleted_at=ctx.state["at"])
            return Done(f"deleted {name} (uid {sent})")
        return Done(f"{name} (uid {doomed}) already {'gone' if pod is None else 'deleted'}")
    _guarded(ctx, IN_PLACE_DELETE_GUARDS)
    ctx.state.update(sent=pod.uid, at=_now(ctx))
    ctx.checkpoint()
    with suppress(ObjectNotFound):  # gone between our read and the delete: gone is gone
        services.pod_delete(
            actor=job_actor(ctx), namespace=_ns(ctx), name=name, job_id=ctx.job_id, uid=pod.uid
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
    for claim in _claims(ctx, "check_target"):
        pvc = _read_pvc(ctx, claim)
        if pvc is not None and pvc.uid == old.get(claim):
            left.append(f"{claim} ({'Terminating' if pvc.terminating else 'not deleted'})")
    if left:
        return Wait(f"old claims still present: {', '.join(left)}")
    return Done(f"old claims gone: {', '.join(_claims(ctx, 'check_target'))}")


def wait_pod_ready(ctx: StepContext) -> Done | Wait:
    """Done when a new pod (new uid) is Ready on claims with new uids."""
    name = target_pod(ctx.params)
    job = ctx.job_result()
    old_claims = job.get("old_claim_uids") or {}
    pod = _read_pod(ctx, name)
    if pod is None or pod.uid == job.get("old_pod_uid"):
        return Wait(f"no new pod {name} yet")
    if not pod.ready or pod.terminating:
        return Wait(f"new pod {name} (uid {pod.uid}) not Ready ({pod.phase or 'no phase'})")
    claims = _claims(ctx, "check_target")
    stale = [
        c for c, uid in _claim_uids(ctx, claims).items() if uid is None or uid == old_claims.get(c)
    ]
    if stale:
        return Wait(f"new pod {name} Ready but claims {', '.join(stale)} are not new")
    return Done(f"new pod Ready: {_new_evidence(ctx, claims)}")


# --- the job type ----------------------------------------------------------------------------

SCALE_TO_ZERO_STEPS = (
    StepDef("scale_sts_to_zero", scale_sts_to_zero),
    StepDef("wait_pods_down", wait_pods_down),
    StepDef("delete_pvc", delete_pvc),
    StepDef("scale_sts_to_target", scale_sts_to_target),
    StepDef("wait_pods_ready", wait_pods_ready),
)
IN_PLACE_STEPS = (
    StepDef("check_target", check_target),
    StepDef("delete_pvc", delete_pvc_in_place),
    StepDef("delete_pod", delete_pod),
    StepDef("wait_pvc_gone", wait_pvc_gone),
    StepDef("wait_pod_ready", wait_pod_ready),
)

#: The guards a retry request checks before the job may resume at a step.
RESUME_GUARDS = {
    STRATEGY_SCALE_TO_ZERO: {
        "scale_sts_to_zero": SCALE_DOWN_GUARDS,
        "wait_pods_down": WAIT_DOWN_GUARDS,
        "delete_pvc": CLAIM_DELETE_GUARDS,
        "scale_sts_to_target": SCALE_UP_GUARDS,
        "wait_pods_ready": WAIT_GUARDS,
    },
    STRATEGY_IN_PLACE: {
        "check_target": IN_PLACE_CHECK_GUARDS,
        "delete_pvc": IN_PLACE_DELETE_GUARDS,
        "delete_pod": IN_PLACE_DELETE_GUARDS,
        "wait_pvc_gone": WAIT_GUARDS,
        "wait_pod_ready": WAIT_GUARDS,
    },
}


def strategy(params: dict) -> str:
    return params.get("strategy") or STRATEGY_SCALE_TO_ZERO


def plan(params: dict) -> tuple[StepDef, ...]:
    """The steps of the strategy ``params`` ask for."""
    return IN_PLACE_STEPS if strategy(params) == STRATEGY_IN_PLACE else SCALE_TO_ZERO_STEPS


def preflight(params: dict) -> dict:
    """The checks of a request, against the live cluster; returns what the job records.

    Raises the API error to answer: 404 no such StatefulSet, 400 no volumeClaimTemplates,
    409 with a guard's code.
    """
    namespace, name = params["namespace"], params["statefulset"]
    obs = observe(namespace=namespace, name=name)
    if not obs.sts.claim_templates:
        raise _invalid_no_templates(namespace, name)
    check(obs, params, guards.AT_REQUEST[strategy(params)])
    return {"replicas_at_request": obs.sts.replicas, "patroni_scopes": list(obs.roles.scopes)}


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
    names = RESUME_GUARDS[strategy(job.params)].get(step_name, WAIT_GUARDS)
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
        target_kind="StatefulSet",
        steps=SCALE_TO_ZERO_STEPS,
        aftermath=aftermath,
        plan=plan,
        resume_check=resume_check,
        preflight=preflight,
    )
)
