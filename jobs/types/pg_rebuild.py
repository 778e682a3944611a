"""``pg-rebuild``: throw away one PostgreSQL replica's volume and let the StatefulSet recreate it.

Steps (KUBESIM.md §4 says what each must wait for):

1. ``scale_sts_to_zero`` — remember the original replica count, scale to 0 unless already 0;
2. ``wait_pods_down`` — until listing the StatefulSet's selector returns nothing (terminating
   pods included: a terminating pod still mounts the claim);
3. ``delete_pvc`` — delete ``<template>-<sts>-<ordinal>`` for every volumeClaimTemplate that is
   still there and not already being deleted, then wait until each is gone from the API
   (a pod created while its claim is Terminating stays Pending for ever);
4. ``scale_sts_to_target`` — scale to ``target_replicas`` unless already there;
5. ``wait_pods_ready`` — until ``readyReplicas == target`` with ``observedGeneration >=
   generation`` (status written for an older spec means nothing).

Each step looks before it acts, so a tick re-run after a crash never repeats a mutation, and
every mutation goes through the audited ops services with the job's actor and id.
"""

from __future__ import annotations

from jobs.models import Job, JobStep
from jobs.registry import Done, JobType, StepDef, Wait, register
from jobs.runner import StepContext
from ops import k8s, services
from ops.actors import ORIGIN_JOB, Actor
from ops.errors import ObjectNotFound, OpsError, from_k8s

NAME = "pg-rebuild"
FIRST_STEP = "scale_sts_to_zero"


def job_actor(ctx: StepContext) -> Actor:
    """The requester, acting through a job: same name, address and namespace scope."""
    return Actor(
        name=ctx.actor or "job",
        source_ip=ctx.source_ip,
        namespaces=ctx.actor_namespaces,
        origin=ORIGIN_JOB,
    )


def _read_sts(ctx: StepContext) -> k8s.StatefulSetInfo:
    try:
        return k8s.statefulset_read(
            namespace=ctx.params["namespace"], name=ctx.params["statefulset"]
        )
    except k8s.K8sError as e:
        raise from_k8s(e) from e


def _scale(ctx: StepContext, replicas: int) -> None:
    ctx.state["requested_replicas"] = replicas
    ctx.checkpoint()  # saved before acting: a re-run knows this scale was already sent
    services.statefulset_scale(
        actor=job_actor(ctx),
        namespace=ctx.params["namespace"],
        name=ctx.params["statefulset"],
        replicas=replicas,
        job_id=ctx.job_id,
    )


class RebuildRefused(OpsError):
    """The StatefulSet or its claims changed under the job so that going on would do harm."""

    status_code = 409
    default_code = "rebuild_refused"
    default_detail = "The rebuild cannot go on."


def _no_templates(sts: k8s.StatefulSetInfo) -> RebuildRefused:
    return RebuildRefused(
        f"StatefulSet {sts.namespace}/{sts.name} has no volumeClaimTemplates any more: "
        "there is no claim to rebuild"
    )


def scale_sts_to_zero(ctx: StepContext) -> Done:
    """Step 1: remember the replica count, then scale to 0 unless it already is.

    Refuses before any change when the set has lost its volumeClaimTemplates since the job
    was accepted: scaling down would only take the database away for nothing.
    """
    sts = _read_sts(ctx)
    if not sts.claim_templates:
        raise _no_templates(sts)
    original = ctx.state.setdefault("original_replicas", sts.replicas)
    # What the next steps need to know about the set, read once here (fewer API calls).
    ctx.state.setdefault("selector", sts.label_selector)
    ctx.state.setdefault("claims", sts.pvc_names(ctx.params["ordinal"]))
    if sts.replicas != 0:
        _scale(ctx, 0)
    elif "requested_replicas" not in ctx.state:
        return Done(f"already at 0 replicas (was {original})")
    return Done(f"scaled to 0 (was {original})")


def _selector(ctx: StepContext) -> str:
    """The StatefulSet's pod selector, as the first step read it (else read now), kept."""
    if "selector" not in ctx.state:
        known = ctx.earlier_state(FIRST_STEP).get("selector")
        ctx.state["selector"] = known if known is not None else _read_sts(ctx).label_selector
    return ctx.state["selector"]


def wait_pods_down(ctx: StepContext) -> Done | Wait:
    """Step 2: done when the selector lists no pod at all (terminating ones count)."""
    selector = _selector(ctx)
    try:
        pods = k8s.pod_list(namespace=ctx.params["namespace"], label_selector=selector)
    except k8s.K8sError as e:
        raise from_k8s(e) from e
    if not pods:
        return Done(f"no pods left matching {selector}")
    names = ", ".join(sorted(p.name for p in pods))
    return Wait(f"pods {names} still present")


def _claims(ctx: StepContext) -> list[str]:
    """The claims of the ordinal: ``<template>-<sts>-<ordinal>`` per volumeClaimTemplate."""
    if "claims" not in ctx.state:
        known = ctx.earlier_state(FIRST_STEP).get("claims")
        if known:
            ctx.state["claims"] = known
    if "claims" not in ctx.state:
        sts = _read_sts(ctx)
        if not sts.claim_templates:
            raise _no_templates(sts)
        ctx.state["claims"] = sts.pvc_names(ctx.params["ordinal"])
    return ctx.state["claims"]


def delete_pvc(ctx: StepContext) -> Done | Wait:
    """Step 3: delete the ordinal's claims still there and not Terminating; done when every
    one is gone from the API (404), not merely Terminating.

    Each claim is pinned to the incarnation (uid) this step first saw, or to "absent" if it
    was already gone: a claim that comes back under the same name with another uid was made
    by someone else (e.g. the StatefulSet scaled up meanwhile) and may be in use, so the step
    fails rather than delete it.
    """
    namespace = ctx.params["namespace"]
    deleted: dict[str, str] = ctx.state.setdefault("deleted", {})
    # name -> uid of the claim this step is removing (None: it was already gone).
    pinned: dict[str, str | None] = ctx.state.setdefault("uids", dict(deleted))
    still_there: list[str] = []
    for name in _claims(ctx):
        try:
            pvc = k8s.pvc_read(namespace=namespace, name=name)
        except k8s.K8sError as e:
            raise from_k8s(e) from e
        if pvc is None:
            pinned.setdefault(name, None)
            continue  # gone from the API: what this step waits for
        if pinned.setdefault(name, pvc.uid) != pvc.uid:
            raise RebuildRefused(
                f"claim {name} was recreated (uid {pvc.uid}) by someone else; not deleting it again"
                if pinned[name]
                else f"claim {name} appeared (uid {pvc.uid}) after this step found it gone; "
                "not deleting it"
            )
        if not pvc.terminating:
            deleted[name] = pvc.uid
            ctx.checkpoint()
            try:
                # Pinned to the claim just read: a replacement made since is a 409, not
                # deleted (and no second read in the gateway).
                services.pvc_delete(
                    actor=job_actor(ctx),
                    namespace=namespace,
                    name=name,
                    job_id=ctx.job_id,
                    uid=pvc.uid,
                )
            except ObjectNotFound:
                continue  # vanished between our read and the delete: gone is gone
        still_there.append(name)
    if still_there:
        return Wait(f"claims {', '.join(still_there)} still present (Terminating)")
    if deleted:
        return Done(f"deleted {', '.join(sorted(deleted))}")
    return Done(f"claims {', '.join(_claims(ctx))} already gone")


def scale_sts_to_target(ctx: StepContext) -> Done:
    """Step 4: scale to ``target_replicas`` unless it already is."""
    target = ctx.params["target_replicas"]
    sts = _read_sts(ctx)
    if sts.replicas != target:
        _scale(ctx, target)
    elif "requested_replicas" not in ctx.state:
        return Done(f"already at {target} replicas")
    return Done(f"scaled to {target}")


def wait_pods_ready(ctx: StepContext) -> Done | Wait:
    """Step 5: done when ``readyReplicas == target`` in a status that has observed the
    current generation."""
    target = ctx.params["target_replicas"]
    sts = _read_sts(ctx)
    if sts.observed_generation < sts.generation:
        progress = (
            f"status not yet observed for generation {sts.generation} "
            f"(observed {sts.observed_generation})"
        )
    elif sts.ready_replicas == target:
        return Done(f"{target} of {target} pods ready")
    else:
        progress = f"{sts.ready_replicas} of {target} pods ready"
    if ctx.past_deadline():
        progress += _not_ready_pods(ctx, sts.label_selector)
    return Wait(progress)


def _not_ready_pods(ctx: StepContext, selector: str) -> str:
    """Which pods are not ready (one extra list, only for the timeout message)."""
    try:
        pods = k8s.pod_list(namespace=ctx.params["namespace"], label_selector=selector)
    except k8s.K8sError:
        return ""
    lagging = sorted(f"{p.name} ({p.phase or 'no phase'})" for p in pods if not p.ready)
    return f"; not ready: {', '.join(lagging)}" if lagging else ""


def aftermath(job: Job) -> str | None:
    """How a failed or cancelled rebuild leaves its StatefulSet: its replicas now (read fresh)
    against the count the first step remembered, so nobody takes a database left at 0 for a
    running one."""
    namespace, name = job.params["namespace"], job.params["statefulset"]
    first = JobStep.objects.filter(job=job, name=FIRST_STEP).values_list("state", flat=True)
    original = (first.first() or {}).get("original_replicas")
    was = f" (was {original})" if original is not None else ""
    try:
        now = k8s.statefulset_read(namespace=namespace, name=name).replicas
    except k8s.K8sNotFound:
        return f"StatefulSet {namespace}/{name} no longer exists{was}"
    except k8s.K8sError:
        if original is None:
            return None
        return f"StatefulSet {namespace}/{name}: replicas now unknown (cannot read it){was}"
    return f"StatefulSet {namespace}/{name} left at {now} replicas{was}"


PG_REBUILD = register(
    JobType(
        name=NAME,
        target_kind="StatefulSet",
        steps=(
            StepDef("scale_sts_to_zero", scale_sts_to_zero),
            StepDef("wait_pods_down", wait_pods_down),
            StepDef("delete_pvc", delete_pvc),
            StepDef("scale_sts_to_target", scale_sts_to_target),
            StepDef("wait_pods_ready", wait_pods_ready),
        ),
        aftermath=aftermath,
    )
)
