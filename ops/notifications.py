"""Notifications: events written to an outbox with the change they report, delivered later.

**Writing.** :func:`notify` is the one entry point: call it inside the transaction that makes
the change (a job ending, an approval decided). It writes the event and one delivery row per
target whose filters the event passes, on the same connection, so the event exists exactly
when the change does: a rollback takes both away, a commit keeps both. Once committed, the
workers are woken (a registered waker: the jobs app queues a delivery task).

**Targets.** Those of ``OPS_NOTIFY_TARGETS`` (settings) and the enabled ones managed in the
admin. Each has an event filter (glob patterns: ``job.*``) and an optional namespace filter
(an event about no namespace, such as ``auth.lockout``, reaches only targets without one).

**Delivering.** :func:`dispatch_due` claims due deliveries (``FOR UPDATE SKIP LOCKED``, a
lease in ``locked_until``, the attempt counted at the claim) and sends them from a small pool
of threads in the worker process, so a slow or dead receiver holds a thread, never a job's
tick, and never the request or the job that wrote the event. 2xx is delivered; anything else
is retried after a pause doubling from ``NOTIFY_BACKOFF`` up to ``NOTIFY_BACKOFF_MAX``, and
given up (``undeliverable``, shown in the admin with the last error, retryable there) after
``NOTIFY_MAX_ATTEMPTS``. A worker killed while sending leaves the lease to lapse and the
delivery is sent again: at least once, always with the event's own id, so a receiver can
drop a duplicate.

**Bodies.** ``webhook``: ``{"id", "event", "occurred_at", "data"}`` with headers
``X-ApiOps-Event`` and ``X-ApiOps-Signature: sha256=<hex HMAC-SHA256(secret, body)>``;
``slack``: an incoming-webhook message (``text`` and ``blocks``); ``teams``: a Workflows
webhook message carrying an Adaptive Card.

A URL or secret never reaches a log line, an error message or an API answer: errors are
described by what happened (``HTTP 500``, ``connection refused``), not by where.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import urllib3
from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import Min
from django.db.models.functions import Now
from django.utils import timezone

from ops import metrics
from ops.notification_models import (
    DeliveryStatus,
    NotificationDelivery,
    NotificationEvent,
    NotificationTarget,
)

logger = logging.getLogger(__name__)

#: Every event name ApiOps sends (SPEC); :func:`notify` refuses any other.
EVENTS = (
    "job.started",
    "job.succeeded",
    "job.failed",
    "job.cancelled",
    "approval.requested",
    "approval.approved",
    "approval.rejected",
    "approval.expired",
    "auth.lockout",
)
#: What ``manage.py notify_test`` sends (to one target, whatever its filters).
TEST_EVENT = "notify.test"

USER_AGENT = "apiops-notify/1"


@dataclass(frozen=True)
class Target:
    """A receiver, from the environment or the admin: where, how, and which events."""

    name: str
    kind: str
    url: str
    secret: str
    events: tuple[str, ...]
    namespaces: tuple[str, ...] = ()

    def wants(self, event: str, namespace: str) -> bool:
        """Does ``event`` about ``namespace`` ("" for none) pass this target's filters?"""
        if not any(fnmatch.fnmatchcase(event, pattern) for pattern in self.events):
            return False
        return not self.namespaces or namespace in self.namespaces

    def __repr__(self) -> str:  # never the URL or the secret
        return f"Target({self.name!r}, {self.kind!r})"


def environment_targets() -> list[Target]:
    """The targets of ``OPS_NOTIFY_TARGETS``."""
    return [Target(**t) for t in settings.APIOPS.get("NOTIFY_TARGETS", ())]


def targets(using: str = "default") -> list[Target]:
    """Every target: the environment's, then the admin's enabled ones (a name given by the
    environment wins)."""
    found = environment_targets()
    names = {t.name for t in found}
    for row in NotificationTarget.objects.using(using).filter(enabled=True).order_by("name"):
        if row.name not in names:
            found.append(
                Target(
                    name=row.name,
                    kind=row.kind,
                    url=row.url,
                    secret=row.secret,
                    events=tuple(row.events),
                    namespaces=tuple(row.namespaces),
                )
            )
    return found


def target_named(name: str, *, disabled: bool = False) -> Target | None:
    """The target called ``name``, or None (also for a disabled admin target, unless
    ``disabled``)."""
    for target in environment_targets():
        if target.name == name:
            return target
    row = NotificationTarget.objects.filter(name=name).first()
    if row is None or not (row.enabled or disabled):
        return None
    return Target(row.name, row.kind, row.url, row.secret, tuple(row.events), tuple(row.namespaces))


def send_test(target: Target) -> tuple[NotificationEvent, str | None]:
    """Send a ``notify.test`` event to ``target`` now, whatever its filters, outside the
    outbox; returns the event and what went wrong (None: delivered)."""
    event = NotificationEvent(
        event=TEST_EVENT,
        occurred_at=timezone.now(),
        data={"target": target.name, "message": "Test notification from ApiOps."},
    )
    error = send(target, event)
    metrics.NOTIFICATIONS.labels(target.kind, "delivered" if error is None else "failed").inc()
    return event, error


# --- writing ---------------------------------------------------------------------------------

#: Called once a transaction that wrote events has committed, with a delay in seconds: wakes
#: the workers. Registered by the jobs app; without one, nothing is woken.
Waker = Callable[[float], None]
_wakers: list[Waker] = []


def register_waker(waker: Waker) -> None:
    """Have ``waker`` called when deliveries are due (idempotent)."""
    if waker not in _wakers:
        _wakers.append(waker)


def wake(delay: float = 0.0) -> None:
    """Tell the workers that deliveries are due in ``delay`` seconds. Never raises: the
    pump finds due deliveries anyway."""
    for waker in _wakers:
        try:
            waker(delay)
        except Exception:
            # A wake-up is an optimisation; the pump is the guarantee. Log, never fail the caller.
            logger.exception("could not wake the notification workers")


def notify(
    event: str, namespace: str, data: Mapping[str, Any], *, using: str = "default"
) -> NotificationEvent | None:
    """Record ``event`` about ``namespace`` ("" for none) in the outbox, in the caller's
    transaction on ``using``; returns it, or None when no target wants it.

    ``event`` is one of :data:`EVENTS`; ``data`` is JSON (ids, names, the outcome), read by
    receivers as the event's ``data``. Call it in the transaction that makes the change:
    the event is delivered if and only if that transaction commits, at least once to each
    target that wants it, with the returned event's id.
    """
    if event not in EVENTS:
        raise ValueError(f"unknown notification event {event!r}")
    wanted = [t for t in targets(using) if t.wants(event, namespace)]
    if not wanted:
        return None
    with transaction.atomic(using=using):
        row = NotificationEvent.objects.using(using).create(
            event=event, namespace=namespace, data=dict(data), occurred_at=timezone.now()
        )
        NotificationDelivery.objects.using(using).bulk_create(
            NotificationDelivery(event=row, target_name=t.name, channel=t.kind) for t in wanted
        )
        transaction.on_commit(wake, using=using)
    return row


# --- bodies ----------------------------------------------------------------------------------


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def summary(event: str, namespace: str, data: Mapping[str, Any]) -> str:
    """One line for people: what happened to what."""
    if event.startswith("job."):
        what = f"{data.get('type', 'job')} {data.get('job_id', '')}".strip()
        target = data.get("target") or {}
        where = f" on {namespace}/{target.get('name')}" if target.get("name") else ""
        line = f"Job {what}{where} {event.split('.', 1)[1]}"
        error = data.get("error") or {}
        if error.get("detail"):
            line += f": {error['detail']}"
        return line
    if event == "auth.lockout":
        return (
            f"Source {data.get('source_ip')} locked out after {data.get('failures')} failed "
            f"authentications in {data.get('window_seconds')} s"
        )
    if event.startswith("approval."):
        what = " ".join(str(data[k]) for k in ("operation", "approval_id") if data.get(k))
        where = f" in {namespace}" if namespace else ""
        return f"Approval {what}{where}: {event.split('.', 1)[1]}".replace("  ", " ")
    return f"{event}{' in ' + namespace if namespace else ''}"


def _facts(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    facts = []
    for key, value in data.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items() if v not in (None, ""))
        if value not in (None, "", {}):
            facts.append((str(key), str(value)[:300]))
    return facts[:12]


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def body_for(kind: str, event: NotificationEvent) -> dict:
    """The JSON body a target of ``kind`` gets for ``event``."""
    line = summary(event.event, event.namespace, event.data)
    stamp = _iso(event.occurred_at)
    if kind == "slack":
        return {
            "text": f"[ApiOps] {line}",
            "blocks": [
                {
                    "type": "section",
                    "text": {
                        "type": "mrkdwn",
                        "text": f"*{_slack_escape(event.event)}*\n{_slack_escape(line)}",
                    },
                },
                {
                    "type": "context",
                    "elements": [
                        {"type": "mrkdwn", "text": _slack_escape(f"event {event.id} at {stamp}")}
                    ],
                },
            ],
        }
    if kind == "teams":
        card = {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.4",
            "body": [
                {
                    "type": "TextBlock",
                    "text": f"ApiOps: {event.event}",
                    "weight": "Bolder",
                    "size": "Medium",
                    "wrap": True,
                },
                {"type": "TextBlock", "text": line, "wrap": True},
                {
                    "type": "FactSet",
                    "facts": [
                        {"title": k, "value": v}
                        for k, v in [*_facts(event.data), ("event id", str(event.id))]
                    ],
                },
            ],
        }
        return {
            "type": "message",
            "attachments": [
                {
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": None,
                    "content": card,
                }
            ],
        }
    return {"id": str(event.id), "event": event.event, "occurred_at": stamp, "data": event.data}


def signature(secret: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256(secret, body)>``, the ``X-ApiOps-Signature`` header."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def request_for(target: Target, event: NotificationEvent) -> tuple[bytes, dict[str, str]]:
    """The exact body and headers sent to ``target`` for ``event``."""
    body = json.dumps(body_for(target.kind, event), separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    if target.kind == "webhook":
        headers["X-ApiOps-Event"] = event.event
        headers["X-ApiOps-Delivery"] = str(event.id)
        if target.secret:
            headers["X-ApiOps-Signature"] = signature(target.secret, body)
    return body, headers


# --- sending ---------------------------------------------------------------------------------

_http = urllib3.PoolManager(num_pools=16, maxsize=4, retries=False)


def _describe(exc: urllib3.exceptions.HTTPError, timeout: float) -> str:
    """What went wrong, without the URL (which urllib3's own messages quote)."""
    cause: BaseException = exc
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        cause = exc.reason
    if isinstance(cause, urllib3.exceptions.ReadTimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(cause, urllib3.exceptions.NewConnectionError):
        errno_text = str(cause).rsplit("]", 1)[-1].strip() if "]" in str(cause) else ""
        return f"cannot connect{': ' + errno_text if errno_text else ''}"
    if isinstance(cause, urllib3.exceptions.ConnectTimeoutError):
        return f"connection timed out after {timeout:g} s"
    if isinstance(cause, urllib3.exceptions.SSLError):
        return "TLS error"
    return f"{type(cause).__name__}"


def send(target: Target, event: NotificationEvent) -> str | None:
    """POST ``event`` to ``target`` once; None when it answered 2xx, else what went wrong."""
    body, headers = request_for(target, event)
    timeout = settings.APIOPS["NOTIFY_TIMEOUT"]
    try:
        response = _http.request(
            "POST",
            target.url,
            body=body,
            headers=headers,
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
            redirect=False,
            retries=False,
        )
    except urllib3.exceptions.HTTPError as exc:
        return _describe(exc, timeout)
    if 200 <= response.status < 300:
        return None
    text = " ".join(response.data[:200].decode("utf-8", "replace").split())
    return f"HTTP {response.status}{': ' + text if text else ''}"


# --- the workers' side ---------------------------------------------------------------------

_CLAIM_SQL = """
UPDATE ops_notify_delivery
   SET locked_until = now() + make_interval(secs => %s), attempts = attempts + 1,
       last_attempt_at = now()
 WHERE id IN (SELECT id FROM ops_notify_delivery
               WHERE status = 'pending' AND next_attempt_at <= now()
                 AND (locked_until IS NULL OR locked_until < now())
               ORDER BY next_attempt_at
               LIMIT %s
               FOR UPDATE SKIP LOCKED)
RETURNING id
"""


def claim_due(limit: int) -> list[int]:
    """Take up to ``limit`` due deliveries for this process (their attempt counted now)."""
    if limit <= 0:
        return []
    # Longer than one attempt can take (connect and read timeouts), with room to record it.
    lease = 3 * settings.APIOPS["NOTIFY_TIMEOUT"] + 5
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL, [lease, limit])
        return [row[0] for row in cursor.fetchall()]


def backoff(attempts: int) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt."""
    conf = settings.APIOPS
    return min(conf["NOTIFY_BACKOFF_MAX"], conf["NOTIFY_BACKOFF"] * 2 ** max(attempts - 1, 0))


def deliver(delivery_id: int) -> str:
    """Send one claimed delivery and record the outcome; returns the new status."""
    delivery = NotificationDelivery.objects.select_related("event").get(pk=delivery_id)
    if delivery.status != DeliveryStatus.PENDING:
        return delivery.status
    target = target_named(delivery.target_name)
    if target is None:
        error = f"target {delivery.target_name!r} no longer exists or is disabled"
    else:
        error = send(target, delivery.event)
    fields: dict[str, Any] = {"locked_until": None}
    if error is None:
        fields.update(status=DeliveryStatus.DELIVERED, delivered_at=Now(), last_error="")
        outcome = "delivered"
    elif target is None or delivery.attempts >= settings.APIOPS["NOTIFY_MAX_ATTEMPTS"]:
        fields.update(status=DeliveryStatus.UNDELIVERABLE, last_error=error)
        outcome = "undeliverable"
    else:
        pause = backoff(delivery.attempts)
        fields.update(next_attempt_at=Now() + timedelta(seconds=pause), last_error=error)
        outcome = "failed"
    NotificationDelivery.objects.filter(pk=delivery_id, status=DeliveryStatus.PENDING).update(
        **fields
    )
    metrics.NOTIFICATIONS.labels(delivery.channel, outcome).inc()
    if outcome == "failed":
        wake(pause)
    if outcome != "delivered":
        logger.warning(
            "notification %s to %s: attempt %d %s: %s",
            delivery.event.event,
            delivery.target_name,
            delivery.attempts,
            outcome,
            error,
        )
    return fields.get("status", DeliveryStatus.PENDING)


def deliver_due(limit: int = 100) -> int:
    """Claim and send due deliveries in this thread, one after another; how many were sent.
    (Tests and commands; the workers use :func:`dispatch_due`.)"""
    ids = claim_due(limit)
    for delivery_id in ids:
        deliver(delivery_id)
    return len(ids)


class _Pool:
    """This process's sending threads (a fork gets a pool of its own)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pid: int | None = None
        self.executor: ThreadPoolExecutor | None = None
        self.busy = 0

    def submit(self, limit: int) -> int:
        with self.lock:
            if self.pid != os.getpid():
                self.pid, self.busy = os.getpid(), 0
                self.executor = ThreadPoolExecutor(limit, thread_name_prefix="notify")
            free = limit - self.busy
            ids = claim_due(free)
            self.busy += len(ids)
        for delivery_id in ids:
            self.executor.submit(self._run, delivery_id)
        return len(ids)

    def _run(self, delivery_id: int) -> None:
        close_old_connections()
        try:
            deliver(delivery_id)
        except Exception:
            # A thread's boundary: the lease lapses and the delivery is tried again.
            logger.exception("notification delivery %s failed unexpectedly", delivery_id)
        finally:
            with self.lock:
                self.busy -= 1
            connection.close()  # this thread's own; an idle pool holds none


_pool = _Pool()


def dispatch_due() -> int:
    """Claim as many due deliveries as this process has free sending threads and start
    sending them; returns at once with how many were started (the django-q2 task and the
    pump call this: a receiver that hangs holds a sending thread, not the worker)."""
    return _pool.submit(settings.APIOPS["NOTIFY_CONCURRENCY"])


def retry(deliveries) -> int:
    """Make given-up (or waiting) deliveries due now with a fresh count of attempts; how many."""
    count = deliveries.exclude(status=DeliveryStatus.DELIVERED).update(
        status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=Now(), locked_until=None
    )
    if count:
        transaction.on_commit(wake)
    return count


#: How long delivered events are kept (the admin shows them meanwhile).
KEEP_DELIVERED = timedelta(days=30)


def prune(older_than: timedelta = KEEP_DELIVERED) -> int:
    """Delete events older than ``older_than`` whose every delivery was delivered; how many.
    Undeliverable and pending ones stay until they are delivered."""
    old = NotificationEvent.objects.filter(occurred_at__lt=timezone.now() - older_than)
    done = old.exclude(
        deliveries__status__in=[DeliveryStatus.PENDING, DeliveryStatus.UNDELIVERABLE]
    )
    count, _ = NotificationEvent.objects.filter(pk__in=done.values("pk")[:1000]).delete()
    return count


# --- database gauges -------------------------------------------------------------------------


def pending_count() -> int:
    """Deliveries not yet delivered nor given up."""
    return NotificationDelivery.objects.filter(status=DeliveryStatus.PENDING).count()


def undeliverable_count() -> int:
    """Deliveries given up on."""
    return NotificationDelivery.objects.filter(status=DeliveryStatus.UNDELIVERABLE).count()


def oldest_pending_age() -> float:
    """Seconds since the oldest pending delivery was written (0 when none)."""
    oldest = NotificationDelivery.objects.filter(status=DeliveryStatus.PENDING).aggregate(
        oldest=Min("created_at")
    )["oldest"]
    return max(0.0, (timezone.now() - oldest).total_seconds()) if oldest else 0.0


def register_gauges() -> None:
    """Supply the notification gauges of ``/metrics``."""
    metrics.register_gauge_source("apiops_notifications_pending", pending_count)
    metrics.register_gauge_source("apiops_notifications_undeliverable", undeliverable_count)
    metrics.register_gauge_source("apiops_notifications_oldest_pending_seconds", oldest_pending_age)
