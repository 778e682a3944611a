"""``pg-backup``: a ``VolumeSnapshot`` (``snapshot.storage.k8s.io/v1``) of one replica's claim
of a PostgreSQL StatefulSet — never the primary's when the roles are known.

1. ``choose_source`` — the replica to snapshot: the ``ordinal`` asked for (refused if it is,
   or may be, the primary: ``primary_guard``), else the highest Ready pod whose role is
   ``replica``, else the highest Ready one with no role signal at all; its claim is the first
   volumeClaimTemplate's (``<template>-<sts>-<ordinal>``);
2. ``create_snapshot`` — a snapshot named ``<claim>-<the job id's 8 hex>`` in the class
   ``OPS_SNAPSHOT_CLASS`` (else the cluster's default), annotated with the job id. The name is
   fixed before the create, so a step resumed after a crash finds its snapshot and creates
   nothing twice;
3. ``wait_snapshot_ready`` — until ``status.readyToUse``; ``status.error`` fails the job with
   its message (code ``snapshot_failed``).

The job's ``result``: ``snapshot`` (its name), ``snapshot_uid``, ``restore_size``,
``source_claim`` and its uid, ``source_pod``, ``snapshot_class``.
"""

from __future__ import annotations

from django.conf import settings

from jobs.errors import JobRefused
from jobs.inputs import IntField, JobInput, NameField, NamespaceField
from jobs.plans import pg_backup_plan
from jobs.registry import JobTarget, JobType, register
from jobs.steps import Done, StepContext, StepDef, Wait, job_actor
from jobs.types.pg_guards import (
    Observed,
    check,
    observe,
    target_pod,
)
from jobs.types.pg_roles import REPLICA, UNKNOWN
from ops import k8s, services
from ops.audit import Target
from ops.errors import InvalidInput, ObjectConflict, from_k8s

NAME = "pg-backup"
JOB_ANNOTATION = "apiops.dev/job-id"
SOURCE_GUARDS = ("no_such_replica", "primary_guard")


class PgBackupInput(JobInput):
    """Body of ``POST /ops/jobs/pg-backup``."""

    namespace = NamespaceField(help_text="Namespace of the StatefulSet (DNS-1123 label).")
    statefulset = NameField(help_text="Name of the StatefulSet (DNS-1123 subdomain).")
    ordinal = IntField(
        minimum=0,
        required=False,
        help_text="Replica whose claim to snapshot (default: a Ready replica, never the primary).",
    )


def target(params: dict) -> JobTarget:
    return JobTarget("StatefulSet", params["namespace"], params["statefulset"])


def _observe(params: dict, scopes=()) -> Observed:
    return observe(namespace=params["namespace"], name=params["statefulset"], known_scopes=scopes)


def preflight(params: dict) -> dict:
    """The set exists (404) with claim templates (400); a chosen ordinal exists and is not
    the primary (409), else some Ready replica can be chosen (409 ``no_replica``)."""
    obs = _observe(params)
    if not obs.sts.claim_templates:
        raise InvalidInput(
            {"statefulset": [f"{obs.where} has no volumeClaimTemplates: no claim to snapshot."]}
        )
    source = _choose(obs, params)
    return {"patroni_scopes": list(obs.roles.scopes), "planned_source": source}


def _choose(obs: Observed, params: dict) -> str:
    """The pod whose claim to snapshot (see the module docstring), or the refusal."""
    if params.get("ordinal") is not None:
        check(obs, params, SOURCE_GUARDS)
        return target_pod(params)
    ready = sorted(
        (p for p in obs.pods if p.ready and not p.terminating),
        key=lambda p: int(p.name.rsplit("-", 1)[1]) if p.name.rsplit("-", 1)[1].isdigit() else -1,
        reverse=True,
    )
    for wanted in (REPLICA, UNKNOWN):
        for pod in ready:
            if obs.roles.role(pod.name) == wanted:
                return pod.name
    if not obs.pods:
        raise JobRefused(
            f"{obs.where} has no pods: no replica to snapshot.", code="no_such_replica"
        )
    raise JobRefused(
        f"{obs.where} has no Ready replica to snapshot (primaries: "
        f"{', '.join(obs.roles.primaries()) or 'none'}); a primary is never the source.",
        code="no_replica",
    )


def choose_source(ctx: StepContext) -> Done:
    """Pick the replica (guards read now) and record its claim."""
    p = ctx.params
    obs = _observe(p, ctx.job_result().get("patroni_scopes", ()))
    pod = _choose(obs, p)
    ordinal = int(pod.rsplit("-", 1)[1])
    claim = obs.sts.pvc_names(ordinal)[0]
    try:
        pvc = k8s.pvc_read(namespace=p["namespace"], name=claim)
    except k8s.K8sError as e:
        raise from_k8s(e) from e
    if pvc is None or pvc.terminating:
        raise JobRefused(
            f"claim {claim} of {pod} is {'gone' if pvc is None else 'Terminating'}",
            code="no_replica",
        )
    ctx.state.update(source_pod=pod, source_claim=claim)
    ctx.record_result(source_pod=pod, source_claim=claim, source_claim_uid=pvc.uid)
    return Done(f"{claim} of {pod} ({obs.roles.describe(pod)})")


def create_snapshot(ctx: StepContext) -> Done:
    """Create the snapshot (its name chosen and saved first: created once)."""
    p = ctx.params
    claim = ctx.earlier_state("choose_source")["source_claim"]
    name = ctx.state.get("snapshot") or f"{claim}-{ctx.job_id.rsplit('_', 1)[1]}"
    what = Target(services.ACTION_CREATE, services.KIND_SNAPSHOT, p["namespace"], name)
    existing = _read_snapshot(p["namespace"], name)
    if existing is not None:
        if existing.annotations.get(JOB_ANNOTATION) != ctx.job_id:
            raise ObjectConflict(f"VolumeSnapshot {p['namespace']}/{name} exists, not ours")
        ctx.close_interrupted(what, applied=True, observed=f"snapshot {name} exists")
        return _created(ctx, existing)
    # The source as it is now: still not the primary (a failover since choose_source).
    source = ctx.earlier_state("choose_source")["source_pod"]
    obs = _observe(p, ctx.job_result().get("patroni_scopes", ()))
    check(obs, {**p, "ordinal": int(source.rsplit("-", 1)[1])}, ("primary_guard",))
    resumed = "snapshot" in ctx.state
    ctx.state["snapshot"] = name
    ctx.checkpoint()  # the name is kept before the create: a re-run never creates twice
    snap = services.snapshot_create(
        actor=job_actor(ctx),
        namespace=p["namespace"],
        name=name,
        claim=claim,
        class_name=settings.APIOPS["SNAPSHOT_CLASS"],
        annotations={JOB_ANNOTATION: ctx.job_id},
        job_id=ctx.job_id,
    )
    if resumed:
        ctx.close_interrupted(what, applied=False, observed=f"snapshot {name} did not exist")
    return _created(ctx, snap)


def _created(ctx: StepContext, snap: k8s.SnapshotInfo) -> Done:
    ctx.record_result(snapshot=snap.name, snapshot_uid=snap.uid, snapshot_class=snap.class_name)
    cls = snap.class_name or "the default class"
    return Done(f"VolumeSnapshot {snap.name} (uid {snap.uid}) of {snap.source_claim}, {cls}")


def _read_snapshot(namespace: str, name: str) -> k8s.SnapshotInfo | None:
    try:
        return k8s.snapshot_read(namespace=namespace, name=name)
    except k8s.K8sError as e:
        raise from_k8s(e) from e


def wait_snapshot_ready(ctx: StepContext) -> Done | Wait:
    """Done at ``readyToUse``; a ``status.error`` fails the job with its message."""
    p = ctx.params
    name = ctx.earlier_state("create_snapshot")["snapshot"]
    snap = _read_snapshot(p["namespace"], name)
    if snap is None:
        raise JobRefused(f"VolumeSnapshot {p['namespace']}/{name} is gone", code="snapshot_failed")
    if snap.ready:
        ctx.record_result(
            restore_size=snap.restore_size,
            snapshot_class=snap.class_name,
            snapshot_content=snap.content_name,
        )
        return Done(f"VolumeSnapshot {name} ready to use ({snap.restore_size or 'size unknown'})")
    if snap.error:
        raise JobRefused(
            f"VolumeSnapshot {p['namespace']}/{name}: {snap.error}", code="snapshot_failed"
        )
    return Wait(f"VolumeSnapshot {name} not ready yet")


PG_BACKUP = register(
    JobType(
        name=NAME,
        description=(
            "Take a VolumeSnapshot of one replica's claim of a PostgreSQL StatefulSet (never "
            "the primary's) and wait until it is ready to use."
        ),
        input=PgBackupInput,
        target=target,
        target_kind="StatefulSet",
        preflight=preflight,
        plan=pg_backup_plan,
        steps=(
            StepDef("choose_source", choose_source),
            StepDef("create_snapshot", create_snapshot),
            StepDef("wait_snapshot_ready", wait_snapshot_ready),
        ),
    )
)
