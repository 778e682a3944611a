"""``rollout-restart``: replace every pod of a Deployment or StatefulSet, as
``kubectl rollout restart`` does, and wait exactly as ``kubectl rollout status`` decides.

1. ``restart`` — set the pod template's ``kubectl.kubernetes.io/restartedAt`` (RFC 3339) through
   the audited service; the value is chosen and saved before the write, so a step resumed
   after a crash finds it already there and writes nothing more (one write per job);
2. ``wait_rollout`` — done when ``kubectl rollout status`` would say so (observedGeneration,
   updated / ready / available replicas, StatefulSet revisions) *and* none of the pods that
   ran before the restart is left; a Deployment past its progress deadline
   (``ProgressDeadlineExceeded``) fails the job with kubectl's words, a pod that never becomes
   Ready fails it at the step's timeout, naming the pod.

Refused at the request: an unknown kind (400), a missing object (404), a StatefulSet whose
update strategy is ``OnDelete`` or whose RollingUpdate ``partition`` keeps pods back (409:
kubectl's restart would not replace every pod).
"""

from __future__ import annotations

from rest_framework import serializers

from jobs.errors import JobRefused
from jobs.inputs import JobInput, NameField, NamespaceField
from jobs.plans import rollout_restart_plan
from jobs.registry import JobTarget, JobType, register
from jobs.steps import Done, StepContext, StepDef, Wait, job_actor
from ops import k8s, services
from ops.audit import Target
from ops.errors import ObjectConflict, TargetHeldByJob, from_k8s

NAME = "rollout-restart"
KINDS = {k8s.DEPLOYMENT: "Deployment", k8s.STATEFULSET: "StatefulSet"}


class RolloutRestartInput(JobInput):
    """Body of ``POST /ops/jobs/rollout-restart``."""

    namespace = NamespaceField(help_text="Namespace of the workload (DNS-1123 label).")
    kind = serializers.ChoiceField(choices=tuple(KINDS), help_text="deployment or statefulset.")
    name = NameField(help_text="Name of the Deployment or StatefulSet.")


def target(params: dict) -> JobTarget:
    return JobTarget(KINDS[params["kind"]], params["namespace"], params["name"])


def _read(params: dict) -> k8s.WorkloadInfo:
    try:
        return k8s.workload_read(
            kind=params["kind"], namespace=params["namespace"], name=params["name"]
        )
    except k8s.K8sError as e:
        raise from_k8s(e) from e


def _pods(namespace: str, selector: str) -> list[k8s.PodInfo]:
    try:
        return k8s.pod_list(namespace=namespace, label_selector=selector)
    except k8s.K8sError as e:
        raise from_k8s(e) from e


def check_replaces_every_pod(work: k8s.WorkloadInfo) -> None:
    """Refuse (409 ``rollout_refused``) a workload a restart would not entirely replace."""
    where = f"StatefulSet {work.namespace}/{work.name}"
    if work.kind == k8s.STATEFULSET and work.update_strategy == "OnDelete":
        raise JobRefused(
            f"{where} updates its pods OnDelete: a restart would replace none of them. "
            "Delete its pods yourself, or switch it to RollingUpdate.",
            code="rollout_refused",
        )
    if work.kind == k8s.STATEFULSET and work.partition > 0:
        raise JobRefused(
            f"{where} has a RollingUpdate partition of {work.partition}: pods below ordinal "
            f"{work.partition} would keep running unreplaced.",
            code="rollout_refused",
        )


def preflight(params: dict) -> dict:
    """The workload exists and a restart of it replaces every pod (else 404 / 409)."""
    work = _read(params)
    check_replaces_every_pod(work)
    return {"generation_at_request": work.generation}


def restart(ctx: StepContext) -> Done | Wait:
    """Set ``restartedAt`` (once: a resumed step finds its own value and writes nothing),
    after checking the workload as it is now, and only if it is still as read then."""
    p = ctx.params
    work = _read(p)
    stamp = ctx.state.get("restarted_at")
    what = Target(services.ACTION_RESTART, p["kind"], p["namespace"], p["name"])
    if stamp and work.restarted_at == stamp:
        ctx.close_interrupted(what, applied=True, observed=f"restartedAt is {stamp}")
        return Done(f"{k8s.RESTARTED_AT}={stamp} (generation {work.generation})")
    if "old_pod_uids" not in ctx.state:
        pods = _pods(p["namespace"], work.label_selector)
        ctx.state["old_pod_uids"] = sorted(x.uid for x in pods)
        ctx.record_result(old_pod_uids=ctx.state["old_pod_uids"])
    check_replaces_every_pod(work)  # the strategy may have changed since the request
    resumed = stamp is not None
    stamp = stamp or ctx.db_now().strftime("%Y-%m-%dT%H:%M:%SZ")
    ctx.state["restarted_at"] = stamp
    ctx.checkpoint()  # the value is kept before it is written: a re-run never writes twice
    try:
        after = services.workload_restart(
            actor=job_actor(ctx),
            kind=p["kind"],
            namespace=p["namespace"],
            name=p["name"],
            restarted_at=stamp,
            job_id=ctx.job_id,
            resource_version=work.resource_version,
        )
    except TargetHeldByJob:
        raise
    except ObjectConflict:
        return Wait("the workload changed between the read and the restart; reading again")
    if resumed:
        ctx.close_interrupted(
            what, applied=False, observed=f"restartedAt was {work.restarted_at or 'unset'}"
        )
    ctx.record_result(restarted_at=stamp, generation=after.generation)
    return Done(f"{k8s.RESTARTED_AT}={stamp} (generation {after.generation})")


def rollout_status(work: k8s.WorkloadInfo) -> tuple[bool, str]:
    """``kubectl rollout status``'s verdict (done, message); raises RolloutStuck past a
    Deployment's progress deadline (kubectl's DeploymentStatusViewer and
    StatefulSetStatusViewer, v1.32)."""
    name = work.name
    if work.kind == k8s.DEPLOYMENT:
        if work.generation > work.observed_generation:
            return False, "Waiting for deployment spec update to be observed..."
        progressing = work.condition("Progressing")
        if progressing and progressing.reason == "ProgressDeadlineExceeded":
            raise JobRefused(
                f'deployment "{name}" exceeded its progress deadline: {progressing.message}',
                code="progress_deadline_exceeded",
            )
        if work.updated_replicas < work.replicas:
            return False, (
                f'Waiting for deployment "{name}" rollout to finish: {work.updated_replicas} '
                f"out of {work.replicas} new replicas have been updated..."
            )
        if work.status_replicas > work.updated_replicas:
            return False, (
                f'Waiting for deployment "{name}" rollout to finish: '
                f"{work.status_replicas - work.updated_replicas} old replicas are pending "
                "termination..."
            )
        if work.available_replicas < work.updated_replicas:
            return False, (
                f'Waiting for deployment "{name}" rollout to finish: {work.available_replicas} '
                f"of {work.updated_replicas} updated replicas are available..."
            )
        return True, f'deployment "{name}" successfully rolled out'
    if work.observed_generation == 0 or work.generation > work.observed_generation:
        return False, "Waiting for statefulset spec update to be observed..."
    if work.ready_replicas < work.replicas:
        return False, f"Waiting for {work.replicas - work.ready_replicas} pods to be ready..."
    if work.updated_replicas < work.replicas - work.partition:
        return False, (
            f"Waiting for partitioned roll out to finish: {work.updated_replicas} out of "
            f"{work.replicas - work.partition} new pods have been updated..."
        )
    if work.update_revision and work.update_revision != work.current_revision:
        return False, (
            f"waiting for statefulset rolling update to complete {work.updated_replicas} pods "
            f"at revision {work.update_revision}..."
        )
    return (
        True,
        f"partitioned roll out complete: {work.updated_replicas} new pods have been updated",
    )


def wait_rollout(ctx: StepContext) -> Done | Wait:
    """Done when kubectl's rollout status is, and no pod from before the restart is left."""
    p = ctx.params
    work = _read(p)
    done, message = rollout_status(work)
    pods = _pods(p["namespace"], work.label_selector)
    if done:
        old = set(ctx.earlier_state("restart").get("old_pod_uids") or ())
        left = sorted(x.name for x in pods if x.uid in old)
        if not left:
            new = sorted(x.uid for x in pods if not x.terminating)
            ctx.record_result(new_pod_uids=new)
            return Done(f"{message}; all {len(new)} pods replaced")
        message = f"old pods still present: {', '.join(left)}"
    if ctx.past_deadline():
        lagging = sorted(f"{x.name} ({x.phase or 'no phase'})" for x in pods if not x.ready)
        if lagging:
            message += f"; not ready: {', '.join(lagging)}"
    return Wait(message)


ROLLOUT_RESTART = register(
    JobType(
        name=NAME,
        description=(
            "Restart every pod of a Deployment or StatefulSet, as kubectl rollout restart "
            "does, and wait until kubectl rollout status says it is done."
        ),
        input=RolloutRestartInput,
        target=target,
        target_kind="Deployment",
        preflight=preflight,
        plan=rollout_restart_plan,
        steps=(StepDef("restart", restart), StepDef("wait_rollout", wait_rollout)),
    )
)
