"""Tables of notifications: targets managed in the admin, the outbox of events, and one
delivery row per event and target (imported by :mod:`ops.models`).

An event is written in the same transaction as the change it reports
(:func:`ops.notifications.notify`), with one delivery row for each target whose filters it
passes; the workers deliver those rows and record each attempt on them. The event's id is
the one receivers see, on every retry.
"""

from __future__ import annotations

import uuid

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone


class NotificationKind(models.TextChoices):
    """Where a notification goes, and so the shape of its body."""

    SLACK = "slack", "Slack (incoming webhook)"
    TEAMS = "teams", "Microsoft Teams (Workflows webhook, Adaptive Card)"
    WEBHOOK = "webhook", "Webhook (signed JSON)"


class NotificationTarget(models.Model):
    """A receiver managed in the admin. Its URL and secret are write-only there and appear in
    no API answer and no log line (a Slack or Teams webhook URL is itself a credential)."""

    name = models.SlugField(max_length=63, unique=True)
    kind = models.TextField(choices=NotificationKind.choices)
    url = models.TextField()
    secret = models.TextField(blank=True, default="")
    events = ArrayField(models.TextField(), help_text="Event name patterns, e.g. job.* or auth.*")
    namespaces = ArrayField(
        models.CharField(max_length=63),
        default=list,
        blank=True,
        help_text="Only events about these namespaces (empty: every event).",
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "ops_notify_target"

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class NotificationEvent(models.Model):
    """One event as it happened: its stable id (receivers de-duplicate on it), name,
    namespace (empty: about none) and data."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    event = models.TextField()
    namespace = models.TextField(blank=True, default="")
    occurred_at = models.DateTimeField(default=timezone.now)
    data = models.JSONField(default=dict)

    class Meta:
        db_table = "ops_notify_event"
        indexes = [models.Index(fields=["-occurred_at"], name="ops_notify_event_time_idx")]

    def __str__(self) -> str:
        return f"{self.event} {self.id}"


class DeliveryStatus(models.TextChoices):
    """Where one delivery stands."""

    PENDING = "pending", "pending"
    DELIVERED = "delivered", "delivered"
    #: Given up after the last attempt: visible in the admin, retryable from there.
    UNDELIVERABLE = "undeliverable", "undeliverable"


class NotificationDelivery(models.Model):
    """An event for one target: attempts, the last error, and when to try next.

    ``target_name`` names an admin target or one from ``OPS_NOTIFY_TARGETS``; the URL and
    secret are looked up when sending, never copied here. A worker sending it holds it until
    ``locked_until``; one killed meanwhile leaves it to be sent again after that (at least
    once).
    """

    event = models.ForeignKey(
        NotificationEvent, on_delete=models.CASCADE, related_name="deliveries"
    )
    target_name = models.TextField()
    channel = models.TextField(choices=NotificationKind.choices)
    status = models.TextField(choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.IntegerField(default=0)
    # The database's clock, as the claim compares it with now(): no skew between hosts.
    next_attempt_at = models.DateTimeField(db_default=Now())
    locked_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "ops_notify_delivery"
        verbose_name_plural = "notification deliveries"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["event", "target_name"], name="ops_notify_delivery_once_per_target"
            )
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status="pending"),
                name="ops_notify_delivery_due_idx",
            ),
            models.Index(fields=["status", "-created_at"], name="ops_notify_delivery_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} -> {self.target_name} ({self.status})"
