"""What every controller asks of a pod or a workload: its key, whether it is terminating,
Ready or available (k8s.io/kubernetes/pkg/api/v1/pod and controller utilities), its
controller reference, and how a condition is set; plus the labels the workload controllers
write."""

from __future__ import annotations

from typing import Any

from .util import parse_rfc3339, rfc3339

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
REVISION_LABEL = "controller-revision-hash"
TEMPLATE_HASH_LABEL = "pod-template-hash"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"


def obj_key(obj: dict[str, Any]) -> tuple[str, str]:
    return obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def terminating(obj: dict[str, Any]) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp"))


def finished(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded")


def condition(obj: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


def is_ready(pod: dict[str, Any]) -> bool:
    """Running and with condition Ready=True (podutil.IsPodReady plus the phase check)."""
    c = condition(pod, "Ready")
    return (
        (pod.get("status") or {}).get("phase") == "Running"
        and bool(c)
        and c.get("status") == "True"
    )


def ready_since(pod: dict[str, Any]) -> float | None:
    """When (epoch seconds) a Ready pod's Ready condition last turned True; None if not Ready."""
    if not is_ready(pod):
        return None
    ts = (condition(pod, "Ready") or {}).get("lastTransitionTime")
    return parse_rfc3339(ts) if ts else 0.0


def available_at(pod: dict[str, Any], min_ready_seconds: int) -> float | None:
    """When the pod is (or becomes) available: Ready for `minReadySeconds`
    (podutil.IsPodAvailable, which wants the Ready transition strictly before now minus
    minReadySeconds, at the second precision of the condition's time stamp). None: not Ready."""
    since = ready_since(pod)
    if since is None:
        return None
    return since + min_ready_seconds if min_ready_seconds > 0 else since


def is_available(pod: dict[str, Any], min_ready_seconds: int, now: float) -> bool:
    at = available_at(pod, min_ready_seconds)
    return at is not None and (min_ready_seconds == 0 or at < now)


def next_available(pods: list[dict[str, Any]], min_ready_seconds: int, now: float) -> float | None:
    """Seconds from `now` until the next of these Ready pods becomes available, if any will:
    when a controller must look again (it requeues after minReadySeconds)."""
    if not min_ready_seconds:
        return None
    waits = [
        at - now
        for p in pods
        if (at := available_at(p, min_ready_seconds)) is not None and at >= now
    ]
    return min(waits) if waits else None


def controller_ref(obj: dict[str, Any]) -> dict[str, Any] | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def _new_condition(
    ctype: str, status: str, reason: str, message: str, probe: bool, transition: str
) -> dict[str, Any]:
    new: dict[str, Any] = {"type": ctype, "status": status}
    if probe:
        new["lastProbeTime"] = None
    new["lastTransitionTime"] = transition
    if reason:
        new["reason"] = reason
    if message:
        new["message"] = message
    return new


def set_condition(
    conditions: list[dict[str, Any]],
    ctype: str,
    status: str,
    reason: str = "",
    message: str = "",
    probe: bool = True,
) -> list[dict[str, Any]]:
    """Conditions with `ctype` set; lastTransitionTime moves only when the status changes."""
    out = []
    found = False
    for c in conditions:
        if c.get("type") != ctype:
            out.append(c)
            continue
        found = True
        if (
            c.get("status") == status
            and c.get("reason", "") == reason
            and c.get("message", "") == message
        ):
            out.append(c)
            continue
        same = c.get("status") == status
        transition = c.get("lastTransitionTime") if same else rfc3339()
        out.append(_new_condition(ctype, status, reason, message, probe, transition))
    if not found:
        out.append(_new_condition(ctype, status, reason, message, probe, rfc3339()))
    return out
