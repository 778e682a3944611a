"""Writing the audit log: one ``ops_log`` row per attempted operation, written first.

Rows go through the ``audit`` database alias, a second connection in autocommit, so they are
committed at once and survive the rollback of the request transaction on ``default``. If a
row cannot be written, :class:`~ops.errors.AuditUnavailable` is raised before anything is done
(fail closed).

Two shapes:

* :func:`record` — a single final row, for attempts refused before they reach the cluster
  (denied, invalid input, unauthenticated).
* :func:`attempt` — a context manager: a ``pending`` row before the Kubernetes calls, updated
  with the outcome when the block exits (success, or the error that left it) — or, inside
  :func:`outcomes_after_the_answer` (the web server's requests), once the answer is sent.
  Given the target's :class:`~ops.holds.HolderQuery`, the row is written only while no other
  job holds the target — checked in the same statement (:class:`TargetHeld` otherwise,
  nothing written).

The request path's statements are plain SQL written once and run as prepared statements
(:func:`ops.db.execute_prepared`): the ORM would build them anew, and PostgreSQL plan them
anew, on every request.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import Error as DatabaseError
from django.db import connections, transaction
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone

from ops import metrics
from ops.actors import Actor
from ops.chain import seal
from ops.db import execute_prepared
from ops.errors import AuditUnavailable, OpsError
from ops.holds import HolderQuery
from ops.models import OpsLog, OpsLogStatus

logger = logging.getLogger(__name__)

_MAX_TEXT = 512
_MAX_ERROR = 4000
_MAX_BODY_CHARS = 16384


@dataclass(frozen=True)
class Target:
    """What an attempt is about: the action and the object it touches, and its input."""

    action: str
    resource_kind: str
    namespace: str
    resource_name: str
    request_body: Any = None
    #: A dry run: checked and planned, nothing sent to the cluster but ``dryRun=All`` calls.
    dry_run: bool = False


def audit_alias() -> str:
    """The database alias audit rows are written and read through."""
    return settings.APIOPS["AUDIT_DB"]


_MAX_DEPTH = 64
_ESCAPED_NOTE = (
    "stored escaped: NUL characters and lone surrogates as \\uXXXX text, non-finite numbers "
    f"as text, anything nested deeper than {_MAX_DEPTH} levels cut"
)


def _storable_text(text: str) -> str:
    """Text PostgreSQL accepts: NUL and lone surrogates (not UTF-8) as ``\\uXXXX`` text."""
    text = text.replace("\x00", "\\u0000")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = "".join(f"\\u{ord(c):04x}" if "\ud800" <= c <= "\udfff" else c for c in text)
    return text


def _clean(value: Any, depth: int = 0) -> tuple[Any, bool]:
    """JSON made storable in JSONB, and whether anything had to change: PostgreSQL rejects NUL
    characters and lone surrogates in jsonb strings, and NaN and Infinity; a depth bound keeps
    the walk (and json.dumps) far from the interpreter's recursion limit."""
    if isinstance(value, str):
        text = _storable_text(value)
        return text, text != value
    if isinstance(value, float):
        return _json_number(value), not math.isfinite(value)
    if not isinstance(value, dict | list | tuple):
        return value, False
    if depth >= _MAX_DEPTH:
        return f"<cut: nested deeper than {_MAX_DEPTH} levels>", True
    changed = False
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            key, key_changed = _clean(str(k), depth + 1)
            out[key], v_changed = _clean(v, depth + 1)
            changed = changed or key_changed or v_changed
        return out, changed
    items = []
    for v in value:
        item, v_changed = _clean(v, depth + 1)
        items.append(item)
        changed = changed or v_changed
    return items, changed


def _json_number(value: float) -> float | int | str:
    """A float as PostgreSQL's jsonb gives it back, so a row hashes the same before it is
    written and after it is read (ops/chain.py): jsonb has no NaN or Infinity (kept as text)
    and no -0, and prints 1e+20 as the integer 100000000000000000000."""
    if not math.isfinite(value):
        return repr(value)
    if value == 0:
        return 0.0
    text = repr(value)
    if "e" in text and value.is_integer():
        return int(Decimal(text))
    return value


def safe_body(value: Any) -> Any:
    """A request body as it can be stored: verbatim when possible; else escaped (wrapped in
    ``{"_escaped": ..., "_note": ...}``) or, when huge, cut (``{"_truncated", "_length"}``)."""
    cleaned, changed = _clean(value)
    try:
        text = json.dumps(cleaned)
    except (TypeError, ValueError):
        return {"_unserializable": _short(repr(cleaned), _MAX_TEXT)}
    if len(text) > _MAX_BODY_CHARS:
        return {"_truncated": text[:4096], "_length": len(text)}
    if changed:
        return {"_escaped": cleaned, "_note": _ESCAPED_NOTE}
    return cleaned


def _short(value: Any, limit: int = _MAX_TEXT) -> str:
    text = _storable_text("" if value is None else str(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _write(fn):
    """Run a write on the audit connection; in a test's transaction, inside a savepoint."""
    alias = audit_alias()
    if connections[alias].in_atomic_block:
        with transaction.atomic(using=alias):
            return fn(alias)
    return fn(alias)


class TargetHeld(Exception):
    """The pending row was not written: the job ``holder`` holds the target."""

    def __init__(self, holder: str) -> None:
        super().__init__(f"held by job {holder}")
        self.holder = holder


#: The columns an INSERT of a row names: every concrete field but the id.
_INSERT_FIELDS = tuple(f for f in OpsLog._meta.local_concrete_fields if not f.primary_key)


@functools.cache
def _insert_unless_held_sql(holder_sql: str, alias: str) -> str:
    """The statement of :func:`_insert_unless_held` for one holder query (the same text for
    every call: written once, not built by the ORM on each request; each value cast to its
    column's type, as a prepared statement cannot infer it from a SELECT list)."""
    connection = connections[alias]
    columns = ", ".join(f'"{f.column}"' for f in _INSERT_FIELDS)
    values = ", ".join(f"%s::{f.db_type(connection)}" for f in _INSERT_FIELDS)
    return (
        f"WITH holder AS ({holder_sql}), "  # noqa: S608 - code's SQL; every value a parameter
        f'inserted AS (INSERT INTO "{OpsLog._meta.db_table}" ({columns}) SELECT {values} '
        "WHERE NOT EXISTS (SELECT 1 FROM holder WHERE holder IS DISTINCT FROM %s) RETURNING id) "
        "SELECT (SELECT id FROM inserted), (SELECT holder FROM holder)"
    )


def _insert_unless_held(row: OpsLog, alias: str, held: HolderQuery, own_job: str | None) -> None:
    """INSERT ``row`` unless a job other than ``own_job`` holds its target, in one statement:
    the holder query and the insert in one round trip, the check as close to the row as it
    can be. Raises :class:`TargetHeld` (nothing written) or DatabaseError."""
    connection = connections[alias]
    values = [f.get_db_prep_save(getattr(row, f.attname), connection) for f in _INSERT_FIELDS]
    with connection.cursor() as cursor:
        statement = _insert_unless_held_sql(held.sql, alias)
        execute_prepared(cursor, statement, [*held.params, *values, own_job])
        pk, holder = cursor.fetchone()
    if pk is None:
        raise TargetHeld(holder)
    row.pk = pk
    row._state.adding = False
    row._state.db = alias


@functools.cache
def _finish_sql(columns: tuple[str, ...]) -> str:
    """``UPDATE`` of a pending row with these columns (one text per set of columns)."""
    assignments = ", ".join(f'"{c}" = %s' for c in columns)
    return (
        f'UPDATE "{OpsLog._meta.db_table}" SET {assignments} '  # noqa: S608 - columns from code
        "WHERE id = %s AND status = %s"
    )


def _finish(row: OpsLog, fields: dict[str, Any]) -> int:
    """Give the ``pending`` row ``row`` its outcome ``fields``, with the row hash of the
    finished row; the trigger chains it in the same statement. 0 when it was no longer
    pending (someone else finished it). Raises DatabaseError."""
    for name, value in fields.items():
        setattr(row, name, value)
    seal(row)
    values = {**fields, "row_hash": row.row_hash}
    # A plain statement, as the pending row's: the ORM would build it anew on every request.
    meta = OpsLog._meta
    columns = tuple(meta.get_field(name).column for name in values)

    def update(alias: str) -> int:
        connection = connections[alias]
        params = [
            meta.get_field(name).get_db_prep_save(value, connection)
            for name, value in values.items()
        ]
        with connection.cursor() as cursor:
            execute_prepared(
                cursor, _finish_sql(columns), [*params, row.pk, str(OpsLogStatus.PENDING)]
            )
            return cursor.rowcount

    return _write(update)


def _finish_each(which: Q, fields: dict[str, Any]) -> int:
    """Finish every ``pending`` row matching ``which`` with ``fields`` (and the time now),
    one by one, each with its own row hash; how many. Raises AuditUnavailable."""
    try:
        rows = list(OpsLog.objects.using(audit_alias()).filter(which, status=OpsLogStatus.PENDING))
        return sum(_finish(row, {**fields, "finished_at": timezone.now()}) for row in rows)
    except DatabaseError as e:
        raise AuditUnavailable() from e


def record(
    *,
    actor_name: str | None,
    source_ip: str | None,
    origin: str,
    target: Target,
    status: str,
    error_message: str | None = None,
    code: str | None = None,
    http_status: int | None = None,
    job_id: str | None = None,
    key_prefix: str | None = None,
    unless_held: HolderQuery | None = None,
) -> OpsLog:
    """Write one row. Raises AuditUnavailable when it cannot be written; with ``unless_held``,
    :class:`TargetHeld` when a job other than ``job_id`` holds the target (no row)."""
    now = timezone.now()
    row = OpsLog(
        ts=now,
        actor=_short(actor_name, 150) if actor_name is not None else None,
        source_ip=_short(source_ip, 64) if source_ip is not None else None,
        action=_short(target.action),
        resource_kind=_short(target.resource_kind),
        namespace=_short(target.namespace),
        resource_name=_short(target.resource_name),
        request_body=safe_body(target.request_body),
        status=status,
        error_message=_short(error_message, _MAX_ERROR) if error_message else None,
        job_id=job_id,
        origin=origin,
        code=code,
        http_status=http_status,
        key_prefix=key_prefix,
        finished_at=None if status == OpsLogStatus.PENDING else now,
        dry_run=target.dry_run,
    )
    try:
        if unless_held is None:
            _write(lambda alias: row.save(using=alias, force_insert=True))
        else:
            seal(row)
            _write(lambda alias: _insert_unless_held(row, alias, unless_held, job_id))
    except DatabaseError as e:
        metrics.AUDIT_WRITE_FAILURES.inc()
        logger.error("audit row could not be written (%s); refusing the operation", e)
        raise AuditUnavailable() from e
    _count(target, status)
    return row


def _count(target: Target, status: str) -> None:
    metrics.count_operation(
        action=target.action,
        resource_kind=target.resource_kind,
        namespace=target.namespace,
        status=status,
    )


def record_error(
    *, actor: Actor, target: Target, error: OpsError, status: str, job_id: str | None = None
) -> None:
    """Write the final row of an attempt refused with ``error`` and mark the error audited."""
    record(
        actor_name=actor.name,
        source_ip=actor.source_ip,
        origin=actor.origin,
        target=target,
        status=status,
        error_message=_error_text(error),
        code=_error_code(error),
        http_status=error.status_code,
        job_id=job_id,
        key_prefix=actor.key_prefix,
    )
    error.audited = True


def record_success(
    *, actor: Actor, target: Target, http_status: int = 200, job_id: str | None = None
) -> None:
    """Write the final ``success`` row of an attempt that changed nothing in the cluster by
    itself (a dry run, a decision, a job action)."""
    record(
        actor_name=actor.name,
        source_ip=actor.source_ip,
        origin=actor.origin,
        target=target,
        status=OpsLogStatus.SUCCESS,
        http_status=http_status,
        job_id=job_id,
        key_prefix=actor.key_prefix,
    )


def _error_code(error: BaseException) -> str:
    if isinstance(error, OpsError):
        codes = error.get_codes()
        return codes if isinstance(codes, str) else error.default_code
    return "server_error"


def _error_text(error: BaseException) -> str:
    if isinstance(error, OpsError):
        text = str(error.detail)
        errors = getattr(error, "errors", None)
        if errors:
            text += " " + "; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in errors.items())
        return text
    return f"internal error: {type(error).__name__}: {error}"


class Attempt:
    """Context manager around the cluster calls of one operation (see :func:`attempt`)."""

    def __init__(
        self,
        *,
        actor: Actor,
        target: Target,
        job_id: str | None,
        success_http_status: int = 200,
        unless_held: HolderQuery | None = None,
    ) -> None:
        self.actor = actor
        self.target = target
        self.job_id = job_id
        self.success_http_status = success_http_status
        self.unless_held = unless_held
        self.row: OpsLog | None = None

    @property
    def audit_id(self) -> str:
        """The ``audit_id`` of this attempt's row (once entered)."""
        return str(self.row.audit_id)

    def __enter__(self) -> Attempt:
        self.row = record(
            actor_name=self.actor.name,
            source_ip=self.actor.source_ip,
            origin=self.actor.origin,
            target=self.target,
            status=OpsLogStatus.PENDING,
            job_id=self.job_id,
            key_prefix=self.actor.key_prefix,
            unless_held=self.unless_held,
        )
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None:
            fields = {"status": OpsLogStatus.SUCCESS, "http_status": self.success_http_status}
        else:
            fields = {
                "status": OpsLogStatus.ERROR,
                "error_message": _short(_error_text(exc), _MAX_ERROR),
                "code": _error_code(exc),
                "http_status": exc.status_code if isinstance(exc, OpsError) else 500,
            }
            with suppress(AttributeError):
                exc.audited = True  # this attempt's row is written; nobody writes another
        fields["finished_at"] = timezone.now()
        later = _after_the_answer.get()
        if later is None:
            self._record_outcome(fields)
        else:
            later.append(functools.partial(self._record_outcome, fields))
        return False

    def _record_outcome(self, fields: dict[str, Any]) -> None:
        try:
            _finish(self.row, fields)
        except DatabaseError:
            # The operation has happened; its row stays "pending", which says exactly that the
            # outcome could not be recorded. Do not hide the operation's own result or error.
            metrics.AUDIT_WRITE_FAILURES.inc()
            logger.exception("could not record the outcome of audit row %s", self.row.pk)
        else:
            _count(self.target, fields["status"])


#: Outcomes to record once the answer has been sent (see :func:`outcomes_after_the_answer`).
_after_the_answer: ContextVar[list[Callable[[], None]] | None] = ContextVar(
    "apiops_outcomes_after_the_answer", default=None
)


@contextmanager
def outcomes_after_the_answer() -> Iterator[list[Callable[[], None]]]:
    """Within the block, an attempt's outcome (the UPDATE of its pending row) is not written
    when the attempt ends but added to the list given, for :func:`record_outcomes` to write
    once the answer is out (the web server's WSGI wrapper, apiops_site.wsgi).

    The row itself is written before the cluster is touched, as always: only the outcome
    waits, and the caller's answer never depended on it (an outcome that cannot be written
    leaves the row ``pending`` and is logged, whenever it is tried).
    """
    later: list[Callable[[], None]] = []
    token = _after_the_answer.set(later)
    try:
        yield later
    finally:
        _after_the_answer.reset(token)


def record_outcomes(later: list[Callable[[], None]]) -> None:
    """Write the outcomes collected by :func:`outcomes_after_the_answer` (never raises: a
    failure leaves its row ``pending`` and is logged)."""
    for record_outcome in later:
        try:
            record_outcome()
        except Exception:
            logger.exception("could not record the outcome of an audited attempt")
    later.clear()


#: What a row left ``pending`` too long becomes: its outcome was never recorded.
OUTCOME_UNKNOWN = "outcome unknown: the process recording it stopped"


def close_stale_pending(*, older_than: timedelta) -> int:
    """Turn ``pending`` rows older than ``older_than`` into ``error`` rows saying the outcome
    is unknown; returns how many.

    A row stays pending only when the process died (or the audit database failed) between the
    row and the outcome. Left alone it would read as "still in progress" for ever; after a
    bound far beyond any real call it is closed, so an auditor sees an attempt whose outcome
    nobody recorded — and should check the object itself. Times are the database's clock.
    Raises AuditUnavailable when the audit database cannot be written.
    """
    fields = {
        "status": OpsLogStatus.ERROR,
        "error_message": OUTCOME_UNKNOWN,
        "code": "outcome_unknown",
    }
    return _finish_each(Q(ts__lt=Now() - older_than), fields)


def close_interrupted(*, job_id: str, target: Target, applied: bool, observed: str) -> int:
    """Close the ``pending`` rows a job's interrupted attempts left on ``target``; how many.

    Called by a job step that resumed after its worker died between the row and the outcome,
    once it has seen what the interrupted request did: ``applied`` rows become ``success``
    (code ``observed_applied``), the others ``error`` (code ``not_applied``), each saying what
    the step observed — instead of "outcome unknown" from the sweep, much later. Only the job's
    lease holder calls it, so no live attempt of the same job can be among those rows.
    Raises AuditUnavailable when the audit database cannot be written.
    """
    if applied:
        fields = {"status": OpsLogStatus.SUCCESS, "code": "observed_applied"}
        note = f"interrupted (worker stopped); the resumed job step saw it applied: {observed}"
    else:
        fields = {"status": OpsLogStatus.ERROR, "code": "not_applied"}
        note = (
            "interrupted (worker stopped); the resumed job step saw it not applied and sent "
            f"its own request with preconditions, so this one cannot take effect: {observed}"
        )
    fields.update(error_message=_short(note, _MAX_ERROR))
    which = Q(
        job_id=job_id,
        action=target.action,
        resource_kind=target.resource_kind,
        namespace=target.namespace,
        resource_name=target.resource_name,
    )
    return _finish_each(which, fields)


def attempt(
    *,
    actor: Actor,
    target: Target,
    job_id: str | None = None,
    success_http_status: int = 200,
    unless_held: HolderQuery | None = None,
) -> Attempt:
    """Write a ``pending`` row now (or raise AuditUnavailable); record the outcome on exit.

    ``success_http_status`` is the answer recorded on success (202 for an accepted job).
    ``unless_held``: the target's holder query; when a job other than ``job_id`` holds the
    target, entering raises :class:`TargetHeld` and writes nothing.
    """
    return Attempt(
        actor=actor,
        target=target,
        job_id=job_id,
        success_http_status=success_http_status,
        unless_held=unless_held,
    )
