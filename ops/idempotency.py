"""``Idempotency-Key`` on every ``POST``/``DELETE`` under ``/ops/`` (IETF httpapi draft).

A client that sends ``Idempotency-Key: <key>`` may send the same request again — after a
timeout, a dropped connection — and the operation runs at most once:

* The key is scoped to the API key's *name* (a rotated key keeps its keys) and bound to the
  request's fingerprint: sha256 of the method, the path, the query (pairs sorted) and the body
  in RFC 8785 canonical JSON (the raw bytes when it is not JSON).
* The first request **claims** the key with one ``INSERT … ON CONFLICT`` on the unique
  (key_name, idempotency_key): the database, not a read-then-write, decides which of several
  concurrent duplicates runs. The others are answered from what the row holds: 409
  ``idempotency_in_flight`` while the first runs, the stored status and body with
  ``Idempotent-Replayed: true`` once it finished (nothing executed), 422
  ``idempotency_key_reused`` for another fingerprint. A key that is not 1 to 255 printable ASCII
  characters is a 400 ``invalid_idempotency_key``. The draft writes the key as a Structured
  Field string: a well-formed ``"abc"`` is the same key as ``abc``; any other value is the key
  as written.
* Once the view has answered — after its request transaction has committed — the answer is
  stored if it is below 500: successes and the operation's own refusals (400, 403, 404, 409)
  are final and replayed. A 5xx (the audit log or the database unavailable, Kubernetes failing
  or timing out, a bug) is not an answer to keep: the claim is **released** and the key can be
  used again, so the retry the client was told to make runs the operation's checks again
  against the live cluster.
* Stored answers are kept ``OPS_IDEMPOTENCY_TTL`` seconds (default 86400) from when they were
  stored; an expired key is free again at once and the jobs pump deletes expired rows.
* A process that dies between the claim and the answer leaves the key in flight. The claim is
  a lease of ``OPS_AUDIT_PENDING_MAX_AGE`` (default 900 s), the age after which the pump also
  closes that request's ``pending`` audit row as outcome unknown: no request lives that long,
  so after it the key can be claimed again (and the operation runs its checks again) and the
  pump may delete the row.
* Every attempt writes its own ``ops_log`` row: a replay is a row with code
  ``idempotent_replay`` (status from the replayed answer), the 400/409/422 refusals are rows
  with their codes, and the executed request writes its row as usual.

Two pieces: :class:`IdempotentMixin` on the views (``OperationViewSet`` has it, so every
operation, job start and job action does; any other view taking POST or DELETE under ``/ops/``
adds it, and a test walks the URLs to check) claims the key after authentication;
:class:`IdempotencyMiddleware` stores or releases the claim with the final response, outside
the view's request transaction.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import parse_qsl

import rfc8785
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import Error as DatabaseError
from django.db import connections, models, transaction
from django.db.models import Func, Q
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from rest_framework import status

from ops.audit import Target, audit_alias, record, record_error
from ops.authentication import actor_for
from ops.errors import AuditUnavailable, OpsError
from ops.models import IdempotencyRecord, OpsLogStatus

logger = logging.getLogger(__name__)

HEADER = "HTTP_IDEMPOTENCY_KEY"
REPLAYED_HEADER = "Idempotent-Replayed"
METHODS = frozenset({"POST", "DELETE"})
REPLAY_CODE = "idempotent_replay"
MAX_KEY_LENGTH = 255
_CLAIM_ROUNDS = 5


class InvalidIdempotencyKey(OpsError):
    """400: the Idempotency-Key header is not 1 to 255 printable ASCII characters."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid_idempotency_key"
    default_detail = "Idempotency-Key must be 1 to 255 printable ASCII characters."


class IdempotencyInFlight(OpsError):
    """409: the first request with this key has not finished yet; try again shortly."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "idempotency_in_flight"
    default_detail = "A request with this Idempotency-Key is still being processed."
    wait = 1  # the exception handler turns it into Retry-After


class IdempotencyKeyReused(OpsError):
    """422: the key was used for a different request (method, path, query or body)."""

    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_code = "idempotency_key_reused"
    default_detail = "This Idempotency-Key was used for a different request."


@dataclass(frozen=True)
class Claim:
    """This request holds the key: it runs, then its answer is stored (or the key released)."""

    record_id: int
    token: uuid.UUID


@dataclass(frozen=True)
class StoredAnswer:
    """The answer of the request that held the key, to be sent again."""

    status: int
    content_type: str
    body: bytes


# --- the key and the fingerprint ----------------------------------------------------------------


def _unquote(value: str) -> str:
    """The content of a Structured Field string (RFC 8941: ``"…"`` with ``\\"`` and
    ``\\\\``) as the draft writes the key; any other value is the key itself."""
    if len(value) < 2 or value[0] != '"' or value[-1] != '"':
        return value
    out, chars = [], iter(value[1:-1])
    for char in chars:
        if char == "\\":
            char = next(chars, "")
            if char not in ('"', "\\"):
                return value
        elif char == '"':
            return value
        out.append(char)
    return "".join(out)


def parse_key(value: str) -> str:
    """The key a header value names; InvalidIdempotencyKey unless 1 to 255 printable ASCII."""
    value = _unquote(value)
    if not 1 <= len(value) <= MAX_KEY_LENGTH or not all(" " <= c <= "~" for c in value):
        raise InvalidIdempotencyKey()
    return value


def canonical_body(raw: bytes) -> bytes:
    """The body as RFC 8785 canonical JSON; the raw bytes when it is not (canonical) JSON."""
    if not raw.strip():
        return b""
    try:
        return rfc8785.dumps(json.loads(raw))
    except (ValueError, RecursionError):  # not JSON, or outside what RFC 8785 represents
        return raw


def fingerprint(*, method: str, path: str, query: str, body: bytes) -> str:
    """sha256 (hex) of the request: method, path, query pairs in order, canonical body."""
    pairs = sorted(parse_qsl(query, keep_blank_values=True))
    body_digest = hashlib.sha256(canonical_body(body)).hexdigest()
    text = json.dumps([method.upper(), path, pairs, body_digest], separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


# --- the record ---------------------------------------------------------------------------------


class _StatementTime(Func):
    """The database's clock at this statement (not the transaction's start, like ``Now()``)."""

    template = "statement_timestamp()"
    output_field = models.DateTimeField()


def _write(fn: Callable[[str], object]):
    """Run ``fn(alias)`` on the autocommit audit connection (in a test's transaction, inside a
    savepoint, so a failed statement does not poison it)."""
    alias = audit_alias()
    if connections[alias].in_atomic_block:
        with transaction.atomic(using=alias):
            return fn(alias)
    return fn(alias)


def _lease() -> timedelta:
    """How long a claim holds without an answer: the age of a dead request's pending row."""
    return timedelta(seconds=settings.APIOPS["AUDIT_PENDING_MAX_AGE"])


def _ttl() -> timedelta:
    return timedelta(seconds=settings.APIOPS["IDEMPOTENCY_TTL"])


_TABLE = IdempotencyRecord._meta.db_table
# Insert the claim; an existing row is taken over only when it no longer counts: its answer
# expired, or its claim is older than the lease (the process holding it died).
_CLAIM_SQL = f"""
INSERT INTO {_TABLE} AS r (key_name, idempotency_key, fingerprint, token, claimed_at)
VALUES (%s, %s, %s, %s, statement_timestamp())
ON CONFLICT (key_name, idempotency_key) DO UPDATE SET
    fingerprint = EXCLUDED.fingerprint, token = EXCLUDED.token, claimed_at = EXCLUDED.claimed_at,
    completed_at = NULL, expires_at = NULL, response_status = NULL,
    response_content_type = NULL, response_body = NULL
WHERE (r.completed_at IS NOT NULL AND r.expires_at <= statement_timestamp())
   OR (r.completed_at IS NULL AND r.claimed_at <= statement_timestamp() - make_interval(secs => %s))
RETURNING r.id
"""  # noqa: S608 - the table name is ours, every value a parameter


def _dead() -> Q:
    """Rows that no longer count: an expired answer, or a claim older than the lease."""
    now = _StatementTime()
    return Q(completed_at__isnull=False, expires_at__lte=now) | Q(
        completed_at__isnull=True, claimed_at__lte=now - _lease()
    )


def claim(*, key_name: str, key: str, fingerprint: str) -> Claim | StoredAnswer:
    """Claim ``key`` for this request, or the stored answer to replay.

    Raises IdempotencyInFlight (the holder is still running), IdempotencyKeyReused (another
    fingerprint) and AuditUnavailable (the database cannot be reached: fail closed).
    """
    token = uuid.uuid4()

    def insert(alias: str) -> int | None:
        with connections[alias].cursor() as cursor:
            cursor.execute(
                _CLAIM_SQL, [key_name, key, fingerprint, str(token), _lease().total_seconds()]
            )
            row = cursor.fetchone()
        return row[0] if row else None

    def existing(alias: str) -> IdempotencyRecord | None:
        rows = IdempotencyRecord.objects.using(alias).filter(key_name=key_name, idempotency_key=key)
        return rows.exclude(_dead()).first()

    try:
        # Another round only when the row we conflicted with was released, purged or
        # went dead between the two statements.
        for _ in range(_CLAIM_ROUNDS):
            record_id = _write(insert)
            if record_id is not None:
                return Claim(record_id=record_id, token=token)
            held = _write(existing)
            if held is None:
                continue
            if held.fingerprint != fingerprint:
                raise IdempotencyKeyReused()
            if held.completed_at is None:
                raise IdempotencyInFlight()
            return StoredAnswer(
                status=held.response_status,
                content_type=held.response_content_type or "",
                body=bytes(held.response_body or b""),
            )
    except DatabaseError as e:
        logger.error("the Idempotency-Key could not be claimed (%s); refusing the request", e)
        raise AuditUnavailable() from e
    raise IdempotencyInFlight()  # the key kept changing hands: the client tries again


def complete(held: Claim, response: HttpResponseBase) -> bool:
    """Store the answer to replay; False when the claim is no longer this request's."""
    now = _StatementTime()

    def update(alias: str) -> int:
        return (
            IdempotencyRecord.objects.using(alias)
            .filter(pk=held.record_id, token=held.token, completed_at__isnull=True)
            .update(
                completed_at=now,
                expires_at=now + _ttl(),
                response_status=response.status_code,
                response_content_type=response.get("Content-Type", ""),
                response_body=response.content,
            )
        )

    return bool(_write(update))


def release(held: Claim) -> bool:
    """Give the key up (the answer was not final); False when it was no longer held."""

    def delete(alias: str) -> int:
        rows = IdempotencyRecord.objects.using(alias).filter(
            pk=held.record_id, token=held.token, completed_at__isnull=True
        )
        return rows.delete()[0]

    return bool(_write(delete))


def purge_expired() -> int:
    """Delete expired answers and claims older than the lease; returns how many.

    Raises AuditUnavailable when the database cannot be written.
    """
    try:
        return _write(
            lambda alias: IdempotencyRecord.objects.using(alias).filter(_dead()).delete()[0]
        )
    except DatabaseError as e:
        raise AuditUnavailable() from e


# --- the views and the middleware ---------------------------------------------------------------


class _Replay(Exception):
    """Not an error: the way out of ``initial`` to answer with a stored response."""

    def __init__(self, response: HttpResponse) -> None:
        super().__init__()
        self.response = response


def _replay_status(http_status: int) -> str:
    if http_status < 400:
        return OpsLogStatus.SUCCESS
    if http_status in (401, 403):
        return OpsLogStatus.DENIED
    return OpsLogStatus.ERROR


class IdempotentMixin:
    """DRF view mixin: honour ``Idempotency-Key`` on POST and DELETE (see the module docstring).

    The key is claimed after authentication, since the API key's name scopes it; refusals and
    replays write their audit row here, with the view's ``audit_target()`` when it has one.
    Needs :class:`IdempotencyMiddleware`, which stores the answer.
    """

    def initial(self, request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        if request.method not in METHODS or HEADER not in request.META:
            return
        django_request = request._request
        if not hasattr(django_request, "idempotency_claim"):
            raise ImproperlyConfigured(
                "Idempotency-Key needs ops.idempotency.IdempotencyMiddleware in MIDDLEWARE"
            )
        try:
            key = parse_key(request.META[HEADER])
            outcome = claim(
                key_name=request.user.name,
                key=key,
                fingerprint=fingerprint(
                    method=request.method,
                    path=request.path,
                    query=request.META.get("QUERY_STRING", ""),
                    body=django_request.body,
                ),
            )
        except (InvalidIdempotencyKey, IdempotencyInFlight, IdempotencyKeyReused) as e:
            record_error(
                actor=actor_for(request),
                target=self._idempotency_target(request),
                error=e,
                status=OpsLogStatus.ERROR,
            )
            raise
        if isinstance(outcome, Claim):
            django_request.idempotency_claim = outcome
            return
        self._audit_replay(request, key, outcome)
        response = HttpResponse(
            outcome.body, status=outcome.status, content_type=outcome.content_type or None
        )
        response[REPLAYED_HEADER] = "true"
        raise _Replay(response)

    def handle_exception(self, exc: Exception) -> HttpResponseBase:
        if isinstance(exc, _Replay):
            return exc.response
        return super().handle_exception(exc)

    def _idempotency_target(self, request) -> Target:
        target_of = getattr(self, "audit_target", None)
        if target_of is not None:
            return target_of()
        return Target(request.method.lower(), "endpoint", "", request.path, None)

    def _audit_replay(self, request, key: str, answer: StoredAnswer) -> None:
        """The replay's own row: it is an attempt too (AuditUnavailable: fail closed)."""
        actor = actor_for(request)
        record(
            actor_name=actor.name,
            source_ip=actor.source_ip,
            origin=actor.origin,
            target=self._idempotency_target(request),
            status=_replay_status(answer.status),
            error_message=(
                f"Idempotency-Key {key!r} replayed: the first request's stored answer "
                f"(HTTP {answer.status}) was sent again; nothing was executed"
            ),
            code=REPLAY_CODE,
            http_status=answer.status,
            key_prefix=actor.key_prefix,
        )


class IdempotencyMiddleware:
    """Store the answer of a request that claimed an Idempotency-Key, or release the key.

    A middleware because it must see the final answer, after the view's request transaction
    has committed (or failed to: then the 503 it became releases the key).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        """Run the request; afterwards, settle the claim :class:`IdempotentMixin` made."""
        request.idempotency_claim = None
        response = self.get_response(request)
        held = request.idempotency_claim
        if held is not None:
            _settle(held, response)
        return response


def _settle(held: Claim, response: HttpResponseBase) -> None:
    final = not response.streaming and response.status_code < 500
    try:
        kept = complete(held, response) if final else release(held)
    except DatabaseError as e:
        # The client has its answer; the key stays in flight until the lease ends.
        logger.error("the Idempotency-Key answer could not be stored or released (%s)", e)
        return
    if not kept:
        logger.warning("an Idempotency-Key claim was taken over before its answer was stored")
