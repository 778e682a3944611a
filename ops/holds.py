"""Targets held by active jobs: which job, if any, an object belongs to right now.

A pg-rebuild scales its StatefulSet to zero, deletes one replica's claims and scales back up;
a primitive scale or delete of the same StatefulSet, its pods or its claims in the middle of
that would undo or corrupt the rebuild. So the services refuse them with 409 while an active
job holds the StatefulSet (SPEC: "an active job already holds that target").

ops does not import jobs (jobs is built on ops). The jobs app registers a lookup here in its
``AppConfig.ready()``; without one (ops on its own) nothing is ever held.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

#: Targets are named by their Kubernetes kind, as jobs record them (``ops_job.target_kind``).
KIND_STATEFULSET = "StatefulSet"
KIND_DEPLOYMENT = "Deployment"

#: ``(target kind, namespace, candidate names) -> the holding job's id, or None``.
HolderLookup = Callable[[str, str, Sequence[str]], str | None]

_lookups: list[HolderLookup] = []

# A StatefulSet's pod is <sts>-<ordinal>; its claims <template>-<sts>-<ordinal>.
_ORDINAL = re.compile(r"^(?P<stem>.+)-(?:0|[1-9][0-9]*)$")


def register_holder_lookup(lookup: HolderLookup) -> None:
    """Add a source of holders (idempotent: a lookup registered twice is asked once)."""
    if lookup not in _lookups:
        _lookups.append(lookup)


def unregister_holder_lookup(lookup: HolderLookup) -> None:
    """Remove a lookup added by :func:`register_holder_lookup` (no error if absent)."""
    if lookup in _lookups:
        _lookups.remove(lookup)


def statefulsets_of_pod(name: str) -> list[str]:
    """The StatefulSet a pod called ``name`` would belong to: ``postgres-0`` -> postgres."""
    match = _ORDINAL.match(name)
    return [match["stem"]] if match else []


def statefulsets_of_claim(name: str) -> list[str]:
    """Every StatefulSet a claim called ``name`` could belong to.

    ``<template>-<sts>-<ordinal>`` cannot be split without the StatefulSet (both parts may
    contain ``-``): ``data-my-db-0`` is template ``data`` of ``my-db`` or ``data-my`` of
    ``db``. Every split is a candidate, so a claim of a held StatefulSet is never missed.
    """
    match = _ORDINAL.match(name)
    if not match:
        return []
    parts = match["stem"].split("-")
    return ["-".join(parts[i:]) for i in range(1, len(parts))]


def holder_of(*, kind: str, namespace: str, names: Sequence[str]) -> str | None:
    """The id of an active job holding ``kind`` ``namespace/<one of names>``, or None."""
    if not names:
        return None
    for lookup in _lookups:
        holder = lookup(kind, namespace, names)
        if holder:
            return holder
    return None
