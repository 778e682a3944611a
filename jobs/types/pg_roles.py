"""Which pod of a PostgreSQL StatefulSet is (or may be) the primary, from what the HA tools
running it write into Kubernetes.

Signals (any one is enough):

* pod labels: ``role`` = ``primary``/``master`` (Patroni; ``master`` before 4.0),
  ``spilo-role`` = ``master`` (Zalando's operator), ``cnpg.io/instanceRole`` = ``primary``
  (CloudNativePG); the same labels saying ``replica`` count against;
* Patroni's Kubernetes DCS: the ``leader`` annotation on the ConfigMap ``<scope>-leader`` or
  on the Endpoints ``<scope>``, ``<scope>`` being the pods' ``cluster-name`` label. It names
  the leader pod even while every pod is down, so it speaks when the labels cannot.

A pod with a primary signal and a replica signal at once "may be primary" and is treated as
one; a pod with no signal at all has an ``unknown`` role (allowed, and said so).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ops import k8s

PRIMARY = "primary"
MAY_BE_PRIMARY = "may be primary"
REPLICA = "replica"
UNKNOWN = "unknown"

#: label -> (values saying primary, values saying replica)
ROLE_LABELS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "role": (frozenset({"primary", "master"}), frozenset({"replica", "standby"})),
    "spilo-role": (frozenset({"master"}), frozenset({"replica"})),
    "cnpg.io/instanceRole": (frozenset({"primary"}), frozenset({"replica"})),
}
SCOPE_LABEL = "cluster-name"
LEADER_ANNOTATION = "leader"


@dataclass(frozen=True)
class Signal:
    """One piece of evidence about a pod's role: where it was read, and what it says."""

    says_primary: bool
    source: str  # e.g. "label role=primary", "ConfigMap postgres-leader leader=postgres-0"

    def __str__(self) -> str:
        return self.source


@dataclass(frozen=True)
class Roles:
    """The primary signals of one StatefulSet's pods, as read at one moment."""

    statefulset: str
    #: pod name -> signals about it (pods named by a leader annotation included, even absent)
    signals: dict[str, tuple[Signal, ...]] = field(default_factory=dict)
    #: the Patroni scopes looked at (``cluster-name``), kept so later reads find the leader
    #: record even when no pod is left to carry the label
    scopes: tuple[str, ...] = ()

    def role(self, pod: str) -> str:
        """``primary``, ``may be primary`` (signals disagree), ``replica`` or ``unknown``."""
        said = {s.says_primary for s in self.signals.get(pod, ())}
        if said == {True}:
            return PRIMARY
        if said == {True, False}:
            return MAY_BE_PRIMARY
        return REPLICA if said == {False} else UNKNOWN

    def is_primary(self, pod: str) -> bool:
        """True when ``pod`` is, or may be, the primary."""
        return self.role(pod) in (PRIMARY, MAY_BE_PRIMARY)

    def primaries(self) -> list[str]:
        """Pods of the set that are, or may be, the primary (sorted)."""
        return sorted(pod for pod in self.signals if self.is_primary(pod))

    def describe(self, pod: str) -> str:
        """``role of postgres-1: replica (label role=replica)`` for a step's detail."""
        signals = self.signals.get(pod, ())
        if not signals:
            return (
                f"role of {pod}: unknown (no Patroni, Spilo or CloudNativePG signal: "
                "rebuilt as a replica)"
            )
        return f"role of {pod}: {self.role(pod)} ({'; '.join(map(str, signals))})"


def _label_signals(labels: dict[str, str]) -> list[Signal]:
    found = []
    for label, (primary, replica) in ROLE_LABELS.items():
        value = labels.get(label)
        if value in primary or value in replica:
            found.append(Signal(value in primary, f"label {label}={value}"))
    return found


def read_roles(
    *,
    namespace: str,
    sts: k8s.StatefulSetInfo,
    pods: list[k8s.PodInfo],
    known_scopes: tuple[str, ...] = (),
) -> Roles:
    """Read every primary signal of ``sts``'s pods now (``pods``: listed by its selector).

    Reads the leader ConfigMap and Endpoints of every scope named by the pods, the pod
    template or ``known_scopes`` (a 404 is no signal; any other failure is raised: without
    the signals nobody can say the target is not the primary).
    """
    own = re.compile(rf"^{re.escape(sts.name)}-(0|[1-9][0-9]*)$")
    signals: dict[str, list[Signal]] = {}
    scopes = set(known_scopes)
    if sts.template_labels.get(SCOPE_LABEL):
        scopes.add(sts.template_labels[SCOPE_LABEL])
    for pod in pods:
        if not own.match(pod.name):
            continue
        signals.setdefault(pod.name, []).extend(_label_signals(pod.labels))
        if pod.labels.get(SCOPE_LABEL):
            scopes.add(pod.labels[SCOPE_LABEL])
    for scope in sorted(scopes):
        for kind, obj_name, shown in (
            ("configmap", f"{scope}-leader", "ConfigMap"),
            ("endpoints", scope, "Endpoints"),
        ):
            annotations = k8s.annotations_read(kind=kind, namespace=namespace, name=obj_name)
            leader = (annotations or {}).get(LEADER_ANNOTATION)
            if not leader:
                continue
            source = f"{shown} {obj_name} {LEADER_ANNOTATION}={leader}"
            if own.match(leader):
                signals.setdefault(leader, []).append(Signal(True, source))
            for name in signals:
                if name != leader:
                    signals[name].append(Signal(False, source))
    return Roles(
        statefulset=sts.name,
        signals={name: tuple(found) for name, found in signals.items()},
        scopes=tuple(sorted(scopes)),
    )
