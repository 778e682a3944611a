"""Plans: the exact changes a request would make, computed from the live cluster.

A dry run answers one, and an approval is bound to one (SPEC "Change control"): each entry
names the object it changes by uid, with the ``metadata.generation`` (workloads) or the
``resourceVersion`` (pods, claims) it was read at, and says what would change. The digest is
a sha256 over the canonical JSON of the entries, so two plans are the same plan exactly when
their digests are equal, and an approver approves one digest, not a description.

:func:`stale` compares the objects of a plan with the cluster now: an object replaced (another
uid) or changed (another generation, or resourceVersion for pods and claims) makes the plan
stale, and an approval bound to it must not be carried out.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

#: Kubernetes kinds whose spec changes move ``metadata.generation``; for the others (pods,
#: claims, snapshots) a change is seen in ``resourceVersion``.
GENERATION_KINDS = frozenset({"Deployment", "StatefulSet"})


@dataclass(frozen=True)
class PlanObject:
    """An object a plan changes, as read: kind (``StatefulSet``), where, its uid and version.

    ``uid`` is None for an object the plan creates (it does not exist yet)."""

    kind: str
    namespace: str
    name: str
    uid: str | None
    generation: int | None = None
    resource_version: str | None = None

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "uid": self.uid,
        }
        if self.kind in GENERATION_KINDS and self.generation is not None:
            body["generation"] = self.generation
        elif self.resource_version is not None:
            body["resourceVersion"] = self.resource_version
        return body


@dataclass(frozen=True)
class PlanStep:
    """One change: its action (``scale``, ``delete``, ``create``, ``restart``, ``wait``), the
    object, and what changes (``{"replicas": {"from": 3, "to": 0}}``)."""

    action: str
    object: PlanObject
    change: dict[str, Any] = field(default_factory=dict)
    #: The job step that makes the change (job plans only).
    step: str | None = None


@dataclass(frozen=True)
class Plan:
    """The ordered steps of one request."""

    steps: tuple[PlanStep, ...]

    def entries(self) -> list[dict[str, Any]]:
        """The plan as the API shows it: ``[{order, action, object, change}, ...]``."""
        entries = []
        for order, step in enumerate(self.steps, start=1):
            entry = {
                "order": order,
                "action": step.action,
                "object": step.object.as_dict(),
                "change": step.change,
            }
            if step.step is not None:
                entry["step"] = step.step
            entries.append(entry)
        return entries

    @property
    def digest(self) -> str:
        return digest(self.entries())

    def as_response(self) -> dict[str, Any]:
        """The body of a dry-run answer."""
        entries = self.entries()
        return {"dry_run": True, "plan": entries, "plan_digest": digest(entries)}


def digest(entries: list[dict[str, Any]]) -> str:
    """``sha256:<hex>`` of the canonical JSON (sorted keys, no spaces, UTF-8) of a plan."""
    canonical = json.dumps(entries, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def bound_objects(entries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The distinct existing objects of a plan's entries (created ones have no uid yet),
    each with the version it was read at."""
    seen: dict[tuple[str, str, str], dict[str, Any]] = {}
    for entry in entries:
        obj = entry["object"]
        if obj.get("uid"):
            seen.setdefault((obj["kind"], obj["namespace"], obj["name"]), obj)
    return list(seen.values())


#: Reads an object's current state for :func:`stale`: ``(kind, namespace, name)`` → its
#: :class:`PlanObject` now, or None when it is gone.
Reader = Callable[[str, str, str], PlanObject | None]


def stale(entries: Iterable[dict[str, Any]], read: Reader) -> str | None:
    """Why a plan no longer describes the cluster (an object gone, replaced or changed since
    it was read), or None when every object is as the plan saw it."""
    for obj in bound_objects(entries):
        what = f"{obj['kind']} {obj['namespace']}/{obj['name']}"
        now = read(obj["kind"], obj["namespace"], obj["name"])
        if now is None:
            return f"{what} no longer exists (the plan saw uid {obj['uid']})"
        if now.uid != obj["uid"]:
            return f"{what} was replaced: uid {obj['uid']} in the plan, {now.uid} now"
        if "generation" in obj and now.generation != obj["generation"]:
            return (
                f"{what} changed: its spec is at generation {now.generation}, the plan saw "
                f"{obj['generation']}"
            )
        if "resourceVersion" in obj and now.resource_version != obj["resourceVersion"]:
            return (
                f"{what} changed: resourceVersion {now.resource_version}, the plan saw "
                f"{obj['resourceVersion']}"
            )
    return None
