"""Matching our audit rows with the Kubernetes API server's own audit log.

Every request of an audited operation carries ``Audit-ID: <row audit_id>`` (see
:func:`ops.k8s.audited`), which the API server records as the event's ``auditID``. Reading an
``audit.k8s.io/v1`` Event log (JSON lines, stage ``ResponseComplete``):

* **confirmed** — a row with at least one mutating event carrying its ``audit_id``;
* **unconfirmed** — a successful cluster operation of ours, within the log's time span, with
  no mutating event of its own (the API server has no trace of it);
* **orphan** — a mutating event by our own credentials (``APIOPS["K8S_AUDIT_USERS"]``, else
  the usernames seen on events our rows account for, or impersonating ``apiops:…``) whose
  ``auditID`` is no row of ours: a change made with ApiOps's identity around ApiOps.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.utils.dateparse import parse_datetime

from ops.audit import audit_alias
from ops.models import OpsLog, OpsLogStatus

MUTATING_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
#: The kinds our primitives change on the cluster (ops/services.py).
CLUSTER_KINDS = ("deployment", "statefulset", "pod", "persistentvolumeclaim", "volumesnapshot")
IMPERSONATION_PREFIX = "apiops:"
_SLACK = timedelta(seconds=5)
_BATCH = 1000


@dataclass(frozen=True)
class Event:
    """The parts of an API-server audit event the reconciliation reads."""

    audit_id: str
    verb: str
    username: str
    impersonated: str
    what: str
    code: int | None
    time: datetime | None
    #: A server-side dry run (``dryRun=All``): checked by the API server, nothing changed.
    dry_run: bool = False

    @classmethod
    def parse(cls, data: dict) -> Event:
        ref = data.get("objectRef") or {}
        what = "/".join(p for p in (ref.get("namespace"), ref.get("name")) if p)
        resource = ref.get("resource", "")
        if ref.get("subresource"):
            resource += "/" + ref["subresource"]
        stamp = data.get("stageTimestamp") or data.get("requestReceivedTimestamp") or ""
        return cls(
            audit_id=str(data.get("auditID") or ""),
            verb=str(data.get("verb") or ""),
            username=str((data.get("user") or {}).get("username") or ""),
            impersonated=str((data.get("impersonatedUser") or {}).get("username") or ""),
            what=f"{resource} {what}".strip(),
            code=(data.get("responseStatus") or {}).get("code"),
            time=parse_datetime(stamp) if isinstance(stamp, str) and stamp else None,
            dry_run="All"
            in parse_qs(urlsplit(str(data.get("requestURI") or "")).query).get("dryRun", []),
        )

    def describe(self) -> str:
        by = self.username + (f" as {self.impersonated}" if self.impersonated else "")
        when = self.time.isoformat() if self.time else "?"
        return f"{self.verb} {self.what} by {by} at {when} (answered {self.code})"


def read_events(lines: Iterable[str]) -> Iterator[Event]:
    """The ResponseComplete audit events among ``lines`` (other lines are skipped)."""
    for line in lines:
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if not isinstance(data, dict) or data.get("kind") != "Event":
            continue
        if data.get("stage", "ResponseComplete") != "ResponseComplete":
            continue
        yield Event.parse(data)


@dataclass
class Reconciliation:
    """Confirmed and unconfirmed rows, and orphan events."""

    confirmed: dict[int, list[Event]] = field(default_factory=dict)
    unconfirmed: list[OpsLog] = field(default_factory=list)
    orphans: list[Event] = field(default_factory=list)
    rows: dict[int, OpsLog] = field(default_factory=dict)
    ours: set[str] = field(default_factory=set)


def _rows_by_audit_id(ids: list[str]) -> dict[str, OpsLog]:
    found: dict[str, OpsLog] = {}
    rows = OpsLog.objects.using(audit_alias())
    for start in range(0, len(ids), _BATCH):
        for row in rows.filter(audit_id__in=ids[start : start + _BATCH]):
            found[str(row.audit_id)] = row
    return found


def _valid_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def reconcile(events: list[Event]) -> Reconciliation:
    """Match ``events`` (one API server's log) with our rows; see the module docstring."""
    result = Reconciliation()
    ids = sorted({e.audit_id for e in events if _valid_uuid(e.audit_id)})
    by_id = _rows_by_audit_id(ids)
    configured = set(settings.APIOPS.get("K8S_AUDIT_USERS") or ())
    result.ours = configured or {e.username for e in events if e.audit_id in by_id}
    for e in events:
        if e.verb not in MUTATING_VERBS or e.dry_run:
            continue  # a dry run (a plan, an approval's check) changed nothing
        row = by_id.get(e.audit_id)
        if row is not None:
            result.rows[row.pk] = row
            result.confirmed.setdefault(row.pk, []).append(e)
        elif e.username in result.ours or e.impersonated.startswith(IMPERSONATION_PREFIX):
            result.orphans.append(e)
    times = [e.time for e in events if e.time is not None]
    if times:
        expected = (
            OpsLog.objects.using(audit_alias())
            .filter(
                status=OpsLogStatus.SUCCESS,
                dry_run=False,
                resource_kind__in=CLUSTER_KINDS,
                ts__gte=min(times) - _SLACK,
                ts__lte=max(times) + _SLACK,
            )
            .exclude(pk__in=list(result.confirmed))
            .order_by("id")
        )
        result.unconfirmed = list(expected)
    return result
