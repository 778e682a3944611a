"""The guards of a PostgreSQL rebuild: what must hold, read from the live cluster, right
before each destructive call (and when the job is requested, and when it is retried).

Each guard is a function of one :class:`Observed` snapshot and the job's parameters that
returns the refusal to raise, or None. A step reads a fresh snapshot immediately before its
call and runs the guards that call needs (:func:`check`), so a retry, a redelivered tick or a
person acting in between can never make a step act on a state it was not written for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from jobs.errors import JobRefused
from jobs.types.pg_roles import Roles, read_roles
from ops import k8s
from ops.errors import ObjectNotFound, from_k8s

STRATEGY_SCALE_TO_ZERO = "scale-to-zero"
STRATEGY_IN_PLACE = "in-place"
STRATEGIES = (STRATEGY_SCALE_TO_ZERO, STRATEGY_IN_PLACE)


@dataclass(frozen=True)
class Observed:
    """The StatefulSet, its pods (by its selector, terminating ones included) and their
    roles, read at one moment."""

    sts: k8s.StatefulSetInfo
    pods: list[k8s.PodInfo]
    roles: Roles

    def pod(self, name: str) -> k8s.PodInfo | None:
        return next((p for p in self.pods if p.name == name), None)

    @property
    def where(self) -> str:
        return f"StatefulSet {self.sts.namespace}/{self.sts.name}"


def observe(*, namespace: str, name: str, known_scopes: Iterable[str] = ()) -> Observed:
    """Read the set, its pods and every primary signal now (API errors raised as ours)."""
    try:
        sts = k8s.statefulset_read(namespace=namespace, name=name)
        pods = k8s.pod_list(namespace=namespace, label_selector=sts.label_selector)
        roles = read_roles(
            namespace=namespace, sts=sts, pods=pods, known_scopes=tuple(known_scopes)
        )
    except k8s.K8sError as e:
        raise from_k8s(e) from e
    return Observed(sts=sts, pods=pods, roles=roles)


def target_pod(params: dict) -> str:
    return f"{params['statefulset']}-{params['ordinal']}"


# --- the guards ---------------------------------------------------------------------------------

#: A guard: what is wrong (the refusal's detail), or None when it holds. Its name in
#: :data:`GUARDS` is the refusal's code.
Guard = Callable[[Observed, dict, dict], str | None]


def operator_owned(obs: Observed, params: dict, job: dict) -> str | None:
    owner = obs.sts.controller_owner
    if owner is None:
        return None
    return (
        f"{obs.where} is controlled by {owner} (a controller ownerReference): that operator "
        "would undo or fight a rebuild made behind its back. Rebuild the replica with the "
        "operator's own tooling."
    )


def no_such_replica(obs: Observed, params: dict, job: dict) -> str | None:
    ordinal, replicas = params["ordinal"], obs.sts.replicas
    if ordinal < replicas:
        return None
    have = f"ordinals 0..{replicas - 1}" if replicas else "no replicas"
    return (
        f"{obs.where} has {replicas} replicas ({have}): there is no replica {ordinal} to rebuild."
    )


def primary_guard(obs: Observed, params: dict, job: dict) -> str | None:
    pod = target_pod(params)
    if not obs.roles.is_primary(pod):
        return None
    return (
        f"{pod} is {obs.roles.role(pod)} ({'; '.join(map(str, obs.roles.signals[pod]))}): "
        "a primary is never rebuilt. Switch over to another member first (e.g. patronictl "
        "switchover), then rebuild this one as a replica."
    )


def primary_in_set(obs: Observed, params: dict, job: dict) -> str | None:
    primaries = obs.roles.primaries()
    if params.get("allow_outage") or not primaries:
        return None
    return (
        f"{obs.where} holds a primary ({', '.join(primaries)}): scale-to-zero stops every "
        'pod, a full database outage. Use "strategy": "in-place" (only the replica goes '
        'down), or say "allow_outage": true.'
    )


def would_scale_down(obs: Observed, params: dict, job: dict) -> str | None:
    accepted = job.get("replicas_at_request", obs.sts.replicas)
    target = params["target_replicas"]
    if params.get("allow_scale_down") or target >= accepted:
        return None
    return (
        f"{obs.where} had {accepted} replicas when the rebuild was requested; scaling back "
        f"to {target} would remove {accepted - target} of them. Ask for target_replicas "
        f'{accepted}, or say "allow_scale_down": true.'
    )


def pods_not_down(obs: Observed, params: dict, job: dict) -> str | None:
    if not obs.pods:
        return None
    names = ", ".join(sorted(p.name for p in obs.pods))
    return (
        f"{obs.where} has pods ({names}; replicas {obs.sts.replicas}): deleting a claim now "
        "could pull it from under a running database. Scale-to-zero deletes claims only "
        "with no pod of the set left."
    )


def replicas_mismatch(obs: Observed, params: dict, job: dict) -> str | None:
    if params["target_replicas"] == obs.sts.replicas:
        return None
    return (
        f"An in-place rebuild never scales: {obs.where} has {obs.sts.replicas} replicas, "
        f"target_replicas must be {obs.sts.replicas} (not {params['target_replicas']})."
    )


GUARDS: dict[str, Guard] = {
    "operator_owned": operator_owned,
    "no_such_replica": no_such_replica,
    "primary_guard": primary_guard,
    "primary_in_set": primary_in_set,
    "would_scale_down": would_scale_down,
    "pods_not_down": pods_not_down,
    "replicas_mismatch": replicas_mismatch,
}

#: The guards of a request (and of the first step of each strategy), in the order their
#: refusals are reported: the most specific first.
AT_REQUEST = {
    STRATEGY_SCALE_TO_ZERO: (
        "operator_owned",
        "no_such_replica",
        "primary_guard",
        "primary_in_set",
        "would_scale_down",
    ),
    STRATEGY_IN_PLACE: ("operator_owned", "no_such_replica", "primary_guard", "replicas_mismatch"),
}


def check(obs: Observed, params: dict, guards: Iterable[str], job: dict | None = None) -> None:
    """Raise the refusal of the first guard in ``guards`` that fails on ``obs``.

    ``job`` is what the job recorded when it was accepted (``replicas_at_request``).
    """
    for name in guards:
        detail = GUARDS[name](obs, params, job or {})
        if detail is not None:
            raise JobRefused(detail, code=name)


def snapshot_ready(namespace: str, name: str) -> k8s.SnapshotInfo:
    """The VolumeSnapshot ``name`` of ``namespace``, ready to use; else 404 / 409."""
    try:
        snap = k8s.snapshot_read(namespace=namespace, name=name)
    except k8s.K8sError as e:
        raise from_k8s(e) from e
    if snap is None:
        raise ObjectNotFound(
            f"VolumeSnapshot {namespace}/{name} (from_snapshot) not found: a claim can be "
            "restored only from a snapshot in its own namespace."
        )
    if not snap.ready:
        why = f": {snap.error}" if snap.error else ""
        raise JobRefused(
            f"VolumeSnapshot {namespace}/{name} is not ready to use{why}.",
            code="snapshot_not_ready",
        )
    return snap
