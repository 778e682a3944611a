"""Proving the audit log: walking its hash chain in the database, and signed checkpoints.

* :func:`verify` streams every chained row through a server-side cursor (constant memory)
  and checks it with :func:`ops.chain.walk`; then looks for finished rows outside the chain,
  compares the end of the chain with its head row and, given a checkpoint, with that.
* A checkpoint is ``{"size", "head", "time", "key_id", "signature"}``: the chain's length and
  last hash at ``time``, signed with Ed25519 (base64 signature over the canonical JSON of the
  other four fields). ``key_id`` is the first 16 hex digits of sha256 of the raw public key.
  The private key is the secret ``audit-signing-key`` (``APIOPS["AUDIT_SIGNING_KEY"]``).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.db import connections, transaction

from ops import chain
from ops.audit import audit_alias
from ops.models import AuditChainHead, OpsLog, OpsLogStatus

CHECKPOINT_FIELDS = ("size", "head", "time", "key_id")


class ProofError(Exception):
    """A key or checkpoint that cannot be used (missing, malformed, not ours)."""


# --- keys --------------------------------------------------------------------------------------


def signing_key() -> Ed25519PrivateKey:
    """The configured private key; ProofError when there is none or it is not Ed25519."""
    pem = settings.APIOPS.get("AUDIT_SIGNING_KEY")
    if callable(pem):
        pem = pem()
    if not pem:
        raise ProofError(
            "no audit signing key: set the secret file audit-signing-key (PEM, Ed25519) or "
            "OPS_AUDIT_SIGNING_KEY"
        )
    try:
        key = serialization.load_pem_private_key(pem.encode("ascii") + b"\n", password=None)
    except (ValueError, TypeError, UnicodeEncodeError) as e:
        raise ProofError(f"the audit signing key is not a PEM private key: {e}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ProofError("the audit signing key is not an Ed25519 key")
    return key


def public_key_pem(key: Ed25519PublicKey) -> str:
    """A public key as SubjectPublicKeyInfo PEM."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM file; ProofError otherwise."""
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError) as e:
        raise ProofError(f"cannot read a public key from {path}: {e}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ProofError(f"{path} is not an Ed25519 public key")
    return key


def key_id(key: Ed25519PublicKey) -> str:
    """The first 16 hex digits of sha256 of the raw 32-byte public key."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


# --- checkpoints ---------------------------------------------------------------------------------


def _signed_bytes(fields: dict) -> bytes:
    body = {name: fields[name] for name in CHECKPOINT_FIELDS}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")


def make_checkpoint(*, size: int, head: str, key: Ed25519PrivateKey) -> dict:
    """A signed checkpoint of a chain ``size`` rows long ending in ``head``."""
    fields = {
        "size": size,
        "head": head,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "key_id": key_id(key.public_key()),
    }
    signature = key.sign(_signed_bytes(fields))
    return {**fields, "signature": base64.b64encode(signature).decode("ascii")}


def read_checkpoint(path: str | Path, public: Ed25519PublicKey) -> dict:
    """A checkpoint file whose signature is ``public``'s; ProofError for anything else."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ProofError(f"cannot read checkpoint {path}: {e}") from None
    if not isinstance(data, dict) or any(k not in data for k in (*CHECKPOINT_FIELDS, "signature")):
        raise ProofError(f"checkpoint {path} is not {{size, head, time, key_id, signature}}")
    if not isinstance(data["size"], int) or data["size"] < 0 or not isinstance(data["head"], str):
        raise ProofError(f"checkpoint {path} has a malformed size or head")
    if data["key_id"] != key_id(public):
        raise ProofError(
            f"checkpoint {path} was signed by key {data['key_id']}, not by ours ({key_id(public)})"
        )
    try:
        public.verify(base64.b64decode(data["signature"], validate=True), _signed_bytes(data))
    except (InvalidSignature, ValueError, TypeError):
        raise ProofError(f"checkpoint {path}: its signature is not our key's") from None
    return data


# --- the walk over the database ------------------------------------------------------------------


@dataclass
class Report:
    """The outcome of :func:`verify`: rows that held, the last hash, problems (first first)."""

    size: int = 0
    head: str = chain.GENESIS
    problems: list[str] = field(default_factory=list)

    @property
    def holds(self) -> bool:
        return not self.problems


_BATCH_ROWS = 20_000


def _prefetched(cursor) -> Iterator[tuple]:
    """The cursor's rows, the next batch fetched by a thread while this one is hashed: the
    database's work (and the wait for it) overlaps the hashing, as a plain iteration would
    not. At most two batches are held: memory stays flat."""
    batches: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()

    def fetch() -> None:
        try:
            while not stop.is_set():
                batch = cursor.fetchmany(_BATCH_ROWS)
                batches.put(batch)
                if not batch:
                    return
        except BaseException as e:  # handed over: raised where the rows are read
            batches.put(e)

    fetcher = threading.Thread(target=fetch, name="audit-verify-fetch", daemon=True)
    fetcher.start()
    try:
        while True:
            batch = batches.get()
            if isinstance(batch, BaseException):
                raise batch
            if not batch:
                return
            yield from batch
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            batches.get_nowait()  # unblock a fetcher waiting to put
        fetcher.join()


def verify(
    *, checkpoint: dict | None = None, progress: Callable[[int], None] | None = None
) -> Report:
    """Walk the chain in the audit database; see the module docstring.

    Writers may go on meanwhile: the chain only grows, so the head row is read first and
    must then be found, unchanged, at its position in the walk (like a checkpoint).
    """
    alias = audit_alias()
    layout = chain.Layout.of(OpsLog)
    report = Report()
    conn = connections[alias]
    head = AuditChainHead.objects.using(alias).filter(id=1).first()
    with transaction.atomic(using=alias):  # a named cursor lives in a transaction
        conn.ensure_connection()
        # psycopg2's own server-side cursor: rows stream in batches, memory stays flat.
        with conn.connection.cursor(name="audit_verify") as cursor:
            cursor.execute(chain.chain_select(layout, OpsLog._meta.db_table))
            walked = chain.walk(_prefetched(cursor), layout, progress)
    report.size, report.head = walked.size, walked.head
    if walked.broken is not None:
        report.problems.append(str(walked.broken))
        return report
    stray = (
        OpsLog.objects.using(alias)
        .filter(chain_seq__isnull=True)
        .exclude(status=OpsLogStatus.PENDING)
        .order_by("id")
        .values_list("id", "audit_id")
        .first()
    )
    if stray is not None:
        report.problems.append(
            f"row {stray[0]} (audit_id {stray[1]}) is finished but not in the chain: "
            "it was inserted around the trigger"
        )
    if head is not None:
        report.problems.extend(
            _against(head.size, head.head, walked.size, alias, "the chain's head row")
        )
    if checkpoint is not None:
        what = f"the checkpoint of {checkpoint['time']}"
        report.problems.extend(
            _against(checkpoint["size"], checkpoint["head"], walked.size, alias, what)
        )
    return report


def _against(want: int, head: str, size: int, alias: str, what: str) -> list[str]:
    """Problems when the walked chain (``size`` rows) does not contain ``what``: a chain
    ``want`` rows long ending in ``head``."""
    if want == 0:
        return []
    if size < want:
        return [
            f"the chain has {size} rows but {what} saw {want}: the last "
            f"{want - size} row(s), position(s) {size + 1}..{want}, were cut"
        ]
    row = (
        OpsLog.objects.using(alias)
        .filter(chain_seq=want)
        .values_list("id", "audit_id", "chain_hash")
        .first()
    )
    if row is None or row[2] != head:
        who = f"row {row[0]} (audit_id {row[1]})" if row else "no row"
        return [
            f"{who} at position {want} does not end the chain {what} recorded ({head}): "
            "the history up to it was rewritten"
        ]
    return []


def head_size() -> int:
    """How many rows the chain's head row counts (0 before the first)."""
    rows = AuditChainHead.objects.using(audit_alias()).filter(id=1)
    return rows.values_list("size", flat=True).first() or 0
