"""What both pg-rebuild strategies' steps are made of: fresh reads of the cluster, the guards
run on them, and the audited mutations pinned with Kubernetes preconditions.

* :func:`guarded` reads the set, its pods and their roles now and raises the first guard that
  fails (:mod:`jobs.types.pg_guards`): a step calls it immediately before each destructive
  call, never on a snapshot from an earlier step.
* :func:`scale_pinned` sends the scale with the ``resourceVersion`` of that read (a 409 means
  the set changed since: the step reads and decides again); :func:`delete_claim_pinned` and
  the pod delete carry the uid read. So a request from a killed worker that arrives after
  the job moved on changes nothing.
* A step that resumes after its worker died closes the interrupted attempt's ``pending``
  audit row with what it observed (``close_*_if_resumed``, and after re-sending).
* :func:`new_evidence` records the target's new pod and claim uids and its downtime.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from jobs.errors import JobRefused
from jobs.steps import StepContext, job_actor
from jobs.types.pg_guards import (
    Observed,
    check,
    observe,
    target_pod,
)
from ops import k8s, services
from ops.audit import Target
from ops.errors import ObjectConflict, ObjectNotFound, TargetHeldByJob, from_k8s


def ns(ctx: StepContext) -> str:
    return ctx.params["namespace"]


def observe_now(ctx: StepContext, job: dict | None = None) -> Observed:
    """The set, its pods and roles now (with the Patroni scopes the job has seen before)."""
    job = ctx.job_result() if job is None else job
    return observe(
        namespace=ns(ctx),
        name=ctx.params["statefulset"],
        known_scopes=job.get("patroni_scopes", ()),
    )


def guarded(ctx: StepContext, names: tuple[str, ...]) -> Observed:
    """A fresh snapshot on which every guard in ``names`` holds (else the refusal raised)."""
    job = ctx.job_result()
    obs = observe_now(ctx, job)
    check(obs, ctx.params, names, job)
    return obs


def read_sts(ctx: StepContext) -> k8s.StatefulSetInfo:
    try:
        return k8s.statefulset_read(namespace=ns(ctx), name=ctx.params["statefulset"])
    except k8s.K8sError as e:
        raise from_k8s(e) from e


def read_pvc(ctx: StepContext, name: str) -> k8s.PvcInfo | None:
    try:
        return k8s.pvc_read(namespace=ns(ctx), name=name)
    except k8s.K8sError as e:
        raise from_k8s(e) from e


def read_pod(ctx: StepContext, name: str) -> k8s.PodInfo | None:
    try:
        return k8s.pod_read(namespace=ns(ctx), name=name)
    except k8s.K8sError as e:
        raise from_k8s(e) from e


def no_templates(sts: k8s.StatefulSetInfo) -> JobRefused:
    return JobRefused(
        f"StatefulSet {sts.namespace}/{sts.name} has no volumeClaimTemplates any more: "
        "there is no claim to rebuild",
        code="rebuild_refused",
    )


def db_time(ctx: StepContext) -> str:
    return ctx.db_now().isoformat()


def seconds_since(ctx: StepContext, since: str | None) -> float | None:
    if not since:
        return None
    return round((ctx.db_now() - datetime.fromisoformat(since)).total_seconds(), 1)


# --- audited mutations, pinned ---------------------------------------------------------------


def check_approved(ctx: StepContext, kind: str, name: str, uid: str) -> None:
    """Refuse (``target_changed``) to act on an object that is not the one an approval was
    given for: the job's plan named it by uid (``approved_uids``), and a replacement under
    the same name was never approved."""
    approved = (ctx.job_result().get("approved_uids") or {}).get(f"{kind}/{name}")
    if approved and uid != approved:
        raise JobRefused(
            f"{kind} {ns(ctx)}/{name} is not the object approved (uid {approved}, now {uid}): "
            f"it was replaced since approval {ctx.job_result().get('approval_id')}; not "
            "touching it",
            code="target_changed",
        )


def scale_target(ctx: StepContext) -> Target:
    return Target(
        services.ACTION_SCALE, services.KIND_STATEFULSET, ns(ctx), ctx.params["statefulset"]
    )


def scale_pinned(ctx: StepContext, replicas: int, obs: Observed) -> bool:
    """Scale the set to ``replicas`` only if it is still as ``obs`` read it (its
    resourceVersion); False when it changed since (409: read again, decide again)."""
    check_approved(ctx, "StatefulSet", obs.sts.name, obs.sts.uid)
    resumed = ctx.state.get("requested_replicas") == replicas
    ctx.state["requested_replicas"] = replicas
    ctx.checkpoint()  # saved before acting: a re-run knows this scale was already sent
    try:
        services.statefulset_scale(
            actor=job_actor(ctx),
            namespace=ns(ctx),
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
            scale_target(ctx),
            applied=False,
            observed=f"replicas were still {obs.sts.replicas} (resourceVersion "
            f"{obs.sts.resource_version})",
        )
    return True


def close_scale_if_resumed(ctx: StepContext, replicas: int) -> None:
    if ctx.state.get("requested_replicas") == replicas:
        ctx.close_interrupted(
            scale_target(ctx), applied=True, observed=f"the set is at {replicas} replicas"
        )


def claim_target(ctx: StepContext, name: str) -> Target:
    return Target(services.ACTION_DELETE, services.KIND_PVC, ns(ctx), name)


def delete_claim_pinned(ctx: StepContext, pvc: k8s.PvcInfo) -> None:
    """Delete ``pvc`` pinned to its uid (the caller has just checked its guards)."""
    check_approved(ctx, "PersistentVolumeClaim", pvc.name, pvc.uid)
    deleted: dict[str, str] = ctx.state.setdefault("deleted", {})
    resumed = deleted.get(pvc.name) == pvc.uid
    deleted[pvc.name] = pvc.uid
    ctx.checkpoint()
    try:
        # Pinned to the claim just read: a replacement made since is a 409, not deleted.
        services.pvc_delete(
            actor=job_actor(ctx), namespace=ns(ctx), name=pvc.name, job_id=ctx.job_id, uid=pvc.uid
        )
    except ObjectNotFound:
        return  # vanished between our read and the delete: gone is gone
    if resumed:
        ctx.close_interrupted(
            claim_target(ctx, pvc.name),
            applied=False,
            observed=f"claim {pvc.name} (uid {pvc.uid}) was still there, not Terminating",
        )


def close_claim_if_resumed(ctx: StepContext, name: str, pvc: k8s.PvcInfo | None) -> None:
    """A claim this step had sent a delete for is Terminating or gone: close that attempt."""
    uid = ctx.state.get("deleted", {}).get(name)
    if uid and (pvc is None or pvc.uid != uid or pvc.terminating):
        state = "Terminating" if pvc is not None and pvc.uid == uid else "gone"
        ctx.close_interrupted(
            claim_target(ctx, name), applied=True, observed=f"claim {name} (uid {uid}) {state}"
        )


def claims_of(ctx: StepContext, step: str) -> list[str]:
    """The claims of the ordinal, as ``step`` read them (else read now), kept in state."""
    if "claims" not in ctx.state:
        known = ctx.earlier_state(step).get("claims")
        if known:
            ctx.state["claims"] = list(known)
    if "claims" not in ctx.state:
        sts = read_sts(ctx)
        if not sts.claim_templates:
            raise no_templates(sts)
        ctx.state["claims"] = sts.pvc_names(ctx.params["ordinal"])
    return ctx.state["claims"]


def claim_uids(ctx: StepContext, names: list[str]) -> dict[str, str | None]:
    uids = {}
    for name in names:
        pvc = read_pvc(ctx, name)
        uids[name] = pvc.uid if pvc else None
    return uids


# --- scale-to-zero ----------------------------------------------------------------------------


def new_evidence(
    ctx: StepContext,
    claims: list[str],
    *,
    pod: k8s.PodInfo | None = None,
    new_claims: dict[str, str | None] | None = None,
    job: dict | None = None,
) -> str:
    """Record the target's new pod and claim uids and its downtime; say them in a line.

    What the caller has just read (``pod``, ``new_claims``, the job's ``result``) is used as
    is, the rest read now.
    """
    name = target_pod(ctx.params)
    pod = pod if pod is not None else read_pod(ctx, name)
    new_claims = new_claims if new_claims is not None else claim_uids(ctx, claims)
    job = job if job is not None else ctx.job_result()
    down = seconds_since(ctx, job.get("down_since"))
    ctx.record_result(
        new_pod_uid=pod.uid if pod else None, new_claim_uids=new_claims, downtime_seconds=down
    )
    claims_text = ", ".join(f"{n} uid {u}" for n, u in new_claims.items())
    return (
        f"{name} uid {pod.uid if pod else '?'} (was {job.get('old_pod_uid')}) on {claims_text}"
        + (f"; {name} down {down} s" if down is not None else "")
    )


def delete_checked_claims(
    ctx: StepContext,
    guards: tuple[str, ...],
    also_check: Callable[[str, Observed], None],
) -> list[str]:
    """Delete each claim ``check_target`` recorded that is still there and not Terminating,
    pinned to its uid, each after a fresh read on which ``guards`` hold and ``also_check``
    (claim name, that read) raises nothing; a claim replaced since the check is refused.
    Returns one line per claim for the step's detail."""
    old = ctx.job_result().get("old_claim_uids") or {}
    done = []
    for claim in claims_of(ctx, "check_target"):
        pvc = read_pvc(ctx, claim)
        close_claim_if_resumed(ctx, claim, pvc)
        if pvc is None or pvc.terminating:
            done.append(f"{claim} {'gone' if pvc is None else 'Terminating'}")
            continue
        if old.get(claim) and pvc.uid != old[claim]:
            raise JobRefused(
                f"claim {claim} is not the one checked (uid {old[claim]}, now {pvc.uid}): "
                "it was replaced since; not deleting it",
                code="target_changed",
            )
        also_check(claim, guarded(ctx, guards))
        delete_claim_pinned(ctx, pvc)
        done.append(f"{claim} (uid {pvc.uid}) deleted")
    return done
