"""The audit log's hash chain: what is hashed, how rows are linked, and how the chain is read.

Every finished ``ops_log`` row carries

* ``row_hash`` — sha256 of the row's canonical JSON (:func:`canonical`): every column but
  ``id`` and the chain columns, keys sorted, no spaces, ASCII only, NULLs and values equal to
  a column's constant default left out (so a column added later with a default, or NULL,
  leaves the hashes of older rows valid); times in UTC as ``YYYY-MM-DDTHH:MM:SS.ffffff+00:00``;
* ``chain_seq`` — its position, 1, 2, 3... in the order rows were finished;
* ``chain_hash`` — ``sha256("<previous chain_hash>:<id>:<row_hash>")`` as lower-case hex, the
  first row's previous hash being 64 zeros (:data:`GENESIS`).

Python computes ``row_hash`` when it writes the final row (:func:`seal`); PostgreSQL's trigger
``ops_log_guard`` (migration ``0005_audit_chain``) assigns ``chain_seq`` and ``chain_hash`` in
the same statement, under the lock of the single row of ``ops_log_chain`` (the head), so
concurrent writers in any number of processes make one chain, without gaps or forks.
:func:`walk` reads the chain back and names the first row where it breaks.
"""

from __future__ import annotations

import functools
import hashlib
import json
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import models

GENESIS = "0" * 64
#: Columns that are not content: the row's number and the chain's own columns.
NOT_HASHED = frozenset({"id", "row_hash", "chain_seq", "chain_hash"})
_NO_DEFAULT = object()


@functools.cache
def content_fields(model: type[models.Model]) -> tuple[models.Field, ...]:
    """The columns hashed into ``row_hash``, in a fixed order (worked out once per model: every
    finished row is sealed with them on the request path)."""
    return tuple(
        sorted(
            (f for f in model._meta.concrete_fields if f.attname not in NOT_HASHED),
            key=lambda f: f.column,
        )
    )


def _constant_default(field: models.Field) -> Any:
    if not field.has_default() or callable(field.default):
        return _NO_DEFAULT
    return field.default


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.utcoffset():
            value = value.astimezone(UTC)
        return value.isoformat(timespec="microseconds")
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


_ENCODE = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode
#: A timestamptz as ``_plain`` writes a datetime, computed by PostgreSQL (faster to read).
_SQL_TIME = """to_char("{0}" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')"""


def _select_expr(field: models.Field) -> str:
    if isinstance(field, models.DateTimeField):
        return _SQL_TIME.format(field.column)
    if isinstance(field, models.UUIDField | models.JSONField):
        return f'"{field.column}"::text'
    return f'"{field.column}"'


@dataclass(frozen=True)
class Layout:
    """How to turn one row's content values (in :func:`content_fields` order) into JSON."""

    columns: tuple[str, ...]
    defaults: tuple[Any, ...]
    json_columns: frozenset[int]
    #: What :func:`chain_select` selects for each column: its value as JSON text wants it.
    select: tuple[str, ...] = ()
    #: Per column: is it a JSON column (read as text)?
    is_json: tuple[bool, ...] = ()

    @classmethod
    @functools.cache
    def of(cls, model: type[models.Model]) -> Layout:
        """The layout of ``model``'s rows (made once per model)."""
        fields = content_fields(model)
        return cls(
            columns=tuple(f.column for f in fields),
            defaults=tuple(_constant_default(f) for f in fields),
            json_columns=frozenset(
                i for i, f in enumerate(fields) if isinstance(f, models.JSONField)
            ),
            select=tuple(_select_expr(f) for f in fields),
            is_json=tuple(isinstance(f, models.JSONField) for f in fields),
        )

    def canonical_selected(self, values: Iterable[Any]) -> bytes:
        """:meth:`canonical` of values read by :func:`chain_select` (times and ids already
        text, JSON as text): the verifier's fast path."""
        out = {}
        loads = json.loads
        for column, default, is_json, value in zip(
            self.columns, self.defaults, self.is_json, values, strict=True
        ):
            if value is None or value == default:
                continue
            out[column] = loads(value) if is_json else value
        return _ENCODE(out).encode("ascii")

    def canonical(self, values: Iterable[Any], *, json_as_text: bool = True) -> bytes:
        """The canonical JSON of one row's content values (as read from the database: JSON
        columns as text, as Django's psycopg2 connections return them)."""
        out = {}
        for i, value in enumerate(values):
            if value is None or value == self.defaults[i]:
                continue
            if json_as_text and i in self.json_columns and isinstance(value, str):
                value = json.loads(value)
            out[self.columns[i]] = _plain(value)
        return _ENCODE(out).encode("ascii")


def canonical(row: models.Model) -> bytes:
    """The canonical JSON of a model instance's content, as the database will give it back."""
    fields = content_fields(type(row))
    values = []
    for f in fields:
        value = getattr(row, f.attname)
        if value is not None and not isinstance(f, models.JSONField):
            value = f.to_python(value)
        values.append(value)
    return Layout.of(type(row)).canonical(values, json_as_text=False)


def digest(data: bytes) -> str:
    """sha256 as lower-case hex."""
    return hashlib.sha256(data).hexdigest()


def link(previous: str, row_id: int, row_hash: str) -> str:
    """The chain hash of a row: sha256 of ``"<previous>:<id>:<row_hash>"``."""
    return hashlib.sha256(f"{previous}:{row_id}:{row_hash}".encode("ascii")).hexdigest()


def seal(row: models.Model) -> None:
    """Set ``row_hash`` of a finished row from its content (None while it is ``pending``)."""
    row.row_hash = None if row.status == "pending" else digest(canonical(row))


# --- reading the chain back -------------------------------------------------------------------


@dataclass(frozen=True)
class Break:
    """The first place the chain does not hold: the row named, and what is wrong there."""

    row_id: int | None
    audit_id: str | None
    position: int
    reason: str

    def __str__(self) -> str:
        who = f"row {self.row_id} (audit_id {self.audit_id})" if self.row_id else "the chain"
        return f"{who} at position {self.position}: {self.reason}"


@dataclass
class Walk:
    """What a walk saw: how many rows held, the last hash, and the first break if any."""

    size: int = 0
    head: str = GENESIS
    broken: Break | None = None


def walk(rows: Iterable[tuple], layout: Layout, progress=None) -> Walk:
    """Check ``(id, audit_id, chain_seq, row_hash, chain_hash, *content)`` rows given in
    ``chain_seq`` order; stops at the first break. ``progress(n)`` is told every 10,000 rows.
    """
    state = Walk()
    canon = layout.canonical_selected
    sha = hashlib.sha256
    expected = 1
    prev = GENESIS
    for row in rows:
        row_id, audit_id, seq, row_hash, chain_hash = row[:5]
        if seq != expected:
            if seq > expected:
                missing = f"{expected}" if seq == expected + 1 else f"{expected}..{seq - 1}"
                reason = f"position(s) {missing} missing before it: a row was deleted"
            else:
                reason = f"a second row at position {seq}: a row was inserted"
            state.broken = Break(row_id, str(audit_id), seq, reason)
            return state
        if sha(canon(row[5:])).hexdigest() != row_hash:
            reason = "its content does not match its row_hash: the row was changed"
            state.broken = Break(row_id, str(audit_id), seq, reason)
            return state
        if sha(f"{prev}:{row_id}:{row_hash}".encode("ascii")).hexdigest() != chain_hash:
            reason = (
                "its chain_hash does not follow from the row before it: a row was "
                "inserted, moved or swapped here"
            )
            state.broken = Break(row_id, str(audit_id), seq, reason)
            return state
        prev = chain_hash
        state.size = seq
        state.head = chain_hash
        expected += 1
        if progress is not None and seq % 10_000 == 0:
            progress(seq)
    return state


def chain_select(layout: Layout, table: str) -> str:
    """The query :func:`walk` reads: every chained row, by position."""
    cols = ", ".join(layout.select)
    select = f'SELECT "id", "audit_id"::text, "chain_seq", "row_hash", "chain_hash", {cols} '
    return select + f'FROM "{table}" WHERE "chain_seq" IS NOT NULL ORDER BY "chain_seq"'


def iter_cursor(cursor, batch: int = 10_000) -> Iterator[tuple]:
    """Rows of an executed cursor, fetched ``batch`` at a time."""
    while True:
        rows = cursor.fetchmany(batch)
        if not rows:
            return
        yield from rows
