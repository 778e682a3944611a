"""Targets held by active jobs: which job, if any, an object belongs to right now.

A pg-rebuild scales its StatefulSet to zero, deletes one replica's claims and scales back up;
a primitive scale or delete of the same StatefulSet, its pods or its claims in the middle of
that would undo or corrupt the rebuild. So the services refuse them with 409 while an active
job holds the StatefulSet (SPEC: "an active job already holds that target").

ops does not import jobs (jobs is built on ops). The jobs app registers a holder query here
in its ``AppConfig.ready()``; without one (ops on its own) nothing is ever held. A source
answers SQL rather than a holder, so the services can ask it in the same statement that
writes the operation's pending audit row (:func:`ops.audit.attempt`): one round trip, and
no moment between the check and the row.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS, connections

from ops.db import read_as_health_check

#: Targets are named by their Kubernetes kind, as jobs record them (``ops_job.target_kind``).
KIND_STATEFULSET = "StatefulSet"
KIND_DEPLOYMENT = "Deployment"


@dataclass(frozen=True)
class HolderQuery:
    """A SELECT answering at most one row, whose one column ``holder`` is the id of the job
    holding the target; ``params`` fill its ``%s`` placeholders."""

    sql: str
    params: tuple


#: ``(target kind, namespace, candidate names) -> the query finding the holding job``.
HolderSource = Callable[[str, str, Sequence[str]], HolderQuery]

_sources: list[HolderSource] = []

# A StatefulSet's pod is <sts>-<ordinal>; its claims <template>-<sts>-<ordinal>.
_ORDINAL = re.compile(r"^(?P<stem>.+)-(?:0|[1-9][0-9]*)$")


def register_holder_source(source: HolderSource) -> None:
    """Add a source of holders (idempotent: a source registered twice is asked once)."""
    if source not in _sources:
        _sources.append(source)


def unregister_holder_source(source: HolderSource) -> None:
    """Remove a source added by :func:`register_holder_source` (no error if absent)."""
    if source in _sources:
        _sources.remove(source)


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


def holder_query(*, kind: str, namespace: str, names: Sequence[str]) -> HolderQuery | None:
    """One query for the holder of ``kind`` ``namespace/<one of names>`` over every source
    (the first source's holder, when several answer); None when nothing can hold it."""
    if not names or not _sources:
        return None
    queries = [source(kind, namespace, names) for source in _sources]
    if len(queries) == 1:
        return queries[0]
    # The sources' own SQL (code, not input); every value is a parameter.
    union = " UNION ALL ".join(
        f"(SELECT holder, {i} AS source FROM ({q.sql}) AS s{i})"  # noqa: S608
        for i, q in enumerate(queries)
    )
    return HolderQuery(
        f"SELECT holder FROM ({union}) AS each_source ORDER BY source LIMIT 1",  # noqa: S608
        tuple(p for q in queries for p in q.params),
    )


def holder(query: HolderQuery | None, *, using: str = DEFAULT_DB_ALIAS) -> str | None:
    """The holder ``query`` (from :func:`holder_query`) finds on ``using``, or None (as the
    request's first statement there, it is the connection's health check)."""
    if query is None:
        return None

    def read() -> str | None:
        with connections[using].cursor() as cursor:
            cursor.execute(query.sql, query.params)
            row = cursor.fetchone()
        return row[0] if row else None

    return read_as_health_check(using, read)
